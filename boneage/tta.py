"""Test-time augmentation (TTA): fixed, gentle copies of one model input.

Kept apart from :mod:`boneage.augment` (training augmentation, Keras layers) so that preparing
an image — also in batch-scoring worker processes — never imports TensorFlow (≈ 3 s and 0.8 GB
per process).
"""
from __future__ import annotations

import numpy as np

# Test-time augmentation: a fixed set of gentle transforms (flip, ±5° turns, ±5 % zoom, small
# shifts, a gamma change). Fixed rather than random, so the same image always gets the same
# answer, and done with cv2 affine warps, which cost well under a millisecond each.
#            (flip, angle°, scale, dx, dy, gamma)
TTA_TRANSFORMS = (
    (False, 0.0, 1.00, 0.00, 0.00, 1.0),
    (True, 0.0, 1.00, 0.00, 0.00, 1.0),
    (False, 5.0, 1.00, 0.00, 0.00, 1.0),
    (False, -5.0, 1.00, 0.00, 0.00, 1.0),
    (False, 0.0, 1.05, 0.00, 0.00, 1.0),
    (True, 0.0, 0.95, 0.00, 0.00, 1.0),
    (False, 0.0, 1.00, 0.03, -0.03, 0.9),
    (True, 3.0, 1.00, -0.03, 0.03, 1.1),
)


def tta_copy(image: np.ndarray, k: int) -> np.ndarray:
    """Copy ``k`` of one (H, W) image in [0, 1] (transform ``TTA_TRANSFORMS[k]``), float32 (H, W).

    One copy alone, for callers that want a single view (the Attention-Xception script caches
    features per view) without making the ``k`` copies before it.
    """
    return _apply(np.asarray(image, np.float32), TTA_TRANSFORMS[k])


def tta_batch(image: np.ndarray, n: int = 8) -> np.ndarray:
    """``n`` (≤ 8) gently perturbed copies of one (H, W) image in [0, 1]; the first is the image itself."""
    img = np.asarray(image, np.float32)
    return np.stack([_apply(img, t) for t in TTA_TRANSFORMS[: max(1, min(int(n), len(TTA_TRANSFORMS)))]])[..., None]


def _apply(img: np.ndarray, transform: tuple) -> np.ndarray:
    import cv2

    flip, angle, scale, dx, dy, gamma = transform
    h, w = img.shape
    x = img[:, ::-1] if flip else img
    if angle or scale != 1.0 or dx or dy:
        M = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
        M[:, 2] += (dx * w, dy * h)
        x = cv2.warpAffine(np.ascontiguousarray(x), M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    if gamma != 1.0:
        x = np.power(np.clip(x, 0.0, 1.0), gamma)
    return np.ascontiguousarray(x, dtype=np.float32)
