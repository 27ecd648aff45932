"""Cheap checks on paths, run before anything heavy is imported.

Why a module of its own: the command line imports TensorFlow (≈3 s; ``boneage predict typo.png``
took ≈4.5 s to answer before this existed) and pandas only inside the command that needs them, so a mistyped path must be caught by code that imports none of them. Everything here
uses :mod:`pathlib` alone; each failure is a :class:`PathError` with a one-line message in the
loader's own words ("file not found"), so the CLI, the data module and the tests share them.
"""
from __future__ import annotations

from pathlib import Path

LABELS_FILE = "labels.csv"
LABELS_COLUMNS = "id,boneage_months,male"


class PathError(ValueError):
    """A path the user gave that cannot be used; the message is one line and names the path."""


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path when it is a file; otherwise why not."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise PathError(f"{path}: is a folder, not a file")
    if not p.exists():
        raise PathError(f"{path}: file not found")
    return p


def existing_folder(path: str | Path) -> Path:
    """``path`` as a Path when it is a folder; otherwise why not."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PathError(f"{path}: folder not found")
    if not p.is_dir():
        raise PathError(f"{path}: is a file, not a folder")
    return p


def labels_file(data: str | Path) -> Path:
    """The labels CSV of a dataset: ``data/labels.csv``, the only ``*.csv`` in ``data``, or ``data`` itself
    when it is a CSV file."""
    p = Path(data).expanduser()
    if p.is_file() and p.suffix.lower() == ".csv":
        return p
    d = existing_folder(data)
    if (d / LABELS_FILE).is_file():
        return d / LABELS_FILE
    cands = sorted(d.glob("*.csv"))
    if len(cands) == 1:
        return cands[0]
    raise PathError(f"{data}: no {LABELS_FILE} (expected columns {LABELS_COLUMNS})")


def names_packed_inputs(data: str | Path) -> bool:
    """``data`` names a packed-inputs ``.npz`` (:mod:`boneage.packed`) rather than a dataset: the one
    rule preflight and training dispatch on (the file's contents are checked when it is read)."""
    return Path(data).suffix.lower() == ".npz"


def training_data(data: str | Path) -> Path:
    """What ``boneage train --data`` takes: a dataset (see :func:`labels_file`) or a packed-inputs
    file (:func:`names_packed_inputs`, for a machine without the images)."""
    p = Path(data).expanduser()
    if p.is_file() and names_packed_inputs(p):
        return p
    return labels_file(data)


def existing_path(path: str | Path) -> Path:
    """``path`` as a Path when it exists (a file or a folder)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PathError(f"{path}: not found")
    return p


def model_path(path: str | Path) -> Path:
    """A model the user named: a ``.keras``/``.weights.h5`` file or a folder holding ``model.keras``."""
    from .bundle import MODEL_FILE

    p = Path(path).expanduser()
    if p.is_dir():
        if not (p / MODEL_FILE).is_file():
            raise PathError(f"{path}: no {MODEL_FILE} in this folder")
        return p
    if not p.exists():
        raise PathError(f"{path}: model not found")
    return p


def output_folder(path: str | Path) -> Path:
    """A folder to write into (created later): it must not be an existing file."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise PathError(f"{path}: is a file; give a folder for the output")
    return p


def output_file(path: str | Path) -> Path:
    """A file to write (its folder created later): it must not be an existing folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise PathError(f"{path}: is a folder; give a file name for the output")
    return p
