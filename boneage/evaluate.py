"""Evaluation: ``boneage evaluate --data DIR --out CSV`` through the exact prediction path.

Every row of ``labels.csv`` goes raw file → loader → pipeline → model (with TTA), the same
calls the app makes; images listed but missing or unreadable are reported and counted.
Images the acceptance check refuses (:mod:`boneage.acceptance`) stay in the CSV as rows with an
empty ``predicted_months`` and their ``reason``, and are counted apart (``n_refused``): the MAE
is over accepted images only, so a refusal can never hide in, or flatter, the error figures.
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
    if "interval_low_months" in d and d["interval_low_months"].notna().any():
        lo_, hi_ = d["interval_low_months"].to_numpy(float), d["interval_high_months"].to_numpy(float)
        out["interval_90_coverage"] = _r(np.mean((ba >= lo_) & (ba <= hi_)))
        out["interval_90_mean_width"] = _r(np.mean(hi_ - lo_))
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
    """Predict every labelled image through :class:`boneage.predict.Predictor`."""
    from .acceptance import NotAcceptedError
    from .data import find_image, image_dir, read_labels
    from .io import ImageError
    from .predict import Predictor

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
    n_refused = 0
    for r in it:
        p = find_image(folder, str(r.id))
        row = {"id": r.id, "boneage_months": r.boneage_months, "male": bool(r.male), "predicted_months": np.nan,
               "tta_sd_months": np.nan, "interval_low_months": np.nan, "interval_high_months": np.nan, "reason": ""}
        if p is None:
            problems.append(f"{r.id}: image missing in {folder}")
            row["reason"] = "image missing"
        else:
            try:
                pr = pred.predict(p, sex=from_male(r.male), tta=tta)
                row.update(predicted_months=pr.bone_age_months, tta_sd_months=pr.tta_sd_months)
                if pr.interval_90_months is not None:
                    row.update(interval_low_months=pr.interval_90_months[0], interval_high_months=pr.interval_90_months[1])
            except NotAcceptedError as e:
                row["reason"] = f"not accepted: {e.reason}"
                n_refused += 1
            except ImageError as e:
                problems.append(str(e))
                row["reason"] = f"unreadable: {e}"
        rows.append(row)
    out = pd.DataFrame(rows)
    metrics = summarise(out)
    metrics["n_listed"] = int(len(df))
    metrics["n_refused"] = n_refused
    metrics["n_failed"] = int(out["predicted_months"].isna().sum()) - n_refused
    metrics["problems"] = problems
    metrics["model_version"] = pred.model_version
    return out, metrics
