#!/usr/bin/env python
"""Fit an output calibration (``boneage.calibration``) from validation predictions; ship it only if it helps.

Input: the CSV that ``boneage evaluate`` writes for the validation ids (the full prediction path
with 8× TTA; columns ``id, boneage_months, male, predicted_months``; refused rows are left out):

    boneage evaluate --data <folder of the validation ids> --out val.csv
    python scripts/calibrate_output.py val.csv --bundle models [--write]

For each method (per-sex linear, per-sex isotonic, per-sex partial de-biasing) it prints the MAE, RMSE and bias per 5-year
band of the truth, **cross-fitted** (each half of the ids mapped by the fit on the other half),
and writes ``models/output_calibration.json`` with the figures. With ``--write`` it puts the best
method, fitted on all rows, into the bundle's ``meta.json`` section ``output_calibration`` —
only if its cross-fitted MAE beats the uncalibrated one by ``--min-gain`` (0.05 months), or its
largest bias of a 5-year band is ``--min-bias-gain`` (1.0 month) smaller at no MAE cost (issue #9's
second target); otherwise it removes any calibration there and says why. After a calibration changes, refit the interval table on the calibrated
estimates (re-run ``boneage evaluate`` and ``scripts/calibrate_intervals.py``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boneage import bundle, calibration  # noqa: E402
from boneage.metrics import band_figures  # noqa: E402

REPORT_FILE = "output_calibration.json"


def figures(y: np.ndarray, p: np.ndarray) -> dict:
    """boneage.metrics.band_figures by true age, the bands that have images."""
    f = band_figures(y, p)
    return {k: f[k] for k in ("mae", "rmse", "bias", "max_abs_band_bias")} | {
        "bias_by_band": {k: v for k, v in f["bias_by_band"].items() if v is not None}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--bundle", default="models")
    ap.add_argument("--write", action="store_true", help="put the best calibration into the bundle if it helps")
    ap.add_argument("--min-gain", type=float, default=0.05,
                    help="cross-fitted MAE gain (months) a calibration must earn to ship (default 0.05: smaller "
                         "changes are within what re-drawing the halves moves on ~1,700 images)")
    ap.add_argument("--min-bias-gain", type=float, default=1.0,
                    help="or: how much smaller (months) the largest bias of a 5-year band must get, cross-fitted, "
                         "with the MAE no worse (default 1.0)")
    a = ap.parse_args(argv)
    if not Path(a.bundle, bundle.META_FILE).is_file():
        print(f"error: {a.bundle} is not a model bundle (no meta.json)", file=sys.stderr)
        return 2
    df = pd.read_csv(a.csv).dropna(subset=["predicted_months"])
    p, y = df["predicted_months"].to_numpy(float), df["boneage_months"].to_numpy(float)
    sex = np.where(df["male"].astype(str).str.lower().isin(["true", "1"]), "M", "F")
    ids = df["id"].astype(str).tolist()
    meta = bundle.read_meta(a.bundle)
    if meta.section(calibration.SECTION) is not None:
        print("note: the bundle already has an output calibration; the CSV should hold uncalibrated predictions")
    rows = {"uncalibrated": figures(y, p)}
    for method in calibration.METHODS:
        rows[f"{method} (cross-fitted)"] = figures(y, calibration.cross_fit(p, y, sex, ids, method))
    for name, r in rows.items():
        print(f"{name:26s} MAE {r['mae']:6.3f}  RMSE {r['rmse']:6.2f}  bias by band {r['bias_by_band']}")
    # Ship on either of issue #9's two targets, cross-fitted: a clear MAE gain, or band biases
    # clearly smaller at no MAE cost (the smallest largest band bias among those, then the MAE).
    raw = rows["uncalibrated"]

    def gains(m: str) -> tuple[float, float]:
        r = rows[f"{m} (cross-fitted)"]
        return raw["mae"] - r["mae"], raw["max_abs_band_bias"] - r["max_abs_band_bias"]

    by_mae = [m for m in calibration.METHODS if gains(m)[0] >= a.min_gain]
    by_bias = [m for m in calibration.METHODS if gains(m)[0] >= 0 and gains(m)[1] >= a.min_bias_gain]
    best = (min(by_mae, key=lambda m: -gains(m)[0]) if by_mae else
            min(by_bias, key=lambda m: (-gains(m)[1], -gains(m)[0])) if by_bias else
            min(calibration.METHODS, key=lambda m: -gains(m)[0]))
    gain, bias_gain = gains(best)
    shipped = bool(by_mae or by_bias)
    report = {"measured_on": f"{len(p)} validation images through the full path with TTA (`boneage evaluate`)", "model_version": meta.model_version,
              "rows": rows, "best": best, "cross_fitted_gain_months": round(gain, 3),
              "cross_fitted_band_bias_gain_months": round(bias_gain, 1), "shipped": shipped and a.write}
    Path(a.bundle, REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if not a.write:
        print(f"best: {best}, cross-fitted gain {gain:+.3f} months, largest band bias {bias_gain:+.1f} months smaller "
              f"({'would ship' if shipped else 'would not ship'}; not written: pass --write)")
        return 0
    if shipped:
        cal = calibration.fit(p, y, sex, best, fit_on=f"{len(p)} validation images, full path with TTA",
                              cross_fitted_mae=rows[f"{best} (cross-fitted)"]["mae"],
                              uncalibrated_mae=rows["uncalibrated"]["mae"])
        bundle.write_meta(a.bundle, meta.with_section(calibration.SECTION, cal.to_section()))
        print(f"wrote the {best} calibration into {a.bundle}/meta.json (cross-fitted gain {gain:.3f} months, largest "
              f"band bias {bias_gain:.1f} months smaller); "
              "now refit the interval table on calibrated estimates")
    else:
        if meta.section(calibration.SECTION) is not None:
            bundle.write_meta(a.bundle, dataclasses.replace(
                meta, sections={k: v for k, v in meta.sections.items() if k != calibration.SECTION}))
        print(f"not shipped: the best calibration ({best}) changes the cross-fitted MAE by {-gain:+.3f} months and "
              f"the largest band bias by {-bias_gain:+.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
