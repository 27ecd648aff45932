"""Figures for the app's "Dataset errors" and "Model" pages: where the model fails, on a predictions table.

Drawing only: the table is read, checked and summarised by :mod:`boneage.metrics` (a DataFrame
from :func:`boneage.metrics.read_predictions`, with its error columns), the colours come from
:mod:`boneage.palette`. No Streamlit here, so every figure can be built and checked in a unit test.
Errors are always *predicted − true*, in months.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import SEXES, band_figures, bland_altman_stats, smooth_trend
from .palette import SEX_COLOURS, TEMPLATE, TRAIN_COLOUR, VAL_COLOUR

BAND_VIEW_COLOURS = {"true": "#636363", "predicted": "#3182bd"}  # grey: the criterion; blue: the reading's view


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


def band_bias_figure(df: pd.DataFrame, limit: float = 3.0):
    """Bias per 5-year band, banded by true age and by predicted age side by side.

    Why both: regression to the mean shows as a young-end excess and an old-end deficit when the
    images are grouped by the reader's age (issue #9's criterion, the ``limit`` band drawn), while
    grouped by what the tool said the same readings can be nearly unbiased — the view a user meets.
    The numbers are :func:`boneage.metrics.band_figures`.
    """
    if df.empty:
        return empty_figure()
    go = _go()
    fig = go.Figure()
    y, p = df["boneage_months"].to_numpy(float), df["predicted_months"].to_numpy(float)
    for by, word in (("true", "by true age"), ("predicted", "by predicted age")):
        f = band_figures(y, p, by=by)
        bands = [b for b, v in f["bias_by_band"].items() if v is not None]
        fig.add_trace(go.Bar(x=bands, y=[f["bias_by_band"][b] for b in bands], name=word,
                             marker_color=BAND_VIEW_COLOURS[by], customdata=[f["n_by_band"][b] for b in bands],
                             hovertemplate=f"%{{x}}, {word}: %{{y:+.1f}} months (n=%{{customdata}})<extra></extra>"))
    fig.add_hrect(y0=-limit, y1=limit, fillcolor="lightgreen", opacity=0.25, line_width=0, layer="below",
                  annotation_text=f"±{limit:g} months (issue #9)", annotation_position="top right")
    fig.add_hline(y=0, line=dict(color="grey", width=1))
    fig.update_layout(template=TEMPLATE, title="Bias by 5-year band: true age against predicted age", barmode="group",
                      legend=dict(x=0.99, xanchor="right", y=0.99), margin=dict(l=60, r=20, t=50, b=50), height=380)
    fig.update_xaxes(title_text="Age band")
    fig.update_yaxes(title_text="Mean of predicted − true (months)")
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
                                 line=dict(color=TRAIN_COLOUR)), row=1, col=i)
        if f"val_{m}" in h.columns:
            fig.add_trace(go.Scatter(x=x, y=h[f"val_{m}"], mode="lines+markers", name=f"{m} (validation)",
                                     line=dict(color=VAL_COLOUR)), row=1, col=i)
        fig.update_xaxes(title_text="epoch", row=1, col=i)
    fig.update_layout(template=TEMPLATE, title="Training curves", height=380, margin=dict(l=60, r=20, t=70, b=50))
    return fig


__all__ = [
    "pred_vs_true_figure", "bland_altman_figure", "error_vs_age_figure", "error_histogram_figure", "empty_figure",
    "history_figure",
]
