"""Parameter checks shared by the settings dataclasses, so the CLI and the Python API refuse the
same bad values with the same one-line message.

Why up front: before issue #14, ``--clahe-tiles 0`` died with SIGFPE inside OpenCV, ``--lr nan``
trained and shipped NaN weights, ``--epochs 0`` failed after preprocessing and left an untrained
model, ``--batch-size 0`` surfaced a raw TensorFlow error, and ``--tta 1.5`` silently became 1.
Each message names the Python field and, where there is one, the CLI flag, because both kinds of
user read it.
"""
from __future__ import annotations

import math
import numbers


class ParameterError(ValueError):
    """A parameter of the wrong type or out of range; ``str()`` is one line."""


def _who(field: str, flag: str | None) -> str:
    return f"{field} ({flag})" if flag else field


def _range_text(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" ≥ {lo}"
    if hi is not None:
        return f" ≤ {hi}"
    return ""


def check_int(value, field: str, *, lo: int | None = None, hi: int | None = None, flag: str | None = None) -> int:
    """A whole number (bool and 1.5 refused; 2.0 accepted as 2) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{_who(field, flag)} must be a whole number{_range_text(lo, hi)}, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(float(value)) or not float(value).is_integer():
            raise ParameterError(f"{_who(field, flag)} must be a whole number{_range_text(lo, hi)}, got {value!r}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ParameterError(f"{_who(field, flag)} must be a whole number{_range_text(lo, hi)}, got {v}")
    return v


def check_float(value, field: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False, flag: str | None = None) -> float:
    """A finite real number within [lo, hi] (open at an end when asked)."""
    lo_t = "" if lo is None else (f" > {lo}" if lo_open else f" ≥ {lo}")
    hi_t = "" if hi is None else (f" < {hi}" if hi_open else f" ≤ {hi}")
    want = f"a finite number{lo_t}{' and' if lo_t and hi_t else ''}{hi_t}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{_who(field, flag)} must be {want}, got {value!r}")
    v = float(value)
    bad = not math.isfinite(v)
    if lo is not None:
        bad = bad or (v <= lo if lo_open else v < lo)
    if hi is not None:
        bad = bad or (v >= hi if hi_open else v > hi)
    if bad:
        raise ParameterError(f"{_who(field, flag)} must be {want}, got {v:g}")
    return v


def check_choice(value, field: str, choices: tuple[str, ...], *, flag: str | None = None) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{_who(field, flag)} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_bool(value, field: str, *, flag: str | None = None) -> bool:
    if not isinstance(value, (bool,)) and not (isinstance(value, numbers.Integral) and value in (0, 1)):
        raise ParameterError(f"{_who(field, flag)} must be true or false, got {value!r}")
    return bool(value)
