"""Helpers of the Dataset errors page (``pages/dataset.py``): where the predictions and images are."""
from __future__ import annotations

from pathlib import Path

from ..paths import SAMPLES_DIR, shared_data_dir
from .state import model_dir


def default_predictions_path() -> Path:
    return model_dir() / "val_predictions.csv"


def default_image_dirs() -> list[Path]:
    """Image folders the validation predictions may come from, those present first."""
    root = shared_data_dir()
    cands = [root / "train-100px", root / "hires", SAMPLES_DIR, root]
    return [p for p in cands if p.is_dir()]


def find_case_image(folder: str | Path, image_id: str) -> Path | None:
    from ..data import find_image, image_dir

    f = Path(folder).expanduser()
    if not f.is_dir():
        return None
    for d in dict.fromkeys((f, image_dir(f))):
        p = find_image(d, str(image_id))
        if p is not None:
            return p
    return None
