"""The predictions table and its metrics: one owner for both.

A predictions table is ``id,boneage_months,male,predicted_months`` (``boneage evaluate``'s CSV,
``val_predictions.csv`` of a training run). This module reads and checks it
(:func:`read_predictions`), adds the error columns once (:func:`add_error_columns`), and computes
every figure the project reports from it: MAE, RMSE and bias overall, by sex and by age band
(:func:`summarise`, :func:`band_sex_table`), Bland–Altman limits (:func:`bland_altman_stats`),
the smoothed error trend and the worst cases. ``boneage.evaluate`` (the CLI), training's
``metrics.json`` and the app's Dataset page all use it; ``boneage.dataset_plots`` only draws.

Errors are always *predicted − true*, in months: positive means the model reads the skeleton as
older than the reader did; the bias is their mean (:func:`_bias`, the one place it is computed).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .vocab import FEMALE, MALE, SEX_LABELS, from_male, male_or_none, sex_label

REQUIRED_COLUMNS = ("boneage_months", "male", "predicted_months")
SEXES = SEX_LABELS  # ("female", "male"): the "sex" column's values and the page's filter
AGE_BANDS = ((0, 72, "0-6 y"), (72, 144, "6-12 y"), (144, 229, "12-19 y"))
# Issue #9's criterion ("no 5-year age band with |bias| > 3 months"), the model card's ablation table
# and scripts/calibrate_output.py: edges in years; the last band is open (RSNA labels end at 228 months).
BIAS_BAND_EDGES_YEARS = (0, 5, 10, 15, 20)
LOA_Z = 1.96  # Bland-Altman limits of agreement: bias ± 1.96 SD


def _bias(err: np.ndarray) -> float:
    """Mean signed error (predicted − true), months."""
    return float(np.mean(err))


class PredictionsError(ValueError):
    """A predictions CSV that cannot be used (one-line message)."""


def read_predictions(source: str | Path | bytes | io.IOBase) -> pd.DataFrame:
    """Read and check a predictions CSV; add ``error``, ``abs_error``, ``sex``, ``mean_months``.

    Accepts a path, bytes or a file-like object. Kaggle's ``boneage`` column is taken for
    ``boneage_months``. Rows without a prediction (images that failed in ``boneage evaluate``) are
    dropped and counted in ``df.attrs["n_missing"]``. Raises :class:`PredictionsError`.
    """
    label = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "uploaded CSV")
    try:
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(bytes(source))
        df = pd.read_csv(source)
    except FileNotFoundError:
        raise PredictionsError(f"{label}: file not found") from None
    except Exception as e:  # noqa: BLE001 - pandas raises many kinds for a non-CSV
        raise PredictionsError(f"{label}: not a readable CSV ({e.__class__.__name__})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if "boneage_months" not in df.columns and "boneage" in df.columns:
        df = df.rename(columns={"boneage": "boneage_months"})
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise PredictionsError(f"{label}: missing column(s) {', '.join(missing)} "
                               "(expected id,boneage_months,male,predicted_months from `boneage evaluate`)")
    if "id" not in df.columns:
        df["id"] = np.arange(len(df)).astype(str)
    df = df[["id", *REQUIRED_COLUMNS]].copy()
    df["id"] = df["id"].astype(str)
    df["male"] = df["male"].map(male_or_none)
    for c in ("boneage_months", "predicted_months"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    bad = df["male"].isna() | df["boneage_months"].isna()
    if bad.any():
        raise PredictionsError(f"{label}: {int(bad.sum())} row(s) with unreadable sex or true bone age "
                               f"(first id {df.loc[bad, 'id'].iloc[0]})")
    n_missing = int(df["predicted_months"].isna().sum())
    df = df.dropna(subset=["predicted_months"]).reset_index(drop=True)
    if df.empty:
        raise PredictionsError(f"{label}: no rows with a prediction")
    df["male"] = df["male"].astype(bool)
    df = add_error_columns(df)
    df.attrs["n_missing"] = n_missing
    return df


def add_error_columns(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["error"] = out["predicted_months"] - out["boneage_months"]
    out["abs_error"] = out["error"].abs()
    out["mean_months"] = (out["predicted_months"] + out["boneage_months"]) / 2.0
    out["sex"] = [sex_label(from_male(m)) for m in out["male"]]
    return out


def filter_predictions(df: pd.DataFrame, *, sexes=SEXES, age_range: tuple[float, float] | None = None,
                       min_abs_error: float = 0.0) -> pd.DataFrame:
    """Rows of the chosen sexes, true bone age within ``age_range`` (inclusive, months) and
    |error| at or above ``min_abs_error`` months."""
    sel = df["sex"].isin(list(sexes))
    if age_range is not None:
        lo, hi = age_range
        sel &= df["boneage_months"].between(lo, hi)
    if min_abs_error > 0:
        sel &= df["abs_error"] >= min_abs_error
    return df[sel].reset_index(drop=True)


def bland_altman_stats(df: pd.DataFrame) -> dict:
    """Bias (mean of predicted − true), its SD and the 95 % limits of agreement, in months."""
    e = df["error"].to_numpy(float)
    n = int(e.size)
    if n == 0:
        return {"n": 0, "bias": None, "sd": None, "lower": None, "upper": None}
    bias = _bias(e)
    sd = float(e.std(ddof=1)) if n > 1 else 0.0
    return {"n": n, "bias": bias, "sd": sd, "lower": bias - LOA_Z * sd, "upper": bias + LOA_Z * sd}


def smooth_trend(x, y, *, n_points: int = 80, bandwidth: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-kernel (Nadaraya-Watson) smooth of ``y`` against ``x``, on a regular grid.

    The bandwidth defaults to Silverman's rule on ``x`` (at least 1 % of the range), which follows
    age-dependent bias without chasing single cases. Returns empty arrays for fewer than 3 points.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return np.array([]), np.array([])
    if bandwidth is None:
        iqr = np.subtract(*np.percentile(x, [75, 25]))
        spread = min(x.std(), iqr / 1.34) if iqr > 0 else x.std()
        bandwidth = max(0.9 * spread * x.size ** (-0.2), 0.01 * np.ptp(x))
    grid = np.linspace(x.min(), x.max(), n_points)
    w = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / bandwidth) ** 2)
    return grid, (w @ y) / np.maximum(w.sum(axis=1), 1e-12)


def worst_cases(df: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """The ``n`` rows with the largest |error|, worst first."""
    return df.sort_values("abs_error", ascending=False, kind="stable").head(n).reset_index(drop=True)


def summarise(df: pd.DataFrame) -> dict:
    """MAE, RMSE, signed bias (predicted − true), MAE by sex and by age band, in months; the bias by
    5-year band of true and of predicted age (:func:`band_figures`)."""
    d = df.dropna(subset=["predicted_months"])
    err = d["predicted_months"].to_numpy(float) - d["boneage_months"].to_numpy(float)
    out: dict = {
        "n": int(len(d)),
        "mae": _r(np.mean(np.abs(err))) if len(d) else None,
        "rmse": _r(np.sqrt(np.mean(err**2))) if len(d) else None,
        "bias": _r(_bias(err)) if len(d) else None,
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
    if len(d):
        y, p = d["boneage_months"].to_numpy(float), d["predicted_months"].to_numpy(float)
        out["bias_by_5y_band"] = band_figures(y, p)["bias_by_band"]
        out["bias_by_predicted_5y_band"] = band_figures(y, p, by="predicted")["bias_by_band"]
    return out


def band_figures(true_months, predicted_months, *, by: str = "true") -> dict:
    """MAE, RMSE, bias and, per 5-year band (:data:`BIAS_BAND_EDGES_YEARS`), bias and MAE, in months.

    ``by="true"`` puts each image in the band of its true (reader's) age: issue #9's criterion, and
    where regression to the mean shows (young skeletons read older, mature ones younger).
    ``by="predicted"`` bands by what the tool said: the bias a user meets after a reading of that
    age. The two differ because a model with error cannot be unbiased in both at once; measured on
    the shipped pair (validation, full path, 2026-11-30): +6.6 / +2.8 / −0.1 / −6.5 by true age,
    +2.1 / −0.4 / +1.0 / −1.1 by predicted age.
    """
    if by not in ("true", "predicted"):
        raise ValueError(f"by must be 'true' or 'predicted', not {by!r}")
    y, p = np.asarray(true_months, float), np.asarray(predicted_months, float)
    e = p - y
    edges = BIAS_BAND_EDGES_YEARS
    k = np.digitize((y if by == "true" else p) / 12.0, edges[1:-1])
    out = {"mae": round(float(np.abs(e).mean()), 3), "rmse": round(float(np.sqrt((e ** 2).mean())), 2),
           "bias": round(_bias(e), 2), "bias_by_band": {}, "mae_by_band": {}, "n_by_band": {}}
    for i in range(len(edges) - 1):
        sel = k == i
        name = f"{edges[i]}-{edges[i + 1]} y"
        out["bias_by_band"][name] = round(_bias(e[sel]), 1) if sel.any() else None
        out["mae_by_band"][name] = round(float(np.abs(e[sel]).mean()), 2) if sel.any() else None
        out["n_by_band"][name] = int(sel.sum())
    out["max_abs_band_bias"] = max((abs(v) for v in out["bias_by_band"].values() if v is not None), default=None)
    return out


def band_sex_table(df: pd.DataFrame) -> pd.DataFrame:
    """MAE and bias by age band × sex (the dataset page's table)."""
    d = add_error_columns(df.dropna(subset=["predicted_months"]))
    d["age_band"] = pd.cut(d["boneage_months"], [b[0] for b in AGE_BANDS] + [AGE_BANDS[-1][1]], right=False,
                           labels=[b[2] for b in AGE_BANDS])
    g = d.groupby(["age_band", "sex"], observed=True)
    return g.agg(n=("error", "size"), mae=("abs_error", "mean"), bias=("error", "mean")).round(2).reset_index()


def _r(v) -> float:
    return round(float(v), 3)
