"""Batch-scoring throughput (``boneage predict DIR --out CSV``): images/s, thumbnails and full size.

Scores the 64 committed thumbnails and 16 full-size 2000×2500 PNGs (the hires samples upscaled,
as in ``bench/predict.py``) through :func:`boneage.batch.score` with the bundle's TTA count, after
one warm-up run (worker start and model tracing are a one-off cost per run, reported apart).
``--batch-images`` sets how many prepared images go to the model in one call (each brings its TTA
copies as rows). Measured 2026-11-29 with the shipped pair at 4 copies (two runs each): 8 images a
call 8.6 thumbnails/s and 7.8 full-size/s; 16 images 7.6–8.8 and 6.5–6.7 — the model waits for a
fuller batch while the workers idle — so ``score()`` keeps 8.

    .venv/bin/python bench/batch.py [--workers 2] [--batch-images N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--full-size", type=int, default=16)
    ap.add_argument("--batch-images", type=int, default=None, help="images per model call (default: score()'s)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from boneage.batch import score
    from boneage.predict import Predictor

    tmp = Path(tempfile.mkdtemp())
    full = tmp / "full"
    full.mkdir()
    hires = sorted((FIX / "hires").glob("*.png"))
    for i in range(a.full_size):
        img = cv2.imread(str(hires[i % len(hires)]), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(full / f"{i:03d}.png"), cv2.resize(img, (2000, 2500), interpolation=cv2.INTER_CUBIC))
    thumbs = sorted((FIX / "thumbs").glob("*.png"))

    pred = Predictor.load()
    per_call = {} if a.batch_images is None else {"batch_images": a.batch_images}
    res = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_avg_1min": round(os.getloadavg()[0], 2),
           "workers": a.workers or os.cpu_count(), "tta": pred.tta, "batch_images": a.batch_images or "default"}  # the bundle's count (boneage.bundle.TTASpec)
    t = time.perf_counter()
    score(pred, thumbs[:4], tmp / "warm.csv", sex="F", workers=a.workers, progress=False, **per_call)
    res["warm_up_s"] = round(time.perf_counter() - t, 1)
    for label, files in (("thumbnails_100px", thumbs), ("full_size_2000x2500_png", sorted(full.glob("*.png")))):
        s = score(pred, files, tmp / f"{label}.csv", sex="F", workers=a.workers, progress=False, **per_call)
        # A refused image (the acceptance check) is a row without a bone age, scored all the same.
        assert s.predicted + s.failed == len(files), "files left unscored"
        res[f"{label}_images_per_s"] = round(len(files) / s.seconds, 2)
        res[f"{label}_n"] = len(files)
        res[f"{label}_without_bone_age"] = s.failed
    for k, v in res.items():
        print(f"  {k:<34} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
