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
import sys
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
        import time

        from streamlit.logger import get_logger  # Streamlit's handler and level: the line shows in the server log

        t0 = time.perf_counter()
        try:
            predictor = _load_predictor(path, mtime)
            predictor.warm_up()
        except Exception as e:  # noqa: BLE001 - a broken bundle is reported where the model is used
            get_logger("boneage").warning("model not loaded at start (%s); the pages will say why", type(e).__name__)
            return
        try:  # first uses that would otherwise fall on a user's first reading (2 cores, 2026-11-28):
            import pydicom  # noqa: F401 - 0.47 s of imports on the first DICOM upload

            from ..charts import growth_chart

            growth_chart("F", 120.0, 118.0, (100.0, 140.0))  # plotly's first figure: 0.14 s more than later ones
        except Exception:  # noqa: BLE001 - only a warm-up
            pass
        freeze_long_lived()
        get_logger("boneage").info("model %s loaded and warmed up in %.1f s", predictor.model_version,
                                   time.perf_counter() - t0)

    t = threading.Thread(target=work, name="boneage-model-warm-up", daemon=True)
    t.start()
    return t


def keep_keras_session() -> None:
    """Stop Streamlit from resetting Keras after every script run (idempotent; call at app start).

    Streamlit's script runner calls ``keras.backend.clear_session()`` after each run
    (``_clean_problem_modules``, for apps that build models in the script). Ours loads one model
    into ``st.cache_resource`` and builds nothing per run, and the reset cost every rerun dearly,
    measured 2026-11-28 on 2 cores: 433–443 ms of full garbage collection with the interpreter lock
    held (the browser got nothing meanwhile), and the TensorFlow kernel cache cleared, so the next
    prediction of a 2000×2500 radiograph took 880–1038 ms instead of 294–331 ms. It could also
    reset Keras's global state while the background thread was loading the model. What Streamlit's
    cleanup does besides (closing matplotlib figures) is kept. A private Streamlit function: if a
    later Streamlit renames it, nothing is patched and ``tests/test_app.py`` says so.
    """
    from streamlit.runtime.scriptrunner import script_runner

    current = getattr(script_runner, "_clean_problem_modules", None)
    if current is None or getattr(current, "_boneage", False):
        return  # Streamlit no longer has it, or it is patched already

    def clean_problem_modules() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except Exception:  # noqa: BLE001 - as Streamlit's own cleanup: never fail the app for it
                pass

    clean_problem_modules._boneage = True  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = clean_problem_modules


def freeze_long_lived() -> None:
    """Move every object alive now (TensorFlow, Keras, the loaded model: ≈ 440,000 of them) out of
    the garbage collector's view, so a full collection no longer walks them.

    Why: a full collection then costs 0.5 s on 2 cores with the interpreter lock held, during
    which the server sends nothing to the browser (measured 2026-11-28: 455–555 ms before, 0 ms
    after ``gc.freeze()``). These objects live as long as the server, so nothing is lost by not
    collecting them. ``.streamlit/config.toml`` also turns off Streamlit's collection after every
    run; this covers Python's own full collections and any caller that forces one.
    """
    import gc

    gc.collect()  # what is garbage now is freed first, not frozen
    gc.freeze()


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


# Per-image results are cached as objects (st.cache_resource), not pickled copies (st.cache_data):
# nothing downstream changes them (Predictor copies the warnings it adds to; the pages only read),
# and pickling cost each new 2000×2500 upload ≈ 0.2 s to store the decoded image and the ≈ 34 MB
# Prediction (all pipeline stages) and every later rerun ≈ 0.07 s to unpickle them, measured
# 2026-11-28 with py-spy on the app's server (2 cores). The caches are shared by all sessions,
# as st.cache_data's were, keyed by the content hash.
_image_cache = st.cache_resource


@_image_cache(show_spinner=False, max_entries=8)
def _load(key: str, _data: bytes, name: str):
    return load_image(_data, name=name)


def load(src: Source):
    """The decoded image (float gray + metadata), cached by content hash."""
    return _load(src.digest, src.data, src.name)


@_image_cache(show_spinner=False, max_entries=12)
def _pipeline(key: str, _data: bytes, name: str, params: dict):
    from ..pipeline import run_pipeline

    return run_pipeline(_load(key, _data, name), PipelineParams.from_dict(params))


def run_pipeline_cached(src: Source, params: PipelineParams):
    """All pipeline stages for ``src`` with ``params``, cached by content hash and parameters."""
    return _pipeline(src.digest, src.data, src.name, params.to_dict())


@_image_cache(show_spinner=False, max_entries=12)
def _prepared(key: str, _data: bytes, name: str, model: str):
    """Pipeline and TTA copies of an image for the model in use (everything the sex does not change)."""
    return _load_predictor(*_model_key()).prepare(_load(key, _data, name), name=name)


def prepare_ahead(src: Source) -> None:
    """Prepare ``src`` for the model now, while the user chooses the sex (the reading needs it; the
    pipeline does not). Measured 2026-11-28 on the Predict page with a 2000×2500 PNG: the sex prompt
    reached the browser 0.2 s after the upload's run began and the click's run started 0.5–0.7 s
    later, while pipeline and TTA copies take ≈ 0.25 s of the 0.35–0.48 s reading; done here, the
    reading after the click is the model's ≈ 0.1 s. Errors are left for :func:`predict` to report.
    """
    if _background_load(*_model_key()).is_alive():
        return  # the model is still loading: do not compete with it for the 2 cores
    try:
        _prepared(src.digest, src.data, src.name, model_identity())
    except Exception:  # noqa: BLE001 - the real call after the click reports it, one line, to the user
        pass


@_image_cache(show_spinner=False, max_entries=12)
def _predict(key: str, _data: bytes, name: str, sex: str | None, chronological_age_months: float | None,
             birth_date: dt.date | None, study_date: dt.date | None, height_cm: float | None, model: str,
             father_height_cm: float | None = None, mother_height_cm: float | None = None,
             accept_unusual: bool = False):
    prep = _prepared(key, _data, name, model)
    # fill_from_tags=False: the widgets were pre-filled from the tags, so what they say is what is used
    # ("Not given" means not given); tags that disagree with them still earn a warning.
    return _load_predictor(*_model_key()).predict(prep, sex=sex, chronological_age_months=chronological_age_months,
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
