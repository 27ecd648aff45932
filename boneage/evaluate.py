"""Evaluation: ``boneage evaluate --data DIR --out CSV`` through the exact prediction path.

Every row of ``labels.csv`` goes raw file → loader → pipeline → model (with TTA), the same
calls the app makes; images listed but missing or unreadable are reported and counted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import summarise
from .vocab import from_male


def evaluate(data_dir: str | Path, *, model_path: str | Path | None = None, tta: int | None = None, progress: bool = True,
             limit: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Predict every labelled image through :class:`boneage.predict.Predictor`.

    Ids are plain names looked up inside the data folder only (:func:`boneage.data.find_image`);
    labels outside 0–240 months, empty label files and bad ``tta``/``limit`` are refused up front.
    """
    from .data import find_image, image_dir, read_labels
    from .io import ImageError
    from .predict import Predictor

    from .checks import check_int
    from .predict import MAX_TTA

    if tta is not None:
        check_int(tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")
    if limit is not None:
        check_int(limit, "limit", lo=1, flag="--limit")
    df = read_labels(data_dir)
    if limit:
        df = df.iloc[:limit]
    folder = image_dir(data_dir)
    pred = Predictor.load(model_path)
    rows, problems = [], []
    it = df.itertuples(index=False)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=len(df), desc="evaluating", unit="img")
    for r in it:
        p = find_image(folder, str(r.id))
        value = np.nan
        if p is None:
            problems.append(f"{r.id}: image missing in {folder}")
        else:
            try:
                value = pred.predict(p, sex=from_male(r.male), tta=tta).bone_age_months
            except ImageError as e:
                problems.append(str(e))
        rows.append({"id": r.id, "boneage_months": r.boneage_months, "male": bool(r.male), "predicted_months": value})
    out = pd.DataFrame(rows)
    metrics = summarise(out)
    metrics["n_listed"] = int(len(df))
    metrics["n_failed"] = int(out["predicted_months"].isna().sum())
    metrics["problems"] = problems
    metrics["model_version"] = pred.model_version
    return out, metrics
