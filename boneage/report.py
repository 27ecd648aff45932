"""One-page PDF report of a bone-age reading, for the clinician to download.

fpdf2 (pure Python, maintained) writes the PDF; the growth chart is a
matplotlib PNG from `boneage.charts`, so no browser or kaleido is needed.
Research software: every page carries the disclaimer.
"""
from __future__ import annotations

import io
from datetime import date

import numpy as np

from .charts import growth_chart_png
from .clinical import ClinicalInterpretation, format_percentile
from .vocab import format_age, parse_sex, sex_label

DISCLAIMER = "Research software - not a medical device; not for clinical diagnosis."
TITLE = "Bone age report (Greulich-Pyle)"
MAX_WARNINGS = 6  # keep the report on one page; the app shows the full list
MAX_WARNING_CHARS = 120  # one line of 8 pt text across the page

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
    if interp.z_score is not None:
        rows += [("Z-score (G-P SD)", f"{interp.z_score:+.2f}"),
                 ("Percentile", format_percentile(interp.percentile))]
    rows.append(("Status", interp.status))
    if interp.status == "indeterminate":
        rows.append(("Why", interp.status_reason))
    if interp.height_cm is not None:
        rows.append(("Height", f"{interp.height_cm:.1f} cm"))
    if interp.predicted_adult_height_cm is not None:
        rows.append(("Predicted adult height",
                     f"{interp.predicted_adult_height_cm:.1f} cm (Bayley-Pinneau, {interp.bp_table})"))
    elif interp.height_cm is not None:
        rows.append(("Predicted adult height", f"not given: {interp.adult_height_note}"))
    return rows


def make_pdf_report(*, image_rgb: np.ndarray, bone_age_months: float, uncertainty_months: float | None,
                    sex: str, model_version: str, interpretation: ClinicalInterpretation | None,
                    warnings: list[str], patient_label: str | None = None,
                    report_date: date | None = None) -> bytes:
    """A4, one page: title, radiograph with heatmap, numbers, growth chart, provenance, disclaimer.

    The growth chart is included only when a chronological age is known: with
    no age there is no point to place, and an empty chart would suggest one.
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
    who = f"{patient_label} - " if patient_label else ""
    pdf.cell(CONTENT_W, 5, _latin1(f"{who}report date {report_date.isoformat()} - model {model_version}"),
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
    y = max(pdf.get_y(), top + box_h + 8) + 3

    # Growth chart
    if ca is not None:
        png = io.BytesIO(growth_chart_png(s, bone_age_months, ca, uncertainty_months))
        chart_w = 0.85 * CONTENT_W
        chart_h = chart_w * 3.6 / 7.0  # the PNG's aspect ratio
        pdf.image(png, x=MARGIN + (CONTENT_W - chart_w) / 2, y=y, w=chart_w, h=chart_h)
        y += chart_h + 2

    # Warnings and provenance, then the footer.
    footer_y = PAGE_H - MARGIN - 13
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
    pdf.multi_cell(CONTENT_W, 3.5, _latin1(
        "Method: Greulich-Pyle atlas; status uses the Brush Foundation SD of skeletal age for "
        "chronological age (Greulich & Pyle 1959); adult height by Bayley & Pinneau (J Pediatr "
        f"1952;40:423-441). Model {model_version}; generated {report_date.isoformat()}."),
        new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 8)
    pdf.cell(CONTENT_W, 4, _latin1(DISCLAIMER))
    return bytes(pdf.output())
