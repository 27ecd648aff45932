"""boneage.dataset_plots: reading predictions CSVs, filters, statistics and figures (no Streamlit)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from boneage import dataset_plots as dp
from boneage import metrics


def make_df(n: int = 200, seed: int = 0, bias: float = 3.0, sd: float = 10.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    true = rng.uniform(12, 216, n).round()
    male = rng.random(n) > 0.5
    pred = true + bias + rng.normal(0, sd, n)
    return pd.DataFrame({"id": np.arange(1000, 1000 + n), "boneage_months": true, "male": male,
                         "predicted_months": pred})


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


# ------------------------------------------------------------------------------------ reading


def test_read_predictions_adds_error_columns(tmp_path):
    raw = make_df(20)
    p = tmp_path / "val.csv"
    raw.to_csv(p, index=False)
    for src in (p, str(p), csv_bytes(raw), io.BytesIO(csv_bytes(raw))):
        df = metrics.read_predictions(src)
        assert len(df) == 20 and df.attrs["n_missing"] == 0
        np.testing.assert_allclose(df["error"], raw["predicted_months"] - raw["boneage_months"])
        np.testing.assert_allclose(df["abs_error"], np.abs(df["error"]))
        np.testing.assert_allclose(df["mean_months"], (raw["predicted_months"] + raw["boneage_months"]) / 2)
        assert list(df["sex"]) == ["male" if m else "female" for m in raw["male"]]
        assert df["id"].iloc[0] == "1000" and isinstance(df["id"].iloc[0], str)


def test_read_predictions_accepts_kaggle_column_and_text_sex():
    text = "id,boneage,male,predicted_months\n1,100,True,110\n2,50,false,45\n3,80,M,\n4,20,F,25\n"
    df = metrics.read_predictions(text.encode())
    assert list(df["id"]) == ["1", "2", "4"]  # row 3 failed in evaluation: dropped and counted
    assert df.attrs["n_missing"] == 1
    assert list(df["male"]) == [True, False, False]
    assert list(df["error"]) == [10.0, -5.0, 5.0]


@pytest.mark.parametrize("data, words", [
    (b"a,b\n1,2\n", "missing column(s) boneage_months, male, predicted_months"),
    (b"id,boneage_months,male,predicted_months\n1,100,maybe,90\n", "unreadable sex"),
    (b"id,boneage_months,male,predicted_months\n1,100,True,\n", "no rows with a prediction"),
    (b"", "not a readable CSV"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not a readable CSV"),
])
def test_read_predictions_bad_input_one_line(data, words):
    with pytest.raises(metrics.PredictionsError) as ei:
        metrics.read_predictions(data)
    msg = str(ei.value)
    assert words in msg and "\n" not in msg


def test_read_predictions_missing_file(tmp_path):
    with pytest.raises(metrics.PredictionsError, match="file not found"):
        metrics.read_predictions(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------ filters & stats


def test_filter_predictions():
    df = metrics.add_error_columns(make_df(300))
    f = metrics.filter_predictions(df, sexes=["male"], age_range=(60, 120), min_abs_error=5)
    assert len(f) > 0
    assert (f["sex"] == "male").all() and f["boneage_months"].between(60, 120).all() and (f["abs_error"] >= 5).all()
    expected = ((df["sex"] == "male") & df["boneage_months"].between(60, 120) & (df["abs_error"] >= 5)).sum()
    assert len(f) == expected
    assert len(metrics.filter_predictions(df)) == len(df)
    assert metrics.filter_predictions(df, sexes=[]).empty


def test_bland_altman_stats_match_hand_computation():
    df = metrics.add_error_columns(pd.DataFrame({"id": list("abcd"), "boneage_months": [100, 100, 100, 100],
                                            "male": [True, False, True, False],
                                            "predicted_months": [102, 98, 106, 102]}))
    s = metrics.bland_altman_stats(df)
    # errors 2, -2, 6, 2: mean 2, sample SD sqrt(32/3)
    assert s["n"] == 4 and s["bias"] == pytest.approx(2.0)
    assert s["sd"] == pytest.approx(np.sqrt(32 / 3))
    assert s["upper"] == pytest.approx(2 + 1.96 * np.sqrt(32 / 3))
    assert s["lower"] == pytest.approx(2 - 1.96 * np.sqrt(32 / 3))
    assert metrics.bland_altman_stats(df.iloc[:0])["bias"] is None


def test_smooth_trend_follows_the_signal():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 200, 2000)
    y = 0.1 * x - 10 + rng.normal(0, 3, x.size)
    gx, gy = metrics.smooth_trend(x, y)
    assert gx.size == 80 and gx[0] == pytest.approx(x.min()) and gx[-1] == pytest.approx(x.max())
    inner = (gx > 20) & (gx < 180)  # kernel smoothers flatten at the edges
    np.testing.assert_allclose(gy[inner], 0.1 * gx[inner] - 10, atol=1.5)
    assert metrics.smooth_trend([1, 2], [1, 2])[0].size == 0
    assert metrics.smooth_trend([5, 5, 5], [1, 2, 3])[0].size == 0


def test_worst_cases_sorted_by_absolute_error():
    df = metrics.add_error_columns(make_df(50))
    w = metrics.worst_cases(df, 5)
    assert len(w) == 5
    assert list(w["abs_error"]) == sorted(df["abs_error"], reverse=True)[:5]


# ------------------------------------------------------------------------------------ figures


class T(dict):
    """A trace as plain Python (plotly 7 stores arrays as numpy / typed arrays)."""

    def __getattr__(self, k):
        return self[k]


def _plain(v):
    if isinstance(v, (np.ndarray, tuple)):
        return [_plain(x) for x in np.asarray(v).tolist()]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def traces(fig) -> list[dict]:
    return [T({k: _plain(v) for k, v in tr.to_plotly_json().items()}) for tr in fig.data]


def test_pred_vs_true_has_identity_line_and_one_trace_per_sex():
    df = metrics.add_error_columns(make_df(100))
    t = traces(dp.pred_vs_true_figure(df))
    identity = t[0]
    assert identity["name"].startswith("identity") and identity["x"] == identity["y"]
    sexes = {tr["name"]: tr for tr in t[1:]}
    assert set(sexes) == {"female", "male"}
    assert sexes["male"]["marker"]["color"] == dp.SEX_COLOURS["male"]
    assert len(sexes["male"]["x"]) == int(df["male"].sum())


def test_bland_altman_figure_draws_bias_and_limits():
    df = metrics.add_error_columns(make_df(100))
    fig = dp.bland_altman_figure(df)
    s = metrics.bland_altman_stats(df)
    ys = sorted(sh.y0 for sh in fig.layout.shapes)
    np.testing.assert_allclose(ys, sorted([0.0, s["bias"], s["lower"], s["upper"]]))
    pts = {tr["name"]: tr for tr in traces(fig)}
    m = df[df["sex"] == "female"]
    np.testing.assert_allclose(pts["female"]["x"], m["mean_months"])
    np.testing.assert_allclose(pts["female"]["y"], m["error"])


def test_error_vs_age_has_trends_and_histogram_counts_everything():
    df = metrics.add_error_columns(make_df(150))
    names = [tr["name"] for tr in traces(dp.error_vs_age_figure(df))]
    assert {"female", "male", "female trend", "male trend", "trend (all)"} <= set(names)
    hist = traces(dp.error_histogram_figure(df))
    assert sum(len(tr["x"]) for tr in hist) == len(df)


def test_band_bias_figure_shows_both_views_of_the_same_readings():
    df = metrics.read_predictions(csv_bytes(make_df(400, bias=3.0)))
    fig = dp.band_bias_figure(df)
    assert [t.name for t in fig.data] == ["by true age", "by predicted age"]
    by_true = metrics.band_figures(df["boneage_months"], df["predicted_months"])
    assert list(fig.data[0].y) == [v for v in by_true["bias_by_band"].values() if v is not None]
    assert sum(fig.data[0].customdata) == len(df) == sum(fig.data[1].customdata)
    assert dp.band_bias_figure(df.iloc[:0]).layout.annotations[0].text == "No predictions match the filters"


def test_empty_selection_gives_a_message_not_an_error():
    empty = metrics.add_error_columns(make_df(10)).iloc[:0]
    for build in (dp.pred_vs_true_figure, dp.bland_altman_figure, dp.error_vs_age_figure, dp.error_histogram_figure):
        fig = build(empty)
        assert not fig.data
        assert "No predictions" in fig.layout.annotations[0].text


def test_history_figure_pairs_train_and_validation():
    h = pd.DataFrame({"epoch": [0, 1, 2], "loss": [3.0, 2.0, 1.5], "mae": [30, 20, 15], "val_loss": [3.1, 2.5, 2.0],
                      "val_mae": [31, 25, 20], "learning_rate": [1e-3, 1e-3, 5e-4]})
    t = traces(dp.history_figure(h))
    assert [tr["name"] for tr in t] == ["loss (train)", "loss (validation)", "mae (train)", "mae (validation)"]
    assert t[0]["x"] == [1, 2, 3] and t[3]["y"] == [31, 25, 20]
    assert "no metric" in dp.history_figure(pd.DataFrame({"epoch": [0]})).layout.annotations[0].text
