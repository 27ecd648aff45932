#!/usr/bin/env python
"""Fit the 90 % interval table (``intervals.json``) from validation predictions, and verify it.

Input: a CSV of the validation ids predicted through the full path with the bundle's TTA count
(``meta.json`` section ``tta``, 8 by default), with columns
``id, boneage_months, male, predicted_months, tta_sd_months`` — what ``boneage evaluate`` writes:

    boneage evaluate --data <folder of the validation ids> --out val.csv
    python scripts/calibrate_intervals.py val.csv --bundle models

(``scripts/calibrate_acceptance.py export-val`` writes the same CSV from its sweep, which runs the
same :meth:`Predictor.examine` path.) Refused rows (empty ``predicted_months``) are left out.
Prints coverage measured by 5-fold cross-fitting (ids never used to calibrate the fold's table),
overall, per true age band and per sex, then fits the shipped table on all rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boneage import bundle  # noqa: E402
from boneage.intervals import IntervalTable, cross_fit  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--bundle", default="models")
    ap.add_argument("--folds", type=int, default=5)
    a = ap.parse_args(argv)
    df = pd.read_csv(a.csv).dropna(subset=["predicted_months", "tta_sd_months"])
    sex = np.where(df["male"].astype(str).str.lower().isin(["true", "1"]), "M", "F")
    args = (df["predicted_months"].to_numpy(float), df["boneage_months"].to_numpy(float), sex,
            df["tta_sd_months"].to_numpy(float))
    report = cross_fit(df["id"].astype(str).to_numpy(), *args, k=a.folds)
    table = IntervalTable.fit(*args)
    copies = bundle.TTASpec.from_meta(bundle.read_meta(a.bundle)).copies  # what the CSV was predicted with
    table.info = {"about": "90 % split-conformal intervals (boneage.intervals); scripts/calibrate_intervals.py",
                  "calibrated_on": f"{len(df)} validation thumbnails, full prediction path, {copies}x TTA",
                  "verified_cross_fit": report}
    table.save(a.bundle)
    print(json.dumps(report, indent=2))
    print("\n| true age band | n | coverage of the 90 % interval | mean width (months) |")
    print("|---|---:|---:|---:|")
    for k, r in report["by_true_age_band"].items():
        print(f"| {k} | {r['n']} | {100 * r['coverage']:.1f} % | {r['mean_width_months']:.1f} |")
    print(f"| all | {report['n']} | {100 * report['coverage']:.1f} % | {report['mean_width_months']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
