"""boneage: skeletal age from hand/wrist radiographs (research software, not a medical device)."""
from __future__ import annotations

import os as _os

# Keep TensorFlow's C++ start-up logging away from users' terminals.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing boneage must not import TensorFlow
    if name == "Predictor":
        from .predict import Predictor

        return Predictor
    raise AttributeError(name)
