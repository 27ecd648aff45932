"""Shared Streamlit helpers for the app (``app.py`` and ``pages/``).

The pages are layout only; this module holds what they share: the cached :class:`Predictor`,
per-image results cached by the file's content hash, the sample gallery, the sidebar, the input
widgets and result panels, and :func:`guard`, which turns any error into a one-line ``st.error``
so no traceback ever reaches the user. All real work is done by the rest of ``boneage``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from .io import ImageError, load_image, to_uint8
from .paths import MODELS_DIR, SAMPLES_DIR, shared_data_dir
from .pipeline import STAGES, PipelineParams

log = logging.getLogger("boneage.ui")

NOTICE = "Research software, not a medical device: not for diagnosis."
ATTRIBUTION = ("Sample radiographs: RSNA Pediatric Bone Age Machine Learning Challenge 2017 (Halabi SS et al., "
               "Radiology 2019;290(2):498–503), redistributed for non-commercial research and education.")
UPLOAD_MODE, SAMPLE_MODE = "Upload a radiograph", "Use a sample"
UPLOAD_HELP = "PNG, JPEG, BMP, TIFF (8- or 16-bit) or DICOM; the format is read from the content."
DISPLAY_MAX_SIDE = 900  # images are downscaled to this for the browser; keeps reruns fast
# Cached results hold every stage image (tens of MB for a large upload): keep a few per server.
STAGE_NOTES = {
    "input": "As loaded: grayscale, intensities scaled to 0–1 (16-bit kept until here).",
    "resized": "Fitted into the study's 800×1000 frame (thumbnails stretched back to the hand's aspect).",
    "normalised": "Min–max normalised so exposure differences do not reach the model.",
    "polarity": "Inverted films (bone dark) are flipped back.",
    "denoised": "Noise suppressed before contrast enhancement.",
    "clahe": "CLAHE: local contrast enhancement (clip limit, tile grid).",
    "threshold": "Foreground threshold (mean or Otsu).",
    "mask": "Hand mask: the largest region, filled.",
    "aligned": "Rotated so the middle finger points straight up.",
    "aligned_mask": "The mask after alignment (and mirroring).",
    "canonical": "Standard view: a left hand, fingers up.",
    "rois": "Regions of interest: middle finger, thumb, carpals, wrist.",
    "model_input": "What the network sees: the hand on black, cropped and resized.",
}


# ------------------------------------------------------------------------------------ errors


def friendly_message(exc: BaseException) -> str:
    """One line a user can act on, for any exception."""
    if _is_input_error(exc):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory for this image; try a smaller file."
    text = " ".join(str(exc).split())[:200]
    return f"Something went wrong ({exc.__class__.__name__}{': ' + text if text else ''}). Details are in the server log."


@contextmanager
def guard(what: str | None = None):
    """Run a page body; show an unexpected error as one ``st.error`` line, never a traceback."""
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

    try:
        yield
    except ScriptControlException:  # st.stop / st.rerun / st.switch_page: Streamlit's own control flow
        raise
    except Exception as exc:  # noqa: BLE001 - the point is that nothing escapes to the user
        if _is_input_error(exc):  # bad input: the message says it all
            log.info("%s: %s", what or "page", exc)
            st.error(friendly_message(exc), icon=":material/error:")
        else:
            log.exception("error in %s", what or "page")
            st.error((f"{what}: " if what else "") + friendly_message(exc), icon=":material/error:")


def _is_input_error(exc: BaseException) -> bool:
    from .clinical import ClinicalInputError
    from .dataset_plots import PredictionsError
    from .predict import PredictionError

    return isinstance(exc, (ImageError, PredictionError, ClinicalInputError, PredictionsError))


# ------------------------------------------------------------------------------------ model


def model_dir() -> Path:
    """The model folder in use: ``$BONEAGE_MODEL`` (a folder or a .keras file) or ``models/``."""
    p = Path(os.environ.get("BONEAGE_MODEL") or MODELS_DIR)
    return p.parent if p.suffix == ".keras" else p


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_meta() -> dict:
    """``meta.json`` of the model in use, read without loading TensorFlow ({} when absent)."""
    return read_json(model_dir() / "meta.json") or {}


def model_version() -> str:
    meta = model_meta()
    if meta.get("model_version"):
        return str(meta["model_version"])
    return "no model found" if not (model_dir() / "model.keras").is_file() else "unversioned"


@st.cache_resource(show_spinner=False, max_entries=2)
def _load_predictor(path: str, mtime: float):
    from .predict import Predictor

    return Predictor.load(path)


def _model_key() -> tuple[str, float]:
    d = model_dir()
    f = d / "model.keras"
    return str(d), (f.stat().st_mtime if f.is_file() else 0.0)


def get_predictor():
    """The shared, cached :class:`Predictor` (reloaded when the model file changes)."""
    with st.spinner("Loading the model (first use only)…"):
        return _load_predictor(*_model_key())


def model_pipeline_params() -> PipelineParams:
    return PipelineParams.from_dict(model_meta().get("pipeline"))


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Model: **{model_version()}**")
        st.warning(NOTICE, icon=":material/health_and_safety:")


# ------------------------------------------------------------------------------------ images


@dataclass(frozen=True)
class Sample:
    id: str
    path: str
    boneage_months: float
    male: bool

    @property
    def sex(self) -> str:
        return "M" if self.male else "F"

    @property
    def label(self) -> str:
        return f"#{self.id} · {'boy' if self.male else 'girl'} · reader {format_months(self.boneage_months)}"


@dataclass(frozen=True)
class Source:
    """An image to work on: its bytes, a display name, the content hash, the sample if it is one."""

    data: bytes
    name: str
    digest: str
    sample: Sample | None = None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_months(m: float) -> str:
    y, mm = divmod(int(round(max(0.0, float(m)))), 12)
    return f"{y} y {mm} m"


@st.cache_data(show_spinner=False)
def samples() -> list[Sample]:
    """The bundled demo radiographs (``samples/`` with its labels), youngest first."""
    labels = SAMPLES_DIR / "labels.csv"
    if not labels.is_file():
        return []
    df = pd.read_csv(labels, dtype={"id": str})
    out = []
    for r in df.sort_values("boneage_months").itertuples(index=False):
        p = SAMPLES_DIR / f"{r.id}.png"
        if p.is_file():
            out.append(Sample(str(r.id), str(p), float(r.boneage_months), str(r.male).strip().lower() == "true"))
    return out


def sample_source(sample: Sample) -> Source:
    data = Path(sample.path).read_bytes()
    return Source(data, Path(sample.path).name, digest(data), sample)


def downscale(img: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """uint8 copy no larger than ``max_side`` for display (float images scaled from [0, 1])."""
    import cv2

    a = img if img.dtype == np.uint8 else to_uint8(img)
    h, w = a.shape[:2]
    s = max_side / max(h, w)
    if s < 1:
        a = cv2.resize(a, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return a


@st.cache_data(show_spinner=False, max_entries=64)
def thumbnail(path: str, max_side: int = 260) -> np.ndarray:
    return downscale(load_image(path).pixels, max_side)


@st.cache_data(show_spinner=False, max_entries=8)
def _load(key: str, _data: bytes, name: str):
    return load_image(_data, name=name)


def load(src: Source):
    """The decoded image (float gray + metadata), cached by content hash."""
    return _load(src.digest, src.data, src.name)


@st.cache_data(show_spinner=False, max_entries=12)
def _pipeline(key: str, _data: bytes, name: str, params: dict):
    from .pipeline import run_pipeline

    return run_pipeline(_load(key, _data, name).pixels, PipelineParams.from_dict(params))


def run_pipeline_cached(src: Source, params: PipelineParams):
    """All pipeline stages for ``src`` with ``params``, cached by content hash and parameters."""
    return _pipeline(src.digest, src.data, src.name, params.to_dict())


@st.cache_data(show_spinner=False, max_entries=12)
def _predict(key: str, _data: bytes, name: str, sex: str | None, chronological_age_months: float | None,
             birth_date: dt.date | None, study_date: dt.date | None, height_cm: float | None, model: str):
    loaded = _load(key, _data, name)
    return _load_predictor(*_model_key()).predict(loaded, sex=sex, chronological_age_months=chronological_age_months,
                                   birth_date=birth_date, study_date=study_date, height_cm=height_cm, name=name)


def predict(src: Source, sex: str | None, *, chronological_age_months: float | None = None,
            birth_date: dt.date | None = None, study_date: dt.date | None = None, height_cm: float | None = None):
    """``Predictor.predict`` on ``src``, cached by content hash and inputs (and the model in use)."""
    get_predictor()  # load (with its own spinner) before the per-image spinner
    with st.spinner("Reading the bone age…"):
        return _predict(src.digest, src.data, src.name, sex, chronological_age_months, birth_date, study_date,
                        height_cm, f"{model_dir()}:{model_version()}")


def image_source(key: str, *, allow_upload: bool = True) -> Source | None:
    """Upload or sample picker. Returns the chosen image, or None while nothing is chosen.

    A sample chosen in the Home gallery arrives as ``st.session_state["demo_sample"]``.
    """
    demo = st.session_state.pop("demo_sample", None)
    if demo is not None:
        st.session_state[f"{key}_mode"] = SAMPLE_MODE
        st.session_state[f"{key}_sample"] = demo
    mode = st.radio("Image", (UPLOAD_MODE, SAMPLE_MODE), horizontal=True, key=f"{key}_mode",
                    label_visibility="collapsed") if allow_upload else SAMPLE_MODE
    if mode == UPLOAD_MODE:
        up = st.file_uploader("Radiograph", key=f"{key}_upload", help=UPLOAD_HELP)
        st.caption(UPLOAD_HELP)
        if up is None:
            return None
        data = up.getvalue()
        return Source(data, up.name, digest(data))
    ss = samples()
    if not ss:
        st.info("No sample radiographs are bundled with this installation.")
        return None
    by_id = {s.id: s for s in ss}
    if st.session_state.get(f"{key}_sample") not in by_id:
        st.session_state[f"{key}_sample"] = ss[0].id
    sid = st.selectbox("Sample radiograph", list(by_id), key=f"{key}_sample", format_func=lambda i: by_id[i].label)
    return sample_source(by_id[sid])


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link``, or plain text when the page runs on its own (outside ``app.py``'s navigation)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        st.markdown(f"{label} (open the app with `streamlit run app.py`)")


def sample_gallery(columns: int = 4) -> str | None:
    """Thumbnails of the bundled samples, each with a button; returns the id clicked."""
    clicked = None
    ss = samples()
    for row in range(0, len(ss), columns):
        cols = st.columns(columns)
        for col, s in zip(cols, ss[row : row + columns]):
            with col:
                st.image(thumbnail(s.path), caption=s.label, width="stretch")
                if st.button("Read bone age", key=f"gallery_{s.id}", width="stretch", icon=":material/play_arrow:"):
                    clicked = s.id
    st.caption(ATTRIBUTION)
    return clicked


# ------------------------------------------------------------------------------------ inputs


@dataclass
class ClinicalInputs:
    sex: str | None
    chronological_age_months: float | None = None
    birth_date: dt.date | None = None
    study_date: dt.date | None = None
    height_cm: float | None = None


AGE_NONE, AGE_DIRECT, AGE_DATES = "Not given", "Age (years + months)", "Birth and study dates"


def clinical_inputs(src: Source, meta) -> ClinicalInputs:
    """Sex, chronological age (or dates) and height; defaults from DICOM tags or the sample's label.

    Widget keys carry the image's hash so a new image starts from its own defaults.
    """
    k = src.digest[:12]
    sex_default = (src.sample.sex if src.sample else None) or getattr(meta, "sex", None)
    birth, study = getattr(meta, "birth_date", None), getattr(meta, "study_date", None)
    pat_age = getattr(meta, "patient_age_months", None)
    c1, c2, c3 = st.columns([1, 2, 1])
    with c1:
        opts = ("F", "M")
        sex = st.radio("Sex", opts, index=opts.index(sex_default) if sex_default in opts else None, horizontal=True,
                       key=f"sex_{k}", format_func=lambda s: "Female" if s == "F" else "Male",
                       help="Pre-filled from the DICOM tags when present. The reference differs for boys and girls.")
    with c2:
        modes = (AGE_NONE, AGE_DIRECT, AGE_DATES)
        default = AGE_DATES if (birth and study) else AGE_DIRECT if pat_age is not None else AGE_NONE
        mode = st.radio("Chronological age", modes, index=modes.index(default), horizontal=True, key=f"agemode_{k}",
                        help="Needed for the clinical interpretation; DICOM dates fill it in.")
        ca = bd = sd = None
        if mode == AGE_DIRECT:
            y0, m0 = divmod(int(round(pat_age)), 12) if pat_age is not None else (None, None)
            a, b = st.columns(2)
            years = a.number_input("Years", min_value=0, max_value=20, value=y0, step=1, key=f"ageyears_{k}")
            months = b.number_input("Months", min_value=0, max_value=11, value=m0 if m0 is not None else 0, step=1,
                                    key=f"agemonths_{k}")
            if years is not None:
                ca = float(years * 12 + (months or 0))
        elif mode == AGE_DATES:
            a, b = st.columns(2)
            lo, today = dt.date(1990, 1, 1), dt.date.today()
            bd = a.date_input("Birth date", value=birth, min_value=lo, max_value=today, key=f"birth_{k}")
            sd = b.date_input("Study date", value=study or today, min_value=lo, max_value=today, key=f"study_{k}")
    with c3:
        h = st.number_input("Height (cm, optional)", min_value=40.0, max_value=220.0, value=None, step=0.5,
                            key=f"height_{k}", help="For the Bayley–Pinneau adult height prediction.")
    return ClinicalInputs(sex=sex, chronological_age_months=ca, birth_date=bd or None, study_date=sd or None,
                          height_cm=h)


# ------------------------------------------------------------------------------------ results


def plain_warning(w: str) -> str:
    """A pipeline warning as a sentence a clinician reads without knowing the pipeline."""
    w = w.strip()
    if w.startswith("ROI: "):
        w = "Region boxes: " + w[5:]
    if w.startswith("hand not found"):
        w += " (fallback: the estimate is less reliable)"
    return (w[:1].upper() + w[1:]).rstrip(".") + "."


def prediction_record(pred, name: str) -> dict:
    return {"file": name, **pred.to_dict()}


def prediction_csv(record: dict) -> str:
    flat = {}
    for k, v in record.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                flat[f"{k}.{kk}"] = json.dumps(vv) if isinstance(vv, (dict, list)) else vv
        elif isinstance(v, list):
            flat[k] = " | ".join(map(str, v))
        else:
            flat[k] = v
    return pd.DataFrame([flat]).to_csv(index=False)


@st.cache_data(show_spinner=False, max_entries=16)
def _pdf(key: str, _pred, name: str) -> bytes:
    from .report import make_pdf_report

    return make_pdf_report(image_rgb=_pred.overlay_rgb(), bone_age_months=_pred.bone_age_months,
                           uncertainty_months=_pred.uncertainty_months, sex=_pred.sex,
                           model_version=_pred.model_version, interpretation=_pred.clinical,
                           warnings=[plain_warning(w) for w in _pred.warnings], patient_label=name)


def show_prediction(pred, src: Source) -> None:
    """Numbers, warnings, heatmap, clinical interpretation, growth chart and downloads."""
    from .charts import growth_chart

    st.subheader("Result")
    cols = st.columns(4)
    cols[0].metric("Bone age", f"{pred.bone_age_months:.1f} months")
    cols[1].metric("In years and months", pred.bone_age_years_text)
    cols[2].metric("Uncertainty (1 SD)", f"± {pred.uncertainty_months:.1f} months",
                   help="Validation residual SD combined with the spread over test-time augmentation.")
    if src.sample is not None:
        diff = pred.bone_age_months - src.sample.boneage_months
        cols[3].metric("Reader's bone age", f"{src.sample.boneage_months:.0f} months", f"{diff:+.1f} months (model − reader)",
                       delta_color="off")
    else:
        cols[3].metric("Sex", "Male" if pred.sex == "M" else "Female")

    if pred.warnings:
        for w in pred.warnings:
            st.warning(plain_warning(w), icon=":material/warning:")
    else:
        st.success("No warnings: hand found, orientation and polarity as expected.", icon=":material/check_circle:")

    left, right = st.columns(2)
    with left:
        st.image(downscale(pred.overlay_rgb()), width="stretch",
                 caption="Aligned radiograph (standard left-hand view) with the model's attention and the ROI boxes")
    with right:
        if pred.clinical is not None:
            st.markdown("**Clinical interpretation**")
            st.info(pred.clinical.summary(), icon=":material/stethoscope:")
            c = pred.clinical
            m = st.columns(3)
            m[0].metric("Status", c.status)
            m[1].metric("Z-score", "—" if c.z_score is None else f"{c.z_score:+.2f}")
            m[2].metric("Predicted adult height", "—" if c.predicted_adult_height_cm is None
                        else f"{c.predicted_adult_height_cm:.1f} cm")
            if c.status == "indeterminate":
                st.caption(f"Why indeterminate: {c.status_reason}.")
        else:
            st.caption("Give the chronological age above for the clinical interpretation (Greulich–Pyle status, "
                       "Z-score, adult height).")
        ca = pred.clinical.chronological_age_months if pred.clinical is not None else None
        st.plotly_chart(growth_chart(pred.sex, pred.bone_age_months, ca, pred.uncertainty_months), width="stretch")

    record = prediction_record(pred, src.name)
    d1, d2, d3 = st.columns(3)
    stem = Path(src.name).stem or "boneage"
    d1.download_button("Download JSON", json.dumps(record, indent=2, default=str), f"{stem}_boneage.json",
                       "application/json", icon=":material/download:", width="stretch", on_click="ignore")
    d2.download_button("Download CSV", prediction_csv(record), f"{stem}_boneage.csv", "text/csv",
                       icon=":material/download:", width="stretch", on_click="ignore")
    pdf_key = f"{src.digest}:{json.dumps(record, sort_keys=True, default=str)}"
    d3.download_button("Download PDF report", lambda: _pdf(pdf_key, pred, src.name), f"{stem}_boneage_report.pdf",
                       "application/pdf", icon=":material/picture_as_pdf:", width="stretch", on_click="ignore")

    with st.expander("Details: pipeline measurements, test-time augmentation, image metadata"):
        st.json({"pipeline": {k: v for k, v in pred.pipeline.summary().items() if k != "params"},
                 "tta_predictions_months": [round(v, 1) for v in pred.tta_predictions],
                 "tta_sd_months": round(pred.tta_sd_months, 2),
                 "image": pred.image_meta.to_dict() if pred.image_meta is not None else None,
                 "model_version": pred.model_version}, expanded=False)


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


# ------------------------------------------------------------------------------------ dataset page


def default_predictions_path() -> Path:
    return model_dir() / "val_predictions.csv"


def default_image_dirs() -> list[Path]:
    """Image folders the validation predictions may come from, those present first."""
    root = shared_data_dir()
    cands = [root / "train-100px", root / "hires", SAMPLES_DIR, root]
    return [p for p in cands if p.is_dir()]


def find_case_image(folder: str | Path, image_id: str) -> Path | None:
    from .data import find_image, image_dir

    f = Path(folder).expanduser()
    if not f.is_dir():
        return None
    for d in dict.fromkeys((f, image_dir(f))):
        p = find_image(d, str(image_id))
        if p is not None:
            return p
    return None


def render_mapping(d, level: int = 0) -> None:
    """A JSON document (model card, benchmarks) as headed sections and bullet lists."""
    if not isinstance(d, dict):
        st.write(d)
        return
    flat = {k: v for k, v in d.items() if not isinstance(v, (dict, list))}
    if flat:
        st.markdown("\n".join(f"- **{str(k).replace('_', ' ')}**: {v}" for k, v in flat.items()))
    for k, v in d.items():
        if isinstance(v, dict):
            st.markdown(f"{'#' * min(6, 4 + level)} {str(k).replace('_', ' ').capitalize()}")
            render_mapping(v, level + 1)
        elif isinstance(v, list):
            st.markdown(f"{'#' * min(6, 4 + level)} {str(k).replace('_', ' ').capitalize()}")
            if v and all(isinstance(x, dict) for x in v):
                st.dataframe(pd.DataFrame(v), hide_index=True)
            else:
                st.markdown("\n".join(f"- {x}" for x in v) or "_none_")



# ------------------------------------------------------------------------------------ model page


def model_files() -> dict:
    """What the model folder holds; each entry None when its file is absent or unreadable."""
    d = model_dir()
    history = None
    if (d / "history.csv").is_file():
        try:
            history = pd.read_csv(d / "history.csv")
        except Exception:  # noqa: BLE001 - a damaged file is shown as absent, with the others
            log.warning("unreadable %s", d / "history.csv")
    readme = (d / "README.md").read_text(encoding="utf-8", errors="replace") if (d / "README.md").is_file() else None
    return {"dir": d, "meta": model_meta(), "card": read_json(d / "card.json"), "readme": readme,
            "history": history if history is not None and len(history) else None,
            "benchmarks": read_json(d / "benchmarks.json"), "metrics": read_json(d / "metrics.json")}


@st.cache_data(show_spinner=False, max_entries=2)
def _architecture(model: str) -> dict:
    net = _load_predictor(*_model_key()).model
    lines: list[str] = []
    net.summary(print_fn=lambda s, **_: lines.append(s), line_length=110)
    trainable = int(sum(np.prod(w.shape) for w in net.trainable_weights))
    return {"name": net.name, "params": int(net.count_params()), "trainable": trainable, "layers": len(net.layers),
            "inputs": ", ".join(f"{i.name} {tuple(i.shape)}" for i in net.inputs), "text": "\n".join(lines)}


def architecture_summary() -> dict:
    """Name, parameter counts and Keras's layer summary of the model in use."""
    get_predictor()
    with st.spinner("Summarising the architecture…"):
        return _architecture(f"{model_dir()}:{model_version()}")


def safe_thumbnail(path: str | Path, max_side: int = 220) -> np.ndarray | None:
    """A thumbnail, or None when the file is not a readable image (one bad file must not hide the rest)."""
    try:
        return thumbnail(str(path), max_side)
    except ImageError as e:
        log.info("thumbnail: %s", e)
        return None
