"""Result panels: the prediction (numbers, warnings, attention map, clinical interpretation, growth
chart, downloads) and the pipeline (measurements and every stage image with its caption)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from ..pipeline import STAGE_NOTES, STAGES
from ..vocab import sex_label
from .downloads import download_row, live_downloads, prediction_files
from .images import downscale
from .state import Source


def plain_warning(w: str) -> str:
    """A pipeline warning as a sentence a clinician reads without knowing the pipeline."""
    w = w.strip()
    if w.startswith("ROI: "):
        w = "Region boxes: " + w[5:]
    if w.startswith("hand not found"):
        w += " (fallback: the estimate is less reliable)"
    return (w[:1].upper() + w[1:]).rstrip(".") + "."


@st.cache_data(show_spinner=False, max_entries=16)
def cached_pdf(key: str, _pred, name: str, patient_id: str | None = None, accession_number: str | None = None,
         _follow_up=None) -> bytes:
    from ..report import make_pdf_report

    return make_pdf_report(image_rgb=_pred.overlay_rgb(), bone_age_months=_pred.bone_age_months,
                           uncertainty_months=_pred.uncertainty_months, sex=_pred.sex,
                           model_version=_pred.model_version, interpretation=_pred.clinical,
                           warnings=[plain_warning(w) for w in _pred.warnings], patient_label=name,
                           patient_id=patient_id, accession_number=accession_number, follow_up=_follow_up,
                           interval_90_months=_pred.interval_90_months)


def follow_up_pdf(key: str, pred, name: str, follow_up) -> bytes:
    """The latest visit's report with every visit on its chart and the bone-age velocity."""
    meta = pred.image_meta
    return cached_pdf(key, pred, name, getattr(meta, "patient_id", None), getattr(meta, "accession_number", None),
                _follow_up=follow_up)


def show_interpretation(c) -> None:
    """The clinical numbers; where one is missing, its reason in place of the number."""
    st.markdown("**Clinical interpretation**")
    st.info(c.summary(), icon=":material/stethoscope:")
    m = st.columns(3)
    m[0].metric("Status", c.status_range or c.status,
                help="Beyond ±2 SD of the Greulich–Pyle reference: delayed / advanced"
                     + ("; over the bone age's 90 % interval." if c.status_range else "."))
    if c.z_range is not None:
        m[1].metric("Z-score", f"{c.z_range[0]:+.1f} to {c.z_range[1]:+.1f}",
                    help=f"Z at the estimate {c.z_text}; the range is over the bone age's 90 % interval.")
    elif c.z_text is not None:
        m[1].metric("Z-score", c.z_text, help=None if c.z_score is not None else "A lower bound: " + c.status_reason)
    else:
        m[1].metric("Z-score", "not given", help=c.status_reason)
    if c.predicted_adult_height_cm is not None and c.predicted_adult_height_range_cm is not None:
        lo, hi = c.predicted_adult_height_range_cm
        m[2].metric("Predicted adult height", f"{lo:.0f}–{hi:.0f} cm",
                    help=f"Over the bone age's 90 % interval; {c.predicted_adult_height_cm:.1f} cm at the estimate."
                         + (f" {c.adult_height_note}" if c.adult_height_note else ""))
    elif c.predicted_adult_height_cm is not None:
        m[2].metric("Predicted adult height", f"{c.predicted_adult_height_cm:.1f} cm", help=c.adult_height_note)
    else:
        m[2].metric("Predicted adult height", "not given", help=c.adult_height_note)
    if c.uncertainty_note:
        st.warning(c.uncertainty_note, icon=":material/error_med:")
    if c.z_score is None:
        st.caption(f"Z-score: {c.status_reason}.")
    if c.percentile_text is not None:
        st.caption(f"Percentile {c.percentile_text}.")
    if c.adult_height_note and c.height_cm is not None:
        st.caption(f"Adult height: {c.adult_height_note}.")
    elif c.height_cm is None:
        st.caption("Adult height: give the current height for the Bayley–Pinneau prediction.")
    if c.target_height_cm is not None:
        lo, hi = c.target_height_range_cm
        t = st.columns(2)
        t[0].metric("Target height (mid-parental)", f"{c.target_height_cm:.1f} cm",
                    help="Tanner: (father + mother ± 13 cm) / 2; range ± 8.5 cm.")
        t[1].metric("Target range", f"{lo:.1f}–{hi:.1f} cm")
        if c.target_comparison:
            st.caption(c.target_comparison + ".")


def show_prediction(pred, src: Source, *, patient_id: str | None = None, accession_number: str | None = None) -> None:
    """Numbers, warnings, heatmap, clinical interpretation, growth chart and downloads."""
    from ..charts import growth_chart

    st.subheader("Result")
    # Three columns, years and months under the bone age: four metrics cut "191.0 months" and "± 15.1 months"
    # short at a 1400-pixel window (seen in the browser screenshots).
    cols = st.columns(3)
    cols[0].metric("Bone age", f"{pred.bone_age_months:.1f} months", pred.bone_age_years_text, delta_color="off",
                   delta_arrow="off")
    if pred.interval_90_months is not None:
        lo, hi = pred.interval_90_months
        cols[1].metric("90 % interval", f"{lo:.0f}–{hi:.0f} months",
                       help="Calibrated on the validation radiographs (split-conformal, by age band, sex and the "
                            "spread over test-time augmentation): 9 in 10 true bone ages fall inside.")
    else:
        cols[1].metric("Uncertainty (1 SD)", f"± {pred.uncertainty_months:.1f} months",
                       help="Validation residual SD combined with the spread over test-time augmentation.")
    if src.sample is not None:
        diff = pred.bone_age_months - src.sample.boneage_months
        cols[2].metric("Reader's bone age", f"{src.sample.boneage_months:.0f} months", f"{diff:+.1f} months (model − reader)",
                       delta_color="off")
    else:
        cols[2].metric("Sex", sex_label(pred.sex).capitalize())

    if pred.warnings:
        for w in pred.warnings:
            st.warning(plain_warning(w), icon=":material/warning:")
    else:
        st.success("No warnings: hand found, orientation and polarity as expected.", icon=":material/check_circle:")

    left, right = st.columns(2)
    with left:
        view = st.segmented_control("View", ["Attention overlay", "Plain radiograph"], default="Attention overlay",
                                    key="predict_view", help="Switch the model's attention map on and off.")
        if view == "Plain radiograph":
            st.image(downscale(pred.plain_rgb()), width="stretch",
                     caption="Aligned radiograph (standard left-hand view) with the ROI boxes")
        else:
            st.image(downscale(pred.overlay_rgb()), width="stretch",
                     caption="Aligned radiograph with the model's attention (brightest = most; clear where it is "
                             "under half its peak; key on the right) and the ROI boxes")

    with right:
        if pred.clinical is not None:
            show_interpretation(pred.clinical)
        else:
            st.caption("Give the chronological age above for the clinical interpretation (Greulich–Pyle status, "
                       "Z-score, adult height).")
        ca = pred.clinical.chronological_age_months if pred.clinical is not None else None
        st.plotly_chart(growth_chart(pred.sex, pred.bone_age_months, ca, pred.interval_90_months or pred.uncertainty_months),
                        width="stretch")

    download_row(live_downloads("predict"), prediction_files(pred, src, patient_id, accession_number))

    with st.expander("Details: pipeline measurements, test-time augmentation, image metadata"):
        st.json({"pipeline": {k: v for k, v in pred.pipeline.summary().items() if k != "params"},
                 "tta_predictions_months": [round(v, 1) for v in pred.tta_predictions],
                 "tta_sd_months": round(pred.tta_sd_months, 2),
                 "image": pred.image_meta.to_dict() if pred.image_meta is not None else None,
                 "model_version": pred.model_version}, expanded=False)


def show_refusal(e) -> None:
    """A refused image: the reason, no bone age, no downloads (the contract of issue 10)."""
    st.error(f"This does not look like a child's hand radiograph: {e.reason}.", icon=":material/block:")
    st.caption("The check compares the image, the hand outline and the model's own features with the hand "
               "radiographs the model was trained on. For research on unusual images, tick **Predict anyway** "
               "below: the result then says it was not accepted.")


def stage_caption(name: str, res) -> str:
    """Stage name, what it does, and what it measured."""
    note = STAGE_NOTES.get(name, "")
    extra = ""
    if name == "polarity":
        extra = " Flipped." if res.inverted else " Not inverted."
    elif name == "mask":
        extra = (f" Hand covers {res.hand_area_fraction:.0%} of the frame." if res.hand_found
                 else f" No hand found ({res.failed_stages.get('mask', '')}); whole image used.")
    elif name == "aligned":
        extra = f" Rotated {res.rotation_deg:+.1f}°."
    elif name == "canonical":
        extra = f" Acquired as a {res.laterality} hand{'; mirrored' if res.mirrored else ''}."
    elif name == "rois":
        extra = f" {len(res.rois)} boxes." if res.rois else " No boxes."
    elif name == "threshold":
        extra = f" Method: {res.params.threshold}."
    elif name == "clahe":
        extra = f" Clip {res.params.clahe_clip:g}, {res.params.clahe_tiles}×{res.params.clahe_tiles} tiles."
    return f"{name} — {note}{extra}"


def show_pipeline(res, columns: int = 4) -> None:
    """Measurements, warnings and every stage image in order with its caption."""
    m = st.columns(5)
    m[0].metric("Rotation", f"{res.rotation_deg:+.1f}°")
    m[1].metric("Hand", res.laterality + (" (mirrored)" if res.mirrored else ""))
    m[2].metric("Polarity", "inverted → fixed" if res.inverted else "normal")
    m[3].metric("Hand area", f"{res.hand_area_fraction:.0%}" if res.hand_found else "not found")
    m[4].metric("ROI boxes", len(res.rois))
    for w in res.warnings:
        st.warning(plain_warning(w), icon=":material/warning:")
    names = [s for s in STAGES if s in res.stages]
    for row in range(0, len(names), columns):
        cols = st.columns(columns)
        for col, name in zip(cols, names[row : row + columns]):
            with col:
                st.image(downscale(res.stages[name], 480), caption=f"{names.index(name) + 1}. {stage_caption(name, res)}",
                         width="stretch")
    if res.rois:
        with st.expander("ROI boxes (x, y, width, height in the aligned image)"):
            st.dataframe(pd.DataFrame([{"roi": k, "x": b[0], "y": b[1], "width": b[2], "height": b[3]}
                                       for k, b in res.rois.items()]), hide_index=True)
