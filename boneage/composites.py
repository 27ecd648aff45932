"""Film-like composites with exact hand masks, for testing hand localisation (issue #9).

The segmented radiographs (a hand on black: ``samples/``, the ``hires`` set) carry their true
mask for free. Pasted onto what scanned films add around a hand — a grey film on a darker
surround, a film edge or frame line touching the hand, a light-box gradient, side markers and
labels, a second exposure beside the first — they test that the pipeline still finds *the hand*
and turns it exactly as it turns the clean image.

Geometry is kept simple on purpose: the composite has the study's frame size (1000×800), the
pipeline's frame shape, so the mask the pipeline returns is compared pixel for pixel with the
truth scaled to the pipeline's frame (:func:`truth_in_frame`).
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("clean", "grey_film", "film_edge", "frame", "gradient", "markers", "two_exposures")
FRAME_HW = (1000, 800)


def hand_on_canvas(hand01: np.ndarray, scale: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The segmented hand scaled into the frame, its forearm on the bottom edge; (image, mask)."""
    H, W = FRAME_HW
    h, w = hand01.shape
    s = min(scale * W / w, scale * H / h)
    small = cv2.resize(hand01.astype(np.float32), (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape
    canvas = np.zeros(FRAME_HW, np.float32)
    x0 = (W - sw) // 2
    canvas[H - sh :, x0 : x0 + sw] = small
    m = (canvas > 0.03).astype(np.uint8) * 255
    cs, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros_like(m)
    if cs:
        cv2.drawContours(mask, [max(cs, key=cv2.contourArea)], -1, 255, cv2.FILLED)
    return canvas, mask


def composite(hand01: np.ndarray, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32 in [0, 1], true hand mask uint8)`` for one kind of film surround."""
    if kind not in KINDS:
        raise ValueError(f"unknown composite kind {kind!r} ({', '.join(KINDS)})")
    rng = np.random.default_rng(seed)
    hand, mask = hand_on_canvas(hand01)
    H, W = FRAME_HW
    bg = np.zeros(FRAME_HW, np.float32)
    ys, xs = np.nonzero(mask)
    left, right, top = int(xs.min()), int(xs.max()), int(ys.min())
    if kind in ("grey_film", "film_edge", "frame", "markers", "two_exposures"):
        # A film brighter than the scanner's surround, its lower edge at the image's bottom.
        fx0, fx1 = max(5, left - int(rng.integers(30, 60))), min(W - 5, right + int(rng.integers(30, 60)))
        fy0 = max(5, top - int(rng.integers(30, 60)))
        bg[:] = rng.uniform(0.04, 0.10)
        bg[fy0:, fx0:fx1] = rng.uniform(0.28, 0.42)
    if kind == "gradient":
        g = np.linspace(rng.uniform(0.05, 0.15), rng.uniform(0.35, 0.5), W, dtype=np.float32)
        bg[:] = g[None, :]
    if kind == "film_edge":  # a bright film edge along the side, touching the little finger's side
        bg[:, max(0, left - 14) : left + 2] = 0.95
    if kind == "frame":  # a thin bright frame whose bottom-left corner touches the hand
        t = 6
        x0, y0 = left + 20, top - 25
        bg[y0 : y0 + t, x0 - 200 if x0 > 200 else 0 : x0] = 0.9
        bg[y0:, max(0, x0 - 200) : max(0, x0 - 200) + t] = 0.9
        bg[y0 : y0 + t, right - 40 : min(W, right + 30)] = 0.9
    if kind == "markers":  # a side marker and a label block, apart from the hand (OpenCV draws text in 8 bits)
        ink = np.zeros(FRAME_HW, np.uint8)
        cv2.putText(ink, "L", (right + 8 if right < W - 60 else 20, top + 60), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 255, 6)
        bg = np.where(ink > 0, 0.95, bg).astype(np.float32)
        bg[20:70, 20:200] = 0.85
        ink[:] = 0
        cv2.putText(ink, "ID 12345", (28, 58), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
        bg = np.where(ink > 0, 0.1, bg).astype(np.float32)
    if kind == "two_exposures":  # a second, smaller exposure of the hand in the corner
        other = cv2.resize(hand, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
        corner = bg[: H // 4, : W // 4]
        bg[: H // 4, : W // 4] = np.where(other > 0.03, corner + (1 - corner) * (0.25 + 0.75 * other), corner)
        keep = np.ones(FRAME_HW, bool)
        keep[: H // 4, : W // 4] = False
        mask = np.where(keep, mask, 0).astype(np.uint8)
    # The hand attenuates on top of whatever lies behind it: soft tissue stands above the film.
    img = np.where(mask > 0, bg + (1.0 - bg) * (0.25 + 0.75 * hand), bg)
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32), mask


def truth_in_frame(truth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The true mask at the pipeline's frame size ``shape`` (H, W): nearest-neighbour, still 0/255."""
    if truth.shape == tuple(shape):
        return truth
    return cv2.resize(truth, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    u = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / u if u else 1.0
