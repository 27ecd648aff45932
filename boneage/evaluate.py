"""Evaluation: ``boneage evaluate --data DIR --out CSV`` through the exact prediction path.

Every row of ``labels.csv`` goes raw file → loader → pipeline → model (with TTA), the same
calls the app makes; images listed but missing or unreadable are reported and counted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .vocab import FEMALE, MALE, from_male, sex_label

AGE_BANDS = ((0, 72, "0-6 y"), (72, 144, "6-12 y"), (144, 229, "12-19 y"))


def summarise(df: pd.DataFrame) -> dict:
    """MAE, RMSE, signed bias (predicted − true), MAE by sex and by age band, in months."""
    d = df.dropna(subset=["predicted_months"])
    err = d["predicted_months"].to_numpy(float) - d["boneage_months"].to_numpy(float)
    out: dict = {
        "n": int(len(d)),
        "mae": _r(np.mean(np.abs(err))) if len(d) else None,
        "rmse": _r(np.sqrt(np.mean(err**2))) if len(d) else None,
        "bias": _r(np.mean(err)) if len(d) else None,
        "mae_by_sex": {},
        "mae_by_age_band": {},
        "n_by_age_band": {},
    }
    male = d["male"].astype(bool).to_numpy()
    for sex, sel in ((MALE, male), (FEMALE, ~male)):
        out["mae_by_sex"][sex_label(sex)] = _r(np.mean(np.abs(err[sel]))) if sel.any() else None
    ba = d["boneage_months"].to_numpy(float)
    for lo, hi, name in AGE_BANDS:
        sel = (ba >= lo) & (ba < hi)
        out["mae_by_age_band"][name] = _r(np.mean(np.abs(err[sel]))) if sel.any() else None
        out["n_by_age_band"][name] = int(sel.sum())
    return out


def band_sex_table(df: pd.DataFrame) -> pd.DataFrame:
    """MAE and bias by age band × sex (the dataset page's table)."""
    d = df.dropna(subset=["predicted_months"]).copy()
    d["error"] = d["predicted_months"] - d["boneage_months"]
    d["abs_error"] = d["error"].abs()
    d["sex"] = [sex_label(from_male(m)) for m in d["male"]]
    d["age_band"] = pd.cut(d["boneage_months"], [b[0] for b in AGE_BANDS] + [AGE_BANDS[-1][1]], right=False,
                           labels=[b[2] for b in AGE_BANDS])
    g = d.groupby(["age_band", "sex"], observed=True)
    return g.agg(n=("error", "size"), mae=("abs_error", "mean"), bias=("error", "mean")).round(2).reset_index()


def _r(v) -> float:
    return round(float(v), 3)


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
