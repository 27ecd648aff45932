"""Input widgets: the image picker (upload or bundled sample) and the clinical inputs.

Widget keys carry a page prefix (``predict_mode``…) and, for the clinical inputs, the image's
hash, so a new image starts from its own defaults.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from ..clinical_inputs import ClinicalInputs as CoreClinicalInputs
from ..clinical_inputs import tag_inputs
from ..paths import SAMPLES_DIR
from ..vocab import SEX_CODES, Sex, format_age, from_male, male_or_none, sex_label, sex_word
from .state import Source, digest

UPLOAD_MODE, SAMPLE_MODE = "Upload a radiograph", "Use a sample"
UPLOAD_HELP = "PNG, JPEG, BMP, TIFF (8- or 16-bit) or DICOM; the format is read from the content."


# ------------------------------------------------------------------------------------ images


@dataclass(frozen=True)
class Sample:
    id: str
    path: str
    boneage_months: float
    male: bool

    @property
    def sex(self) -> Sex:
        return from_male(self.male)

    @property
    def label(self) -> str:
        return f"#{self.id} · {sex_word(self.sex)} · reader {format_age(self.boneage_months)}"


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
            out.append(Sample(str(r.id), str(p), float(r.boneage_months), bool(male_or_none(r.male))))
    return out


def sample_source(sample: Sample) -> Source:
    data = Path(sample.path).read_bytes()
    return Source(data, Path(sample.path).name, digest(data), sample)


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
        st.info("No sample radiographs are bundled with this installation (`samples/` is missing): upload one instead.")
        return None
    by_id = {s.id: s for s in ss}
    if st.session_state.get(f"{key}_sample") not in by_id:
        st.session_state[f"{key}_sample"] = ss[0].id
    sid = st.selectbox("Sample radiograph", list(by_id), key=f"{key}_sample", format_func=lambda i: by_id[i].label)
    return sample_source(by_id[sid])


# ------------------------------------------------------------------------------------ clinical inputs


@dataclass(frozen=True)
class ClinicalInputs(CoreClinicalInputs):
    """What the widgets say: :class:`boneage.clinical_inputs.ClinicalInputs` plus the report header's ids."""

    patient_id: str | None = None  # for the report header only (never sent to the model)
    accession_number: str | None = None

    @property
    def clinical_kwargs(self) -> dict:
        """The keyword arguments of ``ui.predict`` / ``Predictor.predict`` these inputs give."""
        return self.interpret_kwargs()


AGE_NONE, AGE_DIRECT, AGE_DATES = "Not given", "Age (years + months)", "Birth and study dates"
DATE_MIN = dt.date(1900, 1, 1)  # the date widgets' lower limit (older dates widen it)


def _date_bounds(*values: dt.date | None) -> tuple[dt.date, dt.date]:
    """Widget limits wide enough for any date a user or a tag may bring (Streamlit raises outside them)."""
    given = [v for v in values if v is not None]
    return min([DATE_MIN, *given]), max([dt.date.today(), *given])


def clinical_inputs(src: Source, meta) -> ClinicalInputs:
    """Sex, chronological age (or dates) and height; defaults from DICOM tags or the sample's label.

    Defaults come from the tags that pass :func:`boneage.clinical_inputs.tag_inputs` (implausible
    ones are left out; the prediction's warnings say why). Widget keys carry the image's hash so a
    new image starts from its own defaults.
    """
    k = src.digest[:12]
    tags = tag_inputs(meta)
    sex_default = (src.sample.sex if src.sample else None) or tags.sex
    birth, study = tags.birth_date, tags.study_date
    pat_age = tags.patient_age_months
    c1, c2, c3 = st.columns([1, 2, 1])
    with c1:
        opts = SEX_CODES
        sex = st.radio("Sex", opts, index=opts.index(sex_default) if sex_default in opts else None, horizontal=True,
                       key=f"sex_{k}", format_func=lambda s: sex_label(s).capitalize(),
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
            lo, hi = _date_bounds(birth, study, st.session_state.get(f"birth_{k}"), st.session_state.get(f"study_{k}"))
            bd = a.date_input("Birth date", value=birth, min_value=lo, max_value=hi, key=f"birth_{k}")
            sd = b.date_input("Study date", value=study or dt.date.today(), min_value=lo, max_value=hi,
                              key=f"study_{k}")
            if bd is None:  # not typed yet: a prompt, not an error (the study date alone means nothing)
                st.caption("Enter the birth date: the age on the study date is worked out from the two.")
                sd = None
    with c3:
        h = st.number_input("Height (cm, optional)", min_value=40.0, max_value=220.0, value=None, step=0.5,
                            key=f"height_{k}", help="For the Bayley–Pinneau adult height prediction.")
    father, mother, pid, acc = parents_and_ids(k, meta)
    return ClinicalInputs(sex=sex, chronological_age_months=ca, birth_date=bd or None, study_date=sd or None,
                          height_cm=h, father_height_cm=father, mother_height_cm=mother, patient_id=pid,
                          accession_number=acc)


#: Parents' heights are accepted by the widget over a wide range and checked by
#: boneage.clinical, so nonsense (a mother of 300 cm) gets its one-line reason
#: instead of a silently clamped number.
PARENT_INPUT_MAX_CM = 400.0


def parents_and_ids(k: str, meta) -> tuple[float | None, float | None, str | None, str | None]:
    """Parents' heights (mid-parental target height) and the report's patient ID / accession number.

    The IDs are pre-filled from the DICOM tags and only label the PDF.
    """
    with st.expander("Parents' heights (target height) and report labels", expanded=False):
        p1, p2, p3, p4 = st.columns(4)
        father = p1.number_input("Father's height (cm)", min_value=0.0, max_value=PARENT_INPUT_MAX_CM, value=None,
                                 step=0.5, key=f"father_{k}",
                                 help="With the mother's height: the mid-parental target height (Tanner).")
        mother = p2.number_input("Mother's height (cm)", min_value=0.0, max_value=PARENT_INPUT_MAX_CM, value=None,
                                 step=0.5, key=f"mother_{k}")
        pid = p3.text_input("Patient ID", value=getattr(meta, "patient_id", None) or "", key=f"pid_{k}",
                            help="Printed on the PDF report; pre-filled from the DICOM.")
        acc = p4.text_input("Accession number", value=getattr(meta, "accession_number", None) or "",
                            key=f"acc_{k}", help="Printed on the PDF report; pre-filled from the DICOM.")
    return father, mother, pid.strip() or None, acc.strip() or None
