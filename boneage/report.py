"""One-page PDF report of a bone-age reading, for the clinician to download.

fpdf2 (pure Python, maintained) writes the PDF; the growth chart is a
matplotlib PNG from `boneage.charts`, so no browser or kaleido is needed.
Research software: every page carries the disclaimer.
"""
from __future__ import annotations

import io
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from .charts import growth_chart_png
from .clinical import ClinicalInterpretation
from .vocab import format_age, parse_sex, sex_label

if TYPE_CHECKING:
    from .followup import FollowUp

DISCLAIMER = "Research software - not a medical device; not for clinical diagnosis."
#: The footer: how the status is decided and where every number comes from.
METHODS_FOOTER = (
    "Status: Z = (bone age - chronological age) / SD of skeletal age for the chronological age "
    "(Brush Foundation, Greulich & Pyle); beyond -2 SD delayed, beyond +2 SD advanced, otherwise "
    "normal. References: Greulich WW, Pyle SI. Radiographic Atlas of Skeletal Development of the Hand "
    "and Wrist, 2nd ed. Stanford University Press 1959. Bayley N, Pinneau SR. J Pediatr "
    "1952;40:423-441 (adult height). Tanner JM, Goldstein H, Whitehouse RH. Arch Dis Child "
    "1970;45:755-762 (mid-parental target height, range +/- 8.5 cm).")
TITLE = "Bone age report (Greulich-Pyle)"
MAX_WARNINGS = 6  # keep the report on one page; the app shows the full list
MAX_WARNING_CHARS = 120  # one line of 8 pt text across the page
MIN_CHART_H = 35.0  # mm; a growth chart any smaller cannot be read
MAX_VISIT_LINES = 5  # follow-up visits listed by date; the chart shows them all

# A4 portrait, millimetres.
PAGE_W, PAGE_H, MARGIN = 210.0, 297.0, 12.0
CONTENT_W = PAGE_W - 2 * MARGIN

_LATIN1_SUBSTITUTES = {"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2265": ">=", "\u2264": "<=",
                       "\u2026": "...", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}


def _latin1(text: str) -> str:
    """Text the PDF core fonts can show (they are Latin-1 only)."""
    for k, v in _LATIN1_SUBSTITUTES.items():
        text = text.replace(k, v)
    return text.encode("latin-1", "replace").decode("latin-1")


def _png_bytes(image_rgb: np.ndarray) -> io.BytesIO:
    """Validate the (H, W, 3) uint8 radiograph and encode it losslessly."""
    from PIL import Image

    arr = np.asarray(image_rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
        raise ValueError(f"image_rgb must be an (H, W, 3) uint8 array, got shape {arr.shape} dtype {arr.dtype}")
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGB").save(buf, format="PNG")
    buf.seek(0)
    return buf


def _number_rows(bone_age_months: float, uncertainty_months: float | None, sex: str,
                 interp: ClinicalInterpretation | None) -> list[tuple[str, str]]:
    """(label, value) rows of the numbers table, in the order a clinician reads them."""
    unc = "" if uncertainty_months is None else f" ± {uncertainty_months:.1f} months"
    rows = [("Sex", sex_label(sex)),
            ("Bone age", f"{format_age(bone_age_months)} ({bone_age_months:.1f} months){unc}")]
    if interp is None:
        return rows
    if interp.chronological_age_months is None:
        rows.append(("Chronological age", "not given"))
    else:
        diff = interp.bone_age_minus_chronological_months
        rows += [("Chronological age", f"{format_age(interp.chronological_age_months)} "
                                       f"({interp.chronological_age_months:.1f} months)"),
                 ("Bone age - chronological", f"{diff:+.1f} months")]
    if interp.z_text is not None:
        rows += [("Z-score (G-P SD)", interp.z_text + (" (lower bound)" if interp.z_score is None else "")),
                 ("Percentile", interp.percentile_text)]
    else:
        rows.append(("Z-score (G-P SD)", "not given (see Why)"))
    rows.append(("Status", interp.status))
    if interp.z_score is None:
        rows.append(("Why", interp.status_reason))
    if interp.height_cm is not None:
        rows.append(("Height", f"{interp.height_cm:.1f} cm"))
        rows.append(("Predicted adult height", interp.adult_height_text))
    if interp.target_height_text is not None:
        rows.append(("Target height", interp.target_height_text))
        if interp.target_comparison:
            rows.append(("Adult vs target", interp.target_comparison))
    return rows


def _header_line(patient_label: str | None, patient_id: str | None, accession_number: str | None,
                 report_date: date, model_version: str) -> str:
    parts = [p for p in (patient_label,
                         f"patient ID {patient_id}" if patient_id else None,
                         f"accession {accession_number}" if accession_number else None) if p]
    parts += [f"report date {report_date.isoformat()}", f"model {model_version}"]
    return " - ".join(parts)


def make_pdf_report(*, image_rgb: np.ndarray, bone_age_months: float, uncertainty_months: float | None,
                    sex: str, model_version: str, interpretation: ClinicalInterpretation | None,
                    warnings: list[str], patient_label: str | None = None,
                    report_date: date | None = None, patient_id: str | None = None,
                    accession_number: str | None = None, follow_up: "FollowUp | None" = None) -> bytes:
    """A4, one page: title, radiograph with heatmap, numbers, growth chart, provenance, disclaimer.

    The growth chart is included only when a chronological age is known: with
    no age there is no point to place, and an empty chart would suggest one.
    `follow_up` adds the bone-age velocity and draws every visit on the chart.
    """
    from fpdf import FPDF

    s = parse_sex(sex)
    radiograph = _png_bytes(image_rgb)
    report_date = report_date or date.today()
    ca = None if interpretation is None else interpretation.chronological_age_months

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)  # one page by construction; nothing may spill over
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_title(TITLE)
    pdf.set_creator(f"boneage {model_version}")
    pdf.add_page()

    # Header
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(CONTENT_W, 8, _latin1(TITLE), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(CONTENT_W, 5, _latin1(_header_line(patient_label, patient_id, accession_number,
                                                      report_date, model_version)),
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_text_color(170, 0, 0)
    pdf.cell(CONTENT_W, 5, _latin1(DISCLAIMER), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    top = pdf.get_y() + 3

    # Radiograph (left column), fitted into a box keeping its aspect ratio.
    h, w = np.asarray(image_rgb).shape[:2]
    box_w, box_h = 78.0, 105.0
    scale = min(box_w / w, box_h / h)
    pdf.image(radiograph, x=MARGIN, y=top, w=w * scale, h=h * scale)
    pdf.set_xy(MARGIN, top + h * scale + 1)
    pdf.set_font("Helvetica", "I", 7)
    pdf.multi_cell(box_w, 3.5, "Radiograph with the model's attention heatmap (where it looked, "
                               "not a diagnosis).")

    # Numbers (right column)
    col_x, col_w, label_w = MARGIN + box_w + 6, CONTENT_W - box_w - 6, 40.0
    pdf.set_xy(col_x, top)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(col_w, 6, "Results", new_x="LEFT", new_y="NEXT")
    for label, value in _number_rows(bone_age_months, uncertainty_months, s, interpretation):
        y = pdf.get_y()
        pdf.set_xy(col_x, y)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(label_w, 5, _latin1(label), border="B")
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(col_w - label_w, 5, _latin1(value), border="B", new_x="LMARGIN", new_y="NEXT")
    if interpretation is not None:
        pdf.set_xy(col_x, pdf.get_y() + 2)
        pdf.set_font("Helvetica", "", 8)
        pdf.multi_cell(col_w, 4, _latin1(interpretation.summary()), new_x="LMARGIN", new_y="NEXT")
    if follow_up is not None:
        pdf.set_xy(col_x, pdf.get_y() + 2)
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(col_w, 5, "Follow-up", new_x="LEFT", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        shown = follow_up.visits[-MAX_VISIT_LINES:]
        if len(shown) < len(follow_up.visits):
            pdf.set_x(col_x)
            pdf.cell(col_w, 4, f"{len(follow_up.visits) - len(shown)} earlier visits on the chart",
                     new_x="LEFT", new_y="NEXT")
        for v in shown:
            when = v.study_date.isoformat() if v.study_date else "date not given"
            pdf.set_x(col_x)
            pdf.cell(col_w, 4, _latin1(f"{when}: age {format_age(v.chronological_age_months)}, bone age "
                                       f"{format_age(v.bone_age_months)}"), new_x="LEFT", new_y="NEXT")
        pdf.set_x(col_x)
        pdf.multi_cell(col_w, 4, _latin1(follow_up.summary()), new_x="LMARGIN", new_y="NEXT")
    y = max(pdf.get_y(), top + box_h + 8) + 3

    pdf.set_font("Helvetica", "", 7)
    footer_text = _latin1(f"{METHODS_FOOTER} Model {model_version}; generated {report_date.isoformat()}.")
    footer_lines = len(pdf.multi_cell(CONTENT_W, 3.5, footer_text, dry_run=True, output="LINES"))
    footer_y = PAGE_H - MARGIN - 3.5 * footer_lines - 5

    # Growth chart, as large as the space above the warnings allows (one page by construction).
    if ca is not None:
        visits = () if follow_up is None else [(v.chronological_age_months, v.bone_age_months)
                                               for v in follow_up.visits]
        png = io.BytesIO(growth_chart_png(s, bone_age_months, ca, uncertainty_months, visits=visits))
        warnings_h = 5 + 4 * min(len(warnings), MAX_WARNINGS + 1) if warnings else 0
        chart_h = min(0.85 * CONTENT_W * 3.6 / 7.0, footer_y - y - warnings_h - 2)
        chart_w = chart_h * 7.0 / 3.6  # the PNG's aspect ratio
        if chart_h >= MIN_CHART_H:  # smaller is unreadable; the numbers above say it all
            pdf.image(png, x=MARGIN + (CONTENT_W - chart_w) / 2, y=y, w=chart_w, h=chart_h)
            y += chart_h + 2

    # Warnings and provenance, then the footer (methods, references, disclaimer).
    pdf.set_xy(MARGIN, y)
    if warnings:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(CONTENT_W, 5, "Warnings", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        for i, wtext in enumerate(warnings):
            if i >= MAX_WARNINGS or pdf.get_y() + 8 > footer_y:
                pdf.cell(CONTENT_W, 4, f"... and {len(warnings) - i} more (see the app)",
                         new_x="LMARGIN", new_y="NEXT")
                break
            line = wtext if len(wtext) <= MAX_WARNING_CHARS else wtext[:MAX_WARNING_CHARS - 3] + "..."
            pdf.cell(CONTENT_W, 4, _latin1(f"- {line}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_xy(MARGIN, footer_y)
    pdf.set_font("Helvetica", "", 7)
    pdf.multi_cell(CONTENT_W, 3.5, footer_text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 8)
    pdf.cell(CONTENT_W, 4, _latin1(DISCLAIMER))
    return bytes(pdf.output())
