"""PDF report (fpdf2) and growth chart (plotly / matplotlib)."""
from __future__ import annotations

import io
import re
from datetime import date

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from boneage.charts import chart_data, growth_chart, growth_chart_png
from boneage.clinical import interpret
from boneage.report import DISCLAIMER, make_pdf_report

REPORT_DATE = date(2026, 11, 27)


def _radiograph(h: int = 480, w: int = 360) -> np.ndarray:
    """A recognisable RGB test image: grey ramp with a red 'heatmap' blob."""
    img = np.repeat(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None], h, axis=0).repeat(3, axis=2)
    img[h // 3: h // 2, w // 3: w // 2] = (230, 30, 30)
    return img


def _report(interpretation, **kw) -> bytes:
    args = dict(image_rgb=_radiograph(), bone_age_months=143.5, uncertainty_months=7.9, sex="F",
                model_version="attn-xception-v3", interpretation=interpretation,
                warnings=["Image is slightly rotated."], patient_label="Study 0042",
                report_date=REPORT_DATE)
    args.update(kw)
    return make_pdf_report(**args)


def _pdf(data: bytes) -> PdfReader:
    assert data.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(data))


def _page_text(reader: PdfReader) -> str:
    return " ".join(reader.pages[0].extract_text().split())


def test_full_report_is_one_page_with_image_chart_and_numbers():
    interp = interpret(143.5, "F", chronological_age_months=120, height_cm=140.0)
    reader = _pdf(_report(interp))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    assert [round(float(v)) for v in page.mediabox[2:]] == [595, 842]  # A4 in points
    images = list(page.images)
    assert len(images) == 2  # the radiograph and the growth chart
    sizes = sorted(Image.open(io.BytesIO(im.data)).size for im in images)
    assert (360, 480) in sizes  # the radiograph, at its own resolution
    text = _page_text(reader)
    for needle in ("143.5", "+2.00", "advanced", "Bayley-Pinneau", "attn-xception-v3", "2026-11-27",
                   "Study 0042", "Image is slightly rotated.", "Greulich-Pyle", DISCLAIMER):
        assert needle in text, needle
    assert re.search(r"± \d+\.\d months", text) and not re.search(r"± [\d.]+ m\b", text)  # "m" read as metres
    assert "12 years 0 months" in text  # ages in words: 143.5 months


def test_chart_left_out_without_chronological_age():
    interp = interpret(143.5, "F")
    reader = _pdf(_report(interp))
    assert len(reader.pages) == 1
    assert len(list(reader.pages[0].images)) == 1  # radiograph only
    text = _page_text(reader)
    assert "not given" in text and "indeterminate" in text and DISCLAIMER in text


def test_report_without_interpretation_and_many_long_warnings_stays_one_page():
    warnings = [f"warning {i}: " + "very long explanation " * 20 for i in range(25)]
    reader = _pdf(_report(None, warnings=warnings, patient_label=None, sex="male"))
    assert len(reader.pages) == 1
    text = _page_text(reader)
    assert "more (see the app)" in text and DISCLAIMER in text


def test_non_latin1_text_does_not_break_the_pdf():
    interp = interpret(100, "M", chronological_age_months=110)
    reader = _pdf(_report(interp, sex="M", bone_age_months=100, warnings=["BA ≥ 18 y – check “label”"],
                          patient_label="Zoë – 12"))
    assert "BA >= 18 y - check" in _page_text(reader)


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((10, 10, 4), np.uint8)])
def test_report_rejects_wrong_image(bad):
    with pytest.raises(ValueError, match="uint8"):
        _report(None, image_rgb=bad)


# ------------------------------------------------------------------ charts
def test_chart_data_band_is_ca_plus_minus_two_sd():
    d = chart_data("F", 143.5, 120, 8.0)
    i = list(d.ages_y).index(10.0)
    assert d.upper_y[i] == pytest.approx(10 + 2 * 11.73 / 12)
    assert d.lower_y[i] == pytest.approx(10 - 2 * 11.73 / 12)
    assert d.mean_y[i] == pytest.approx(125.66 / 12)
    assert (d.bone_age_y, d.chronological_age_y, d.uncertainty_y) == pytest.approx((143.5 / 12, 10, 8 / 12))


def test_plotly_growth_chart_traces_and_axes():
    fig = growth_chart("M", 150, 132, uncertainty_months=9)
    names = [t.name for t in fig.data]
    assert "Reference mean (Brush Foundation)" in names and "This child" in names
    assert any(t.fill == "tonexty" for t in fig.data)  # the +/-2 SD band
    child = next(t for t in fig.data if t.name == "This child")
    assert (child.x[0], child.y[0]) == pytest.approx((11.0, 12.5))
    assert child.error_y.value == pytest.approx(0.75)
    assert "years" in fig.layout.xaxis.title.text and "years" in fig.layout.yaxis.title.text
    assert "Chronological" in fig.layout.xaxis.title.text and "Bone" in fig.layout.yaxis.title.text


def test_plotly_chart_without_chronological_age_has_no_point():
    fig = growth_chart("F", 100, None)
    assert "This child" not in [t.name for t in fig.data]
    assert fig.layout.shapes  # horizontal line at the bone age


def test_growth_chart_png_is_a_png():
    png = growth_chart_png("M", 150, 132, 9)
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size[0] > im.size[1] > 300


# ------------------------------------------------------- issue #12 additions
def test_footer_states_the_two_sd_rule_and_the_references():
    text = _page_text(_pdf(_report(interpret(143.5, "F", chronological_age_months=120))))
    for needle in ("beyond -2 SD delayed, beyond +2 SD advanced", "Greulich WW, Pyle SI",
                   "Bayley N, Pinneau SR. J Pediatr 1952;40:423-441", "Tanner JM", DISCLAIMER):
        assert needle in text, needle
    assert "retard" not in text.lower()


def test_patient_id_and_accession_number_in_the_header():
    text = _page_text(_pdf(_report(None, patient_id="MRN-12345", accession_number="ACC-987")))
    assert "patient ID MRN-12345" in text and "accession ACC-987" in text


def test_target_height_and_comparison_lines():
    interp = interpret(144, "F", chronological_age_months=144, height_cm=153.0,  # 153.0 / 0.922 = 165.9
                       father_height_cm=180, mother_height_cm=165)
    text = _page_text(_pdf(_report(interp, bone_age_months=144)))
    assert "Target height" in text and "166.0 cm (range 157.5-174.5 cm" in text
    assert "Adult vs target" in text and "within the target range" in text


def test_every_refusal_carries_its_reason_in_the_pdf():
    # Boy of 17 past the SD table, height given, bone age past the accelerated table.
    interp = interpret(228, "M", chronological_age_months=210, height_cm=175)
    text = _page_text(_pdf(_report(interp, sex="M", bone_age_months=228)))
    assert "no Greulich-Pyle SD for boys older than 17 years 0 months" in text
    assert "not given: bone age 19 years 0 months is outside the Bayley-Pinneau" in text
    # Lower-bound Z is marked as such.
    lb = interpret(216, "F", chronological_age_months=120)
    text = _page_text(_pdf(_report(lb, bone_age_months=216)))
    assert ">= +8.18 (lower bound)" in text and "advanced" in text


def test_follow_up_visits_and_velocity_in_the_pdf():
    from boneage.followup import Visit, follow_up

    fu = follow_up([Visit(96, 90, date(2022, 1, 5), 14.5, "a.png"),
                    Visit(120, 118, date(2024, 1, 5), 14.5, "b.png"),
                    Visit(143.5, 143.5, date(2025, 12, 20), 14.5, "c.png")], "F")
    interp = interpret(143.5, "F", chronological_age_months=143.5, height_cm=145)
    reader = _pdf(_report(interp, follow_up=fu, warnings=["w1", "w2", "w3"]))
    assert len(reader.pages) == 1
    text = _page_text(reader)
    assert "Follow-up" in text and "2022-01-05" in text and "2025-12-20" in text
    assert "3 visits over" in text and "bone-age velocity" in text
    assert len(list(reader.pages[0].images)) == 2  # radiograph and the chart with the visits


def test_chart_draws_every_visit():
    fig = growth_chart("F", 143.5, 143.5, 10, visits=[(96, 90), (120, 118), (143.5, 143.5)])
    visits = next(t for t in fig.data if t.name == "Visits (follow-up)")
    assert list(visits.x) == pytest.approx([8.0, 10.0, 143.5 / 12])
    assert list(visits.y) == pytest.approx([7.5, 118 / 12, 143.5 / 12])
    assert growth_chart_png("F", 143.5, 143.5, 10, visits=[(96, 90), (143.5, 143.5)]).startswith(b"\x89PNG")


def test_long_follow_up_keeps_one_page_and_the_chart():
    from boneage.followup import Visit, follow_up

    vs = [Visit(60 + 12 * i, 58 + 12 * i, date(2014 + i, 1, 5), 14.5, f"v{i}.png") for i in range(12)]
    interp = interpret(vs[-1].bone_age_months, "F", chronological_age_months=vs[-1].chronological_age_months,
                       height_cm=145, father_height_cm=180, mother_height_cm=165)
    reader = _pdf(_report(interp, bone_age_months=vs[-1].bone_age_months, follow_up=follow_up(vs, "F"),
                          warnings=[f"w{i}" for i in range(8)], patient_id="MRN1", accession_number="ACC2"))
    assert len(reader.pages) == 1 and len(list(reader.pages[0].images)) == 2
    text = _page_text(reader)
    assert "7 earlier visits on the chart" in text and "2025-01-05" in text and DISCLAIMER in text
