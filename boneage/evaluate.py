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

from .metrics import summarise
from .vocab import from_male


def evaluate(data_dir: str | Path, *, model_path: str | Path | None = None, tta: int | None = None, progress: bool = True,
             limit: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Predict every labelled image through :class:`boneage.predict.Predictor`.

    Ids are plain names looked up inside the data folder only (:func:`boneage.data.find_image`);
    labels outside 0–240 months, empty label files and bad ``tta``/``limit`` are refused up front.

    Refused images (:class:`boneage.acceptance.NotAcceptedError`) stay as rows with an empty
    ``predicted_months`` and their ``reason``; ``n_refused`` counts them apart from the MAE.
    """
    from .acceptance import NotAcceptedError
    from .checks import check_int
    from .data import find_image, image_dir, read_labels
    from .io import ImageError
    from .predict import MAX_TTA, Predictor

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
    got = out.dropna(subset=["interval_low_months"])
    if len(got):  # how often the calibrated 90 % interval held the reader's bone age
        y = got["boneage_months"].to_numpy(float)
        lo, hi = got["interval_low_months"].to_numpy(float), got["interval_high_months"].to_numpy(float)
        metrics["interval_90_coverage"] = round(float(np.mean((y >= lo) & (y <= hi))), 4)
        metrics["interval_90_mean_width"] = round(float(np.mean(hi - lo)), 2)
    metrics["n_listed"] = int(len(df))
    metrics["n_refused"] = n_refused
    metrics["n_failed"] = int(out["predicted_months"].isna().sum()) - n_refused
    metrics["problems"] = problems
    metrics["model_version"] = pred.model_version
    return out, metrics
