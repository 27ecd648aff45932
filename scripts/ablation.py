#!/usr/bin/env python
"""One row per lever (issue #9): validation MAE, RMSE, bias by 5-year band, training cost.

Every row is measured on the same 1,707 validation thumbnails, on the cached model inputs of the
*current* pipeline (``boneage.data.build_cache``; no TTA, so rows compare levers, not TTA), except
rows kept from an earlier table (``--baseline``): the pipeline-version-3 model's record, whose
inputs can no longer be built (its predictions were its own training run's ``val_predictions.csv``).

    python scripts/ablation.py --row "continued on v4" runs/p6_v4 --row "ensemble" models,runs/p6_v4 \
        --cost "continued on v4=68 min" --out models/ablation.json

A row naming several models averages their outputs (an ensemble). ``--calibrate NAME`` adds a
row with a monotone de-biasing of that row's predictions, cross-fitted (fit on one half of the
ids, measured on the other, and the other way round), so the figure is never fit on itself.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boneage import bundle  # noqa: E402
from boneage.data import build_cache, is_validation  # noqa: E402
from boneage.metrics import band_figures  # noqa: E402
from boneage.paths import REPO_ROOT  # noqa: E402
from boneage.pipeline import PIPELINE_VERSION, PipelineParams  # noqa: E402

def band_table(y: np.ndarray, p: np.ndarray) -> dict:
    """The row's figures: boneage.metrics.band_figures by true age (the issue's 5-year bands)."""
    out = band_figures(y, p)
    out["mae"] = round(out["mae"], 2)
    del out["n_by_band"]
    return out


def model_params(model: str, default: PipelineParams) -> PipelineParams:
    """The pipeline parameters a model was trained with (its bundle's meta; its own input size)."""
    path = Path(model)
    b = bundle.Bundle(path if path.is_dir() else path.parent)
    # a bare .keras file without meta.json reads the shipped model's inputs; a malformed one stops here
    return bundle.read_meta(b).pipeline if b.meta_file.is_file() else default


def predict(models: list[str], inputs) -> np.ndarray:
    """Average of the models' outputs; ``inputs(params)`` gives (images, male) on each model's own grid."""
    from boneage.model import load_model
    from boneage.train import predict_arrays

    preds = []
    for m in models:
        x, male = inputs(m)
        preds.append(predict_arrays(load_model(bundle.Bundle(Path(m)).model_file if Path(m).is_dir() else m), x, male))
    return np.mean(preds, axis=0)


def crossfit_debias(y: np.ndarray, p: np.ndarray, ids: list[str]) -> np.ndarray:
    """Invert a quadratic fit of prediction on true age, fit on one half and applied to the other."""
    import hashlib

    half = np.array([hashlib.sha256(f"ablation:{i}".encode()).digest()[0] < 128 for i in ids])
    out = np.empty_like(p)
    grid = np.linspace(0, 240, 2401)
    for fit, ev in ((half, ~half), (~half, half)):
        f = np.polyval(np.polyfit(y[fit], p[fit], 2), grid)
        f = np.maximum.accumulate(f) + np.arange(len(f)) * 1e-9
        out[ev] = np.interp(p[ev], f, grid)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared/data/rsna-bone-age/train-100px"))
    ap.add_argument("--row", nargs=2, action="append", default=[], metavar=("NAME", "MODELS"),
                    help="a row: its name and a comma-separated list of bundles/.keras files (averaged)")
    ap.add_argument("--cost", action="append", default=[], metavar="NAME=TEXT", help="training cost of a row")
    ap.add_argument("--calibrate", action="append", default=[], metavar="NAME", help="add a cross-fitted de-biased row")
    ap.add_argument("--baseline", help="an earlier ablation.json whose first --keep rows are kept as recorded")
    ap.add_argument("--keep", type=int, default=1)
    ap.add_argument("--out", default=str(REPO_ROOT / "models/ablation.json"))
    a = ap.parse_args()
    costs = dict(c.rsplit("=", 1) for c in a.cost)  # the last "=": a row's name may hold one
    params = PipelineParams.from_dict(json.loads((REPO_ROOT / "models/meta.json").read_text()).get("pipeline"))
    prep = build_cache(a.data, params)
    lab = prep.labels
    val = (lab["id"].map(is_validation) & lab["ok"]).to_numpy()
    x, y = prep.images[val], lab["boneage_months"].to_numpy(float)[val]
    male, ids = lab["male"].to_numpy(float)[val], lab["id"][val].tolist()
    caches = {params: x}

    def inputs(model: str):
        """A model trained at another input size reads the same ids prepared at its size."""
        mp = model_params(model, params)
        if mp not in caches:
            other = build_cache(a.data, mp)
            pos = other.labels.set_index("id").index.get_indexer(ids)
            if (pos < 0).any():
                raise SystemExit(f"{model}: its cache lacks {int((pos < 0).sum())} of the validation ids")
            caches[mp] = other.images[pos]
        return caches[mp], male

    rows = []
    if a.baseline:  # rows recorded earlier (e.g. the pipeline-version-3 model, whose inputs can no longer be built)
        rows += json.loads(Path(a.baseline).read_text())["rows"][: a.keep]
    preds = {}
    for name, models in a.row:
        p = predict(models.split(","), inputs)
        preds[name] = p
        rows.append({"row": name, "models": models, "pipeline_version": PIPELINE_VERSION, "n": int(len(y)),
                     **band_table(y, p), "training_cost": costs.get(name, "none (no training)")})
        print(f"{name}: MAE {rows[-1]['mae']}, bias by band {rows[-1]['bias_by_band']}")
    for name in a.calibrate:
        p = crossfit_debias(y, preds[name], ids)
        rows.append({"row": f"{name} + de-biasing (cross-fitted, quadratic)", "models": "", "pipeline_version": PIPELINE_VERSION,
                     "n": int(len(y)), **band_table(y, p), "training_cost": "seconds (not shipped: see note)"})
        print(f"{rows[-1]['row']}: MAE {rows[-1]['mae']}, bias by band {rows[-1]['bias_by_band']}")
    Path(a.out).write_text(json.dumps({"measured_on": "validation thumbnails, cached model inputs, no TTA",
                                       "rows": rows}, indent=2) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
