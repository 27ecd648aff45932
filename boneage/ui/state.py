"""What the app keeps between reruns: the model in use (its identity and cached :class:`Predictor`)
and per-image work cached by the file's content hash (decoded image, pipeline stages, prediction).

Cache keys carry the content hash, the parameters and the model identity
(``folder:model_version``), so a new model or a changed file never shows a stale result; the
image bytes travel as ``_``-prefixed arguments, which Streamlit does not hash. Cached results hold
every stage image (tens of MB for a large upload), hence the small ``max_entries``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from .. import bundle
from ..io import load_image
from ..pipeline import PipelineParams

if TYPE_CHECKING:
    from .inputs import Sample

NOTICE = "Research software, not a medical device: not for diagnosis."


# ------------------------------------------------------------------------------------ model


def model_dir() -> Path:
    """The model folder in use: ``$BONEAGE_MODEL`` (a folder or a .keras file) or ``models/`` (:func:`bundle.resolve`)."""
    return bundle.resolve().dir


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_meta() -> dict:
    """``meta.json`` of the model in use, read without loading TensorFlow ({} when absent or malformed:
    loading the model then says what is wrong, in one line)."""
    b = bundle.resolve()
    try:
        return bundle.read_meta(b).to_dict() if b.meta_file.is_file() else {}
    except bundle.BundleError:
        return {}


def model_version() -> str:
    try:
        return bundle.read_meta().model_version
    except bundle.BundleError:
        return "unreadable meta.json"


def model_identity() -> str:
    """Cache key for the model in use: its folder and version."""
    return f"{model_dir()}:{model_version()}"


@st.cache_resource(show_spinner=False, max_entries=2)
def _load_predictor(path: str, mtime: float):
    from ..predict import Predictor

    return Predictor.load(path)


def _model_key() -> tuple[str, float]:
    b = bundle.resolve()
    return str(b.dir), (b.model_file.stat().st_mtime if b.exists() else 0.0)


@st.cache_resource(show_spinner=False)
def _background_load(path: str, mtime: float) -> threading.Thread:
    """Load and warm the model in a background thread, once per server (and model file)."""
    def work():
        try:
            _load_predictor(path, mtime).warm_up()
        except Exception:  # noqa: BLE001 - a broken bundle is reported where the model is used
            pass

    t = threading.Thread(target=work, name="boneage-model-warm-up", daemon=True)
    t.start()
    return t


def start_model_load() -> None:
    """Begin loading the model as the app starts, not on the first click.

    Streamlit runs no app code until a browser connects, so this runs on the first page load;
    loading (≈ 17 s on 2 busy cores) and the first traced call then happen while the user picks a
    file. ``get_predictor`` shares the same cache entry, so a click during the load waits for it
    rather than loading a second copy.
    """
    _background_load(*_model_key())


def get_predictor():
    """The shared, cached :class:`Predictor` (reloaded when the model file changes)."""
    with st.spinner("Loading the model (first use only)…"):
        return _load_predictor(*_model_key())


def model_pipeline_params() -> PipelineParams:
    try:
        return bundle.read_meta().pipeline
    except bundle.BundleError:
        return PipelineParams()


def sidebar() -> None:
    with st.sidebar:
        st.caption(f"Model: **{model_version()}**")
        st.warning(NOTICE, icon=":material/health_and_safety:")


# ------------------------------------------------------------------------------------ per-image work


@dataclass(frozen=True)
class Source:
    """An image to work on: its bytes, a display name, the content hash, the sample if it is one."""

    data: bytes
    name: str
    digest: str
    sample: Sample | None = None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False, max_entries=8)
def _load(key: str, _data: bytes, name: str):
    return load_image(_data, name=name)


def load(src: Source):
    """The decoded image (float gray + metadata), cached by content hash."""
    return _load(src.digest, src.data, src.name)


@st.cache_data(show_spinner=False, max_entries=12)
def _pipeline(key: str, _data: bytes, name: str, params: dict):
    from ..pipeline import run_pipeline

    return run_pipeline(_load(key, _data, name).pixels, PipelineParams.from_dict(params))


def run_pipeline_cached(src: Source, params: PipelineParams):
    """All pipeline stages for ``src`` with ``params``, cached by content hash and parameters."""
    return _pipeline(src.digest, src.data, src.name, params.to_dict())


@st.cache_data(show_spinner=False, max_entries=12)
def _predict(key: str, _data: bytes, name: str, sex: str | None, chronological_age_months: float | None,
             birth_date: dt.date | None, study_date: dt.date | None, height_cm: float | None, model: str,
             father_height_cm: float | None = None, mother_height_cm: float | None = None,
             accept_unusual: bool = False):
    loaded = _load(key, _data, name)
    # fill_from_tags=False: the widgets were pre-filled from the tags, so what they say is what is used
    # ("Not given" means not given); tags that disagree with them still earn a warning.
    return _load_predictor(*_model_key()).predict(loaded, sex=sex, chronological_age_months=chronological_age_months,
                                   birth_date=birth_date, study_date=study_date, height_cm=height_cm,
                                   father_height_cm=father_height_cm, mother_height_cm=mother_height_cm, name=name,
                                   fill_from_tags=False, accept_unusual=accept_unusual)


def predict(src: Source, sex: str | None, *, chronological_age_months: float | None = None,
            birth_date: dt.date | None = None, study_date: dt.date | None = None, height_cm: float | None = None,
            father_height_cm: float | None = None, mother_height_cm: float | None = None,
            accept_unusual: bool = False):
    """``Predictor.predict`` on ``src``, cached by content hash and inputs (and the model in use).
    Raises :class:`boneage.acceptance.NotAcceptedError` for a refused image (not cached)."""
    get_predictor()  # load (with its own spinner) before the per-image spinner
    with st.spinner("Reading the bone age…"):
        return _predict(src.digest, src.data, src.name, sex, chronological_age_months, birth_date, study_date,
                        height_cm, model_identity(), father_height_cm, mother_height_cm, accept_unusual)
