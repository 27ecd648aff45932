#!/usr/bin/env python
"""Bone age read from film-like composites of the labelled full-size radiographs (issue #9).

The held-out measurement of this project includes full-size *scanned films* (a grey film on a
darker surround, film edges and frames, markers, a second exposure), which we have no labelled
copy of. The 40 ``hires`` radiographs are labelled and segmented (hand on black), so
:func:`boneage.composites.composite` can put each one on every kind of film surround the
localisation tests use, and the full prediction path (``Predictor.predict``: loader checks,
pipeline, both networks with the bundle's TTA, acceptance check) reads them. Reported per kind:
MAE and bias against the reader's label, the shift from the reading of the file itself, and how
many the acceptance check refused (read anyway, ``accept_unusual``, so every kind has 40 rows).

The composite rescales the hand into the 1000×800 study frame and lifts it over its background
(soft tissue above the film), so even the ``clean`` kind is not the file: compare the film kinds
with ``clean`` to see what the film surround itself costs.

    python scripts/composite_readings.py [--data ../shared/data/rsna-bone-age/hires] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boneage.composites import KINDS, composite  # noqa: E402
from boneage.io import load_image  # noqa: E402
from boneage.paths import REPO_ROOT  # noqa: E402
from boneage.predict import Predictor  # noqa: E402
from boneage.vocab import from_male  # noqa: E402


def readings(pred: Predictor, data: Path) -> pd.DataFrame:
    """One row per (radiograph, kind): the file itself as kind ``file``, then every composite."""
    labels = pd.read_csv(data / "labels.csv").set_index("id")
    rows = []
    files = sorted(data.glob("*.png"))
    for i, f in enumerate(files):
        y, male = float(labels.loc[int(f.stem), "boneage_months"]), bool(labels.loc[int(f.stem), "male"])
        sex = from_male(male)
        img = load_image(f).pixels
        for kind, image in [("file", f), *((k, composite(img, k, seed=i)[0]) for k in KINDS)]:
            r = pred.predict(image, sex=sex, accept_unusual=True)
            rows.append({"id": int(f.stem), "kind": kind, "true_months": y, "predicted_months": r.bone_age_months,
                         "accepted": None if r.acceptance is None else bool(r.acceptance.accepted)})
        if sys.stderr.isatty() or (i + 1) % 10 == 0 or i + 1 == len(files):
            end = "" if sys.stderr.isatty() and i + 1 < len(files) else "\n"
            print(f"\r{i + 1}/{len(files)} radiographs read, {len(KINDS) + 1} ways each", end=end, file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def summary(d: pd.DataFrame) -> pd.DataFrame:
    base = d[d["kind"] == "file"].set_index("id")["predicted_months"]
    d = d.assign(error=d["predicted_months"] - d["true_months"], shift=d["predicted_months"] - d["id"].map(base))
    g = d.groupby("kind", sort=False)
    return pd.DataFrame({
        "n": g.size(), "mae": g["error"].apply(lambda e: e.abs().mean()), "bias": g["error"].mean(),
        "mean_abs_shift": g["shift"].apply(lambda s: s.abs().mean()), "max_abs_shift": g["shift"].apply(lambda s: s.abs().max()),
        "refused": g["accepted"].apply(lambda a: int((a == False).sum())),  # noqa: E712 - None (no check) is not a refusal
    }).round(2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared/data/rsna-bone-age/hires"),
                    help="segmented radiographs (hand on black) with labels.csv")
    ap.add_argument("--model", default=None, help="model bundle (default: the shipped one)")
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args(argv)
    data = Path(a.data)
    if not (data / "labels.csv").is_file():
        print(f"composite_readings: {data} has no labels.csv", file=sys.stderr)
        return 2
    pred = Predictor.load(a.model)
    s = summary(readings(pred, data))
    print(f"{pred.model_version}, {s['n'].iloc[0]} radiographs per kind, months:")
    print(s.to_string())
    if a.json:
        Path(a.json).write_text(json.dumps({"model_version": pred.model_version, "data": str(data),
                                            "kinds": s.reset_index().to_dict(orient="records")}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
