"""Figures for the app's "Dataset errors" page: where the model fails, on a predictions CSV.

Pure functions on a pandas DataFrame in the ``boneage evaluate`` format
(``id,boneage_months,male,predicted_months``); no Streamlit here, so every figure can be built and
checked in a unit test. Errors are always *predicted − true*, in months: positive means the model
reads the skeleton as older than the reader did.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .vocab import SEX_LABELS, from_male, male_or_none, sex_label

REQUIRED_COLUMNS = ("boneage_months", "male", "predicted_months")
SEX_COLOURS = {"female": "#D55E00", "male": "#0072B2"}  # Okabe-Ito, colour-blind safe
SEXES = SEX_LABELS  # ("female", "male"): the "sex" column's values and the page's filter
TEMPLATE = "plotly_white"
LOA_Z = 1.96  # Bland-Altman limits of agreement: bias ± 1.96 SD


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
    bias = float(e.mean())
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


# ------------------------------------------------------------------------------------- figures


def _go():
    import plotly.graph_objects as go

    return go


def empty_figure(message: str = "No predictions match the filters"):
    go = _go()
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="grey"))
    fig.update_layout(template=TEMPLATE, xaxis=dict(visible=False), yaxis=dict(visible=False), height=360)
    return fig


def _hover(df: pd.DataFrame) -> tuple[np.ndarray, str]:
    custom = np.stack([df["id"].astype(str), df["boneage_months"], df["predicted_months"], df["error"]], axis=1)
    tpl = ("id %{customdata[0]}<br>true %{customdata[1]:.0f} months<br>predicted %{customdata[2]:.1f} months"
           "<br>error %{customdata[3]:+.1f} months<extra></extra>")
    return custom, tpl


def _by_sex(df: pd.DataFrame):
    for s in SEXES:
        d = df[df["sex"] == s]
        if len(d):
            yield s, d


def pred_vs_true_figure(df: pd.DataFrame):
    """Predicted against true bone age, one colour per sex, with the identity line."""
    if df.empty:
        return empty_figure()
    go = _go()
    fig = go.Figure()
    lo = float(min(df["boneage_months"].min(), df["predicted_months"].min(), 0.0))
    hi = float(max(df["boneage_months"].max(), df["predicted_months"].max())) * 1.03
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="identity (perfect)",
                             line=dict(color="grey", dash="dash", width=1), hoverinfo="skip"))
    for s, d in _by_sex(df):
        custom, tpl = _hover(d)
        fig.add_trace(go.Scatter(x=d["boneage_months"], y=d["predicted_months"], mode="markers", name=s,
                                 marker=dict(color=SEX_COLOURS[s], size=6, opacity=0.6), customdata=custom,
                                 hovertemplate=tpl))
    fig.update_layout(template=TEMPLATE, title="Predicted vs true bone age", legend=dict(x=0.01, y=0.99),
                      margin=dict(l=60, r=20, t=50, b=50), height=420)
    fig.update_xaxes(title_text="True bone age (months)", range=[lo, hi])
    fig.update_yaxes(title_text="Predicted bone age (months)", range=[lo, hi], scaleanchor="x", scaleratio=1)
    return fig


def bland_altman_figure(df: pd.DataFrame):
    """Difference (predicted − true) against the mean of the two, with bias and 95 % limits."""
    if df.empty:
        return empty_figure()
    go = _go()
    st_ = bland_altman_stats(df)
    fig = go.Figure()
    for s, d in _by_sex(df):
        custom, tpl = _hover(d)
        fig.add_trace(go.Scatter(x=d["mean_months"], y=d["error"], mode="markers", name=s,
                                 marker=dict(color=SEX_COLOURS[s], size=6, opacity=0.6), customdata=custom,
                                 hovertemplate=tpl))
    fig.add_hline(y=0, line=dict(color="lightgrey", width=1))
    label = dict(annotation_position="top left", annotation_bgcolor="rgba(255,255,255,0.85)")
    fig.add_hline(y=st_["bias"], line=dict(color="black", width=2), annotation_text=f"bias {st_['bias']:+.1f} months",
                  **label)
    for key, word in (("upper", "+1.96 SD"), ("lower", "−1.96 SD")):
        fig.add_hline(y=st_[key], line=dict(color="black", width=1, dash="dot"),
                      annotation_text=f"{word}: {st_[key]:+.1f} months", **label)
    fig.update_layout(template=TEMPLATE, title="Bland–Altman: agreement with the reader",
                      legend=dict(x=0.99, xanchor="right", y=0.99), margin=dict(l=60, r=20, t=50, b=50), height=420)
    fig.update_xaxes(title_text="Mean of predicted and true (months)")
    fig.update_yaxes(title_text="Predicted − true (months)")
    return fig


def error_vs_age_figure(df: pd.DataFrame):
    """Signed error against true bone age, with a kernel-smoothed trend per sex and overall."""
    if df.empty:
        return empty_figure()
    go = _go()
    fig = go.Figure()
    fig.add_hline(y=0, line=dict(color="grey", dash="dash", width=1))
    for s, d in _by_sex(df):
        custom, tpl = _hover(d)
        fig.add_trace(go.Scatter(x=d["boneage_months"], y=d["error"], mode="markers", name=s,
                                 marker=dict(color=SEX_COLOURS[s], size=5, opacity=0.45), customdata=custom,
                                 hovertemplate=tpl))
        gx, gy = smooth_trend(d["boneage_months"], d["error"])
        if gx.size:
            fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", name=f"{s} trend",
                                     line=dict(color=SEX_COLOURS[s], width=3)))
    gx, gy = smooth_trend(df["boneage_months"], df["error"])
    if gx.size:
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", name="trend (all)", line=dict(color="black", width=2)))
    fig.update_layout(template=TEMPLATE, title="Signed error by true bone age", legend=dict(x=0.99, xanchor="right", y=0.99),
                      margin=dict(l=60, r=20, t=50, b=50), height=420)
    fig.update_xaxes(title_text="True bone age (months)")
    fig.update_yaxes(title_text="Predicted − true (months)")
    return fig


def error_histogram_figure(df: pd.DataFrame, nbins: int = 40):
    """Distribution of the signed error, overlaid by sex."""
    if df.empty:
        return empty_figure()
    go = _go()
    fig = go.Figure()
    lo, hi = float(df["error"].min()), float(df["error"].max())
    size = max((hi - lo) / nbins, 0.5)
    for s, d in _by_sex(df):
        fig.add_trace(go.Histogram(x=d["error"], name=s, marker_color=SEX_COLOURS[s], opacity=0.6,
                                   xbins=dict(start=lo, end=hi + size, size=size)))
    fig.add_vline(x=0, line=dict(color="grey", dash="dash", width=1))
    fig.update_layout(template=TEMPLATE, title="Error distribution", barmode="overlay",
                      legend=dict(x=0.99, xanchor="right", y=0.99), margin=dict(l=60, r=20, t=50, b=50), height=420)
    fig.update_xaxes(title_text="Predicted − true (months)")
    fig.update_yaxes(title_text="Images")
    return fig




def history_figure(history: pd.DataFrame):
    """Training curves from ``history.csv``: each metric with its ``val_`` twin, one panel per metric."""
    from plotly.subplots import make_subplots

    go = _go()
    h = history.copy()
    x = h["epoch"] + 1 if "epoch" in h.columns else pd.Series(np.arange(1, len(h) + 1))
    metrics = [c for c in h.columns if c != "epoch" and not c.startswith("val_") and pd.api.types.is_numeric_dtype(h[c])]
    metrics = [m for m in metrics if m not in ("learning_rate", "lr")] or metrics
    if not metrics:
        return empty_figure("history.csv has no metric columns")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for i, m in enumerate(metrics, start=1):
        fig.add_trace(go.Scatter(x=x, y=h[m], mode="lines+markers", name=f"{m} (train)",
                                 line=dict(color="#0072B2")), row=1, col=i)
        if f"val_{m}" in h.columns:
            fig.add_trace(go.Scatter(x=x, y=h[f"val_{m}"], mode="lines+markers", name=f"{m} (validation)",
                                     line=dict(color="#D55E00")), row=1, col=i)
        fig.update_xaxes(title_text="epoch", row=1, col=i)
    fig.update_layout(template=TEMPLATE, title="Training curves", height=380, margin=dict(l=60, r=20, t=70, b=50))
    return fig


__all__ = [
    "PredictionsError", "read_predictions", "add_error_columns", "filter_predictions", "bland_altman_stats",
    "smooth_trend", "worst_cases", "pred_vs_true_figure", "bland_altman_figure", "error_vs_age_figure",
    "error_histogram_figure", "empty_figure", "history_figure",
]
