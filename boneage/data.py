"""Datasets in the RSNA layout: ``labels.csv`` beside (or above) the image files.

Preprocessing is the expensive part, so :func:`build_cache` runs :func:`boneage.pipeline.run_pipeline`
(the same function prediction uses) once per image and stores the model inputs as uint8 in an
``.npz`` keyed by the pipeline parameters; epochs then read arrays, not files.
"""
from __future__ import annotations

import hashlib
import json
import os
from io import StringIO
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .io import ImageError, load_image
from .pipeline import PipelineParams, run_pipeline
from .preflight import PathError, labels_file
from .vocab import male_or_none

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", "")


class DataError(ValueError):
    """A dataset folder or labels file that cannot be used (one-line message)."""


def read_labels(data_dir: str | Path) -> pd.DataFrame:
    """``id, boneage_months, male`` from ``labels.csv`` (also Kaggle's ``id,boneage,male``)."""
    try:
        path = labels_file(data_dir)
    except PathError as e:
        raise DataError(str(e)) from None
    try:
        df = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - pandas raises many types
        raise DataError(f"{path}: cannot read labels ({e.__class__.__name__})") from None
    df.columns = [c.strip().lower() for c in df.columns]
    if "boneage_months" not in df.columns and "boneage" in df.columns:
        df = df.rename(columns={"boneage": "boneage_months"})
    missing = {"id", "boneage_months", "male"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    df = df[["id", "boneage_months", "male"]].copy()
    df["id"] = df["id"].astype(str)
    df["male"] = df["male"].map(male_or_none)
    df["boneage_months"] = pd.to_numeric(df["boneage_months"], errors="coerce")
    bad = df["male"].isna() | df["boneage_months"].isna()
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} row(s) with unreadable sex or bone age (first id {df.loc[bad, 'id'].iloc[0]})")
    df["male"] = df["male"].astype(bool)
    if df.empty:
        raise DataError(f"{path}: no rows below the header (expected id,boneage_months,male per image)")
    months = df["boneage_months"].to_numpy(float)
    out = ~np.isfinite(months) | (months < 0) | (months > MAX_LABEL_MONTHS)
    if out.any():
        k = int(np.argmax(out))
        raise DataError(f"{path}: {int(out.sum())} bone age(s) outside 0–{MAX_LABEL_MONTHS:.0f} months "
                        f"(first: id {df['id'].iloc[k]}, {months[k]:g})")
    bad_ids = ~df["id"].map(is_plain_id)
    if bad_ids.any():
        raise DataError(f"{path}: {int(bad_ids.sum())} id(s) {BAD_ID}; first: {df.loc[bad_ids, 'id'].iloc[0][:80]!r}")
    return df.reset_index(drop=True)


def image_dir(data_dir: str | Path) -> Path:
    """Images beside labels.csv, or in an ``images/`` sub-folder (Kaggle's layout)."""
    d = Path(data_dir)
    if not d.is_dir():
        d = d.parent
    for sub in ("images", "boneage-training-dataset"):
        if (d / sub).is_dir():
            return d / sub
    return d


BAD_ID = "is not a plain image name (ids name a file inside the data folder, without folders)"
MAX_LABEL_MONTHS = 240.0  # 20 years: past the end of skeletal maturation (RSNA's oldest is 228)


def is_plain_id(image_id: object) -> bool:
    """An id that can only name a file directly inside its data folder.

    Refused: empty, absolute, any path separator (``/`` or ``\\``), ``.``/``..``, a drive
    letter, control characters. Before issue #14 an absolute id displayed an image from outside
    any data folder, and ``../../etc/passwd`` answered differently from a missing file.
    """
    s = str(image_id)
    return bool(s) and s not in (".", "..") and not any(c in s for c in "/\\:") and s.isprintable() and len(s) <= 255


def find_image(folder: Path, image_id: str) -> Path | None:
    """The image file for ``image_id`` directly inside ``folder``, or None.

    Raises DataError (one message, the same whether or not such a path exists) for an id that
    is not a plain name, so nothing outside the folder is ever opened or even tested.
    """
    if not is_plain_id(image_id):
        raise DataError(f"id {str(image_id)[:80]!r} {BAD_ID}")
    base = os.path.abspath(folder)
    for ext in IMAGE_EXTS:
        p = Path(base) / f"{image_id}{ext}"
        if os.path.dirname(os.path.abspath(p)) != base:  # belt and braces: never leave the folder
            continue
        if p.is_file():
            return p
    return None


def is_validation(image_id: str, val_fraction: float = 0.15, salt: str = "boneage-v1") -> bool:
    """Deterministic split by id: the same id is always on the same side, on any machine,
    whatever the order or subset of the data."""
    h = hashlib.sha256(f"{salt}:{image_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < val_fraction


def split(df: pd.DataFrame, val_fraction: float = 0.15) -> tuple[pd.DataFrame, pd.DataFrame]:
    is_val = df["id"].map(lambda i: is_validation(str(i), val_fraction))
    return df[~is_val].reset_index(drop=True), df[is_val].reset_index(drop=True)


@dataclass
class Prepared:
    """Model inputs for a labelled set, aligned with ``labels`` row by row."""

    images: np.ndarray  # uint8 (N, H, W)
    labels: pd.DataFrame  # id, boneage_months, male, ok, error, hand_found, laterality, rotation_deg, mask_method


# What the cache keeps of each image's pipeline run (a localisation sweep reads them: scripts/localisation_sweep.py).
_NO_RUN = {"hand_found": False, "laterality": "unknown", "rotation_deg": float("nan"), "mask_method": ""}


def _prepare_one(args) -> tuple[np.ndarray | None, str, dict]:
    path, params_d = args
    params = PipelineParams.from_dict(params_d)
    try:
        img = load_image(path).pixels
        res = run_pipeline(img, params)
        return res.stages["model_input"], "", {"hand_found": res.hand_found, "laterality": res.laterality,
                                               "rotation_deg": round(res.rotation_deg, 2), "mask_method": res.mask_method}
    except ImageError as e:
        return None, str(e), dict(_NO_RUN)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop a 10k-image cache build
        return None, f"{Path(path).name}: pipeline failed ({e.__class__.__name__}: {e})", dict(_NO_RUN)


def cache_key(data_dir: Path, params: PipelineParams, ids: list[str]) -> str:
    from .pipeline import PIPELINE_VERSION

    payload = json.dumps({"dir": str(Path(data_dir).resolve()), "params": params.to_dict(), "n": len(ids),
                          "ids": hashlib.sha256(",".join(ids).encode()).hexdigest(), "pipeline_version": PIPELINE_VERSION})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_cache(
    data_dir: str | Path,
    params: PipelineParams,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    limit: int | None = None,
) -> Prepared:
    """Run the pipeline over every labelled image once (in parallel), cached on disk."""
    from .paths import cache_dir as default_cache

    data_dir = Path(data_dir)
    df = read_labels(data_dir)
    if limit:
        df = df.iloc[:limit].copy()
    folder = image_dir(data_dir)
    ids = df["id"].tolist()
    cdir = Path(cache_dir) if cache_dir else default_cache() / "prepared"
    cdir.mkdir(parents=True, exist_ok=True)
    cpath = cdir / f"{data_dir.name}-{cache_key(data_dir, params, ids)}.npz"
    if cpath.exists():
        z = np.load(cpath, allow_pickle=False)
        lab = pd.read_json(StringIO(str(z["labels"])), dtype={"id": str})
        lab["id"] = lab["id"].astype(str)
        return Prepared(images=z["images"], labels=lab)

    paths = [find_image(folder, i) for i in ids]
    jobs = [(str(p), params.to_dict()) for p in paths if p is not None]
    n_workers = workers or max(1, min(4, os.cpu_count() or 1))
    results: list = []
    if progress:
        from tqdm.auto import tqdm

        import sys

        bar = tqdm(total=len(jobs), desc="preprocessing", unit="img", mininterval=0.2 if sys.stderr.isatty() else 15)
    else:
        bar = None
    if n_workers > 1 and len(jobs) > 32:
        with ProcessPoolExecutor(n_workers) as ex:
            for r in ex.map(_prepare_one, jobs, chunksize=32):
                results.append(r)
                if bar:
                    bar.update()
    else:
        for j in jobs:
            results.append(_prepare_one(j))
            if bar:
                bar.update()
    if bar:
        bar.close()
    it = iter(results)
    h, w = params.model_height, params.model_width
    images = np.zeros((len(ids), h, w), np.uint8)
    ok, err, runs = [], [], []
    for k, p in enumerate(paths):
        if p is None:
            ok.append(False), err.append(f"{ids[k]}: image file not found in {folder}"), runs.append(dict(_NO_RUN))
            continue
        arr, e, run = next(it)
        if arr is not None:
            images[k] = arr
        ok.append(arr is not None), err.append(e), runs.append(run)
    lab = df.copy()
    lab["ok"], lab["error"] = ok, err
    for col in _NO_RUN:
        lab[col] = [r[col] for r in runs]
    np.savez(cpath, images=images, labels=np.array(lab.to_json()))
    return Prepared(images=images, labels=lab)
