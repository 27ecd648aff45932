#!/usr/bin/env python
"""Sweep hand localisation over every radiograph we have: the share of plausible masks.

A mask is *plausible* when the pipeline found a hand and the alignment turned it by at most 30°
(RSNA films are taken fingers up; a larger turn is nearly always a mask or alignment failure —
issue #9 measured 16 % of thumbnails failing so before pipeline version 4). Reported overall, for
the older film-heavy ids below 5000, for the 40 full-size radiographs and for the raw films in
``unlabelled-radiographs``, with how often each mask candidate won (``boneage.localise``).

The thumbnails' figures come from the training cache (``boneage.data.build_cache`` keeps each
image's rotation and mask method), so a sweep after a training run costs nothing.

    python scripts/localisation_sweep.py [--out models/localisation.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boneage.data import build_cache  # noqa: E402
from boneage.io import load_image  # noqa: E402
from boneage.paths import REPO_ROOT  # noqa: E402
from boneage.pipeline import PIPELINE_VERSION, PipelineParams, run_pipeline  # noqa: E402

MAX_TURN_DEG = 30.0


def shares(lab: pd.DataFrame) -> dict:
    ok = lab["hand_found"].astype(bool) & (lab["rotation_deg"].abs() <= MAX_TURN_DEG)
    return {"n": int(len(lab)), "plausible": round(float(ok.mean()), 4) if len(lab) else None,
            "no_hand": int((~lab["hand_found"].astype(bool)).sum()),
            "turned_over_30_deg": int((lab["hand_found"].astype(bool) & (lab["rotation_deg"].abs() > MAX_TURN_DEG)).sum()),
            "mask_methods": {str(k): int(v) for k, v in lab["mask_method"].value_counts().items()}}


def run_files(paths: list[Path], params: PipelineParams) -> pd.DataFrame:
    rows = []
    for p in paths:
        r = run_pipeline(load_image(p), params)
        rows.append({"id": p.stem, "hand_found": r.hand_found, "rotation_deg": r.rotation_deg, "mask_method": r.mask_method})
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared/data"))
    ap.add_argument("--out", default=str(REPO_ROOT / "models/localisation.json"))
    a = ap.parse_args()
    data = Path(a.data)
    params = PipelineParams.from_dict(json.loads((REPO_ROOT / "models/meta.json").read_text()).get("pipeline"))
    thumbs = build_cache(data / "rsna-bone-age/train-100px", params).labels
    thumbs = thumbs[thumbs["ok"]]
    old = thumbs["id"].astype(int) < 5000
    hires = run_files(sorted((data / "rsna-bone-age/hires").glob("*.png")), params)
    raw = run_files(sorted((data / "unlabelled-radiographs").glob("*.png")), params)
    out = {"pipeline_version": PIPELINE_VERSION, "max_turn_deg": MAX_TURN_DEG,
           "thumbnails": shares(thumbs), "thumbnails_ids_below_5000": shares(thumbs[old]),
           "hires": shares(hires), "unlabelled_films": shares(raw)}
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    for k in ("thumbnails", "thumbnails_ids_below_5000", "hires", "unlabelled_films"):
        v = out[k]
        print(f"{k:>26}: {v['plausible']:.1%} plausible of {v['n']} (no hand {v['no_hand']}, turned > 30° {v['turned_over_30_deg']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
