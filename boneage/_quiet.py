"""Import Keras/TensorFlow with TensorFlow's C++ start-up logging kept off the terminal.

TF_CPP_MIN_LOG_LEVEL does not stop absl's pre-initialisation lines ("All log messages before
absl::InitializeLog() …", the oneDNN notice), which users read as errors. They are written to
file descriptor 2 while TensorFlow loads, so it is pointed at /dev/null for that moment only.
Import this module before the first ``import keras``.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextmanager
def silenced_fd2():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if "keras" not in sys.modules:
    with silenced_fd2():
        try:
            if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
                import tensorflow  # noqa: F401
        except ImportError:
            pass
        import keras  # noqa: F401

        try:
            import absl.logging as _absl_logging  # TF's Python-side warnings go through absl

            _absl_logging.set_verbosity(_absl_logging.ERROR)
        except ImportError:
            pass
