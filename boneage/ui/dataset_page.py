"""Helpers of the Dataset errors page (``pages/dataset.py``): where the predictions and images are."""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import FIXTURES_DIR, SAMPLES_DIR, shared_data_dir
from .state import model_dir

DATA_ROOTS_ENV = "BONEAGE_DATA_ROOTS"  # more folders the page may read, separated by os.pathsep


def default_predictions_path() -> Path:
    return model_dir() / "val_predictions.csv"


def default_image_dirs() -> list[Path]:
    """Image folders the validation predictions may come from, those present first."""
    root = shared_data_dir()
    cands = [root / "train-100px", root / "hires", SAMPLES_DIR, root]
    return [p for p in cands if p.is_dir()]


def data_roots() -> list[Path]:
    """The only folders the Dataset page reads images from: the RSNA data folder ($BONEAGE_DATA or
    ../shared/data/rsna-bone-age), the demo samples, the test fixtures, and any listed in
    $BONEAGE_DATA_ROOTS. Before issue #14 the page joined CSV ids to any typed folder: an absolute
    id displayed an image from outside every data folder."""
    extra = [Path(p).expanduser() for p in os.environ.get(DATA_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(os.path.realpath(p)) for p in [shared_data_dir(), SAMPLES_DIR, FIXTURES_DIR, *extra]]


def confined_folder(folder: str | Path) -> Path | None:
    """``folder`` (symlinks resolved) if it lies inside one of :func:`data_roots`, else None.

    Decided on the path alone, before anything is opened, so a folder outside the roots gets the
    same answer whether or not it exists.
    """
    s = str(folder).strip()
    if not s or "\x00" in s:
        return None
    real = Path(os.path.realpath(Path(s).expanduser()))
    for root in data_roots():
        if real == root or root in real.parents:
            return real
    return None


def find_case_image(folder: str | Path, image_id: str) -> Path | None:
    """The image for a CSV id inside a configured data folder, or None (missing, outside the data
    roots, or an id that is not a plain name: all answer the same)."""
    from ..data import DataError, find_image, image_dir

    f = confined_folder(folder)
    if f is None or not f.is_dir():
        return None
    for d in dict.fromkeys((f, image_dir(f))):
        try:
            p = find_image(d, str(image_id))
        except DataError:
            return None
        if p is not None:
            return p
    return None


WORST_CASES_NEED = (
    "The worst-case gallery shows the radiographs behind the largest errors, so it needs the images the predictions "
    "came from. The model's validation predictions are RSNA thumbnails (`train-100px/`), which a fresh clone does not "
    "include: put the RSNA data in `../shared/data/rsna-bone-age` (or point `BONEAGE_DATA` at it) and reload, or set "
    "the image folder above. For images you have, upload a CSV from `boneage evaluate --data FOLDER --out out/mine.csv`.")


def shared_data_present() -> bool:
    """Whether the full RSNA data (its thumbnails) is where the app looks for it."""
    return (shared_data_dir() / "train-100px").is_dir()


def show_bundled_samples() -> None:
    """The demo radiographs that ship with boneage, with the reader's bone age: what there is without the data."""
    import streamlit as st

    from ..vocab import format_age, sex_word
    from .images import thumbnail
    from .inputs import samples

    ss = samples()
    if not ss:
        return
    st.markdown("Meanwhile, these are the radiographs bundled with boneage (the Home page reads any of them in one "
                "click; `boneage evaluate --data samples --out out/samples.csv` reads them all):")
    cols = st.columns(len(ss))
    for col, s in zip(cols, ss):
        col.image(thumbnail(s.path), width="stretch",
                  caption=f"#{s.id} · {sex_word(s.sex)} · reader {format_age(s.boneage_months)}")
