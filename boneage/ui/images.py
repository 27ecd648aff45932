"""Images for the browser: uint8 copies small enough to keep reruns fast, and cached thumbnails."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import streamlit as st

from ..io import ImageError, load_image, to_uint8

log = logging.getLogger("boneage.ui")

DISPLAY_MAX_SIDE = 900  # images are downscaled to this for the browser; keeps reruns fast


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


def safe_thumbnail(path: str | Path, max_side: int = 220) -> np.ndarray | None:
    """A thumbnail, or None when the file is not a readable image (one bad file must not hide the rest)."""
    try:
        return thumbnail(str(path), max_side)
    except ImageError as e:
        log.info("thumbnail: %s", e)
        return None
