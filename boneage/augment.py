"""On-the-fly, seeded augmentation for training and test-time augmentation (TTA).

The study's rotation and noise, plus flips, shift/zoom and brightness/contrast/gamma: the
variations real clinical films show (positioning, exposure, detector) that the pipeline does
not fully remove. Built from Keras layers, so it runs under any backend.
"""
from __future__ import annotations

from . import _quiet  # noqa: F401  (TensorFlow start-up logging off)
import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="boneage")
class RandomGamma(layers.Layer):
    """x ** γ with log γ uniform in ±``log_range``: exposure curves differ between detectors."""

    def __init__(self, log_range: float = 0.25, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.log_range = log_range
        self.seed = seed
        self._gen = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.log_range <= 0:
            return x
        n = ops.shape(x)[0]
        g = ops.exp(keras.random.uniform((n, 1, 1, 1), -self.log_range, self.log_range, seed=self._gen))
        return ops.power(ops.clip(x, 1e-6, 1.0), g)

    def get_config(self):
        return {**super().get_config(), "log_range": self.log_range, "seed": self.seed}


@keras.saving.register_keras_serializable(package="boneage")
class Clip01(layers.Layer):
    def call(self, x):
        return ops.clip(x, 0.0, 1.0)


def augmenter(seed: int = 0, *, rotation_deg: float = 15.0, shift: float = 0.06, zoom: float = 0.10,
              flip: bool = True, contrast: float = 0.2, brightness: float = 0.1, gamma: float = 0.25,
              noise: float = 0.02, strength: float = 1.0) -> keras.Sequential:
    """Training augmentation for (N, H, W, 1) images in [0, 1]; active only with ``training=True``.

    ``strength`` scales every range at once (0 = flips only): the pipeline already aligns the hand,
    so a lighter setting lets a fine-tuning phase fit the images more closely.
    """
    if strength < 0:
        raise ValueError(f"augmentation strength must be ≥ 0, got {strength}")
    rotation_deg, shift, zoom = rotation_deg * strength, shift * strength, zoom * strength
    contrast, brightness, gamma, noise = contrast * strength, brightness * strength, gamma * strength, noise * strength
    seq = []
    if flip:
        seq.append(layers.RandomFlip("horizontal", seed=seed))
    seq += [
        layers.RandomRotation(rotation_deg / 360.0, fill_mode="constant", fill_value=0.0, seed=seed + 1),
        layers.RandomTranslation(shift, shift, fill_mode="constant", fill_value=0.0, seed=seed + 2),
        layers.RandomZoom((-zoom, zoom), fill_mode="constant", fill_value=0.0, seed=seed + 3),
        layers.RandomContrast(contrast, value_range=(0.0, 1.0), seed=seed + 4),
        layers.RandomBrightness(brightness, value_range=(0.0, 1.0), seed=seed + 5),
        RandomGamma(gamma, seed=seed + 6),
        layers.GaussianNoise(noise, seed=seed + 7),
        Clip01(),
    ]
    return keras.Sequential(seq, name="augment")


# Test-time augmentation lives in boneage.tta (no Keras import: batch-scoring workers use it).
from .tta import TTA_TRANSFORMS, tta_batch  # noqa: E402,F401
