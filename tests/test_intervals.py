"""Split-conformal 90 % intervals: coverage on held-out ids, conditioning, storage."""
from __future__ import annotations

import numpy as np
import pytest

from boneage.intervals import BAND_EDGES, IntervalTable, band_of, cross_fit
from boneage.paths import MODELS_DIR


def _synthetic(n=3000, seed=0):
    """Residuals that grow with age, skew by band (regression to the mean) and with TTA spread."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(10, 220, n)
    sex = rng.choice(["M", "F"], n)
    tta = rng.gamma(2.0, 1.5, n)
    bias = np.where(y < 60, 8.0, np.where(y > 180, -8.0, 0.0))
    pred = np.clip(y + bias + rng.normal(0, 6 + 0.05 * y, n) + rng.normal(0, 1, n) * tta * 2, 0, 228)
    return np.arange(n).astype(str), pred, y, sex, tta


def test_cross_fitted_coverage_is_near_nominal_overall_and_by_band():
    ids, pred, y, sex, tta = _synthetic()
    r = cross_fit(ids, pred, y, sex, tta, k=5)
    assert 0.88 <= r["coverage"] <= 0.92
    for band in r["by_true_age_band"].values():
        assert 0.8 <= band["coverage"] <= 0.97


def test_interval_is_asymmetric_where_the_model_is_biased_and_wider_with_tta_spread():
    ids, pred, y, sex, tta = _synthetic()
    t = IntervalTable.fit(pred, y, sex, tta)
    lo, hi = t.interval(40.0, "F", 1.0)  # young: the model over-reads, so the truth lies lower
    assert (40.0 - lo) > (hi - 40.0)
    a = t.interval(120.0, "M", 0.5)
    b = t.interval(120.0, "M", 8.0)
    assert (b[1] - b[0]) > (a[1] - a[0])
    assert t.interval(227.0, "M", 3.0)[1] <= 228.0 and t.interval(1.0, "F", 3.0)[0] >= 0.0


def test_band_of_and_storage_round_trip(tmp_path):
    assert band_of(0) == 0 and band_of(228) == len(BAND_EDGES) - 2 and band_of(500) == len(BAND_EDGES) - 2
    ids, pred, y, sex, tta = _synthetic(600)
    t = IntervalTable.fit(pred, y, sex, tta)
    t.save(tmp_path)
    back = IntervalTable.load(tmp_path)
    assert back.interval(100.0, "F", 2.0) == pytest.approx(t.interval(100.0, "F", 2.0))
    assert IntervalTable.load(tmp_path / "none") is None


@pytest.mark.skipif(not (MODELS_DIR / "intervals.json").is_file(), reason="no shipped interval table")
def test_shipped_table_was_verified_within_target():
    t = IntervalTable.load(MODELS_DIR)
    r = t.info["verified_cross_fit"]
    assert 0.88 <= r["coverage"] <= 0.92 and r["n"] > 1000
