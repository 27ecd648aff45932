"""Speed of load + full preprocessing pipeline per image (not a test: numbers depend on the machine).

Rows: the hires radiographs (~800×1040; the shared 40 if ../shared is present, else the 8
fixtures), 2000×2500 inputs made by upscaling hires samples and written as PNG to a temp folder
(so decoding a full-size file is part of the cost), and the 100×100 thumbnails. Each image is
timed ``--repeats`` times after one warm-up pass; the table shows medians over all timings.
Goal: ≤ 150 ms per full-size image (load + pipeline) on the 2-core development machine.
The 1-minute load average is printed: other work on the machine makes the numbers pessimistic.

    python bench/pipeline.py                      # table
    python bench/pipeline.py --json bench.json    # table + figures as JSON
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from boneage.io import load_image  # noqa: E402
from boneage.paths import FIXTURES_DIR, shared_data_dir  # noqa: E402
from boneage.pipeline import PipelineParams, run_pipeline  # noqa: E402

GOAL_MS = 150.0
BIG = (2000, 2500)  # width × height


def time_files(paths: list[Path], repeats: int, params: PipelineParams) -> dict:
    load_ms, pipe_ms, total_ms = [], [], []
    for p in paths:  # warm-up: imports, allocator, OpenCV thread pool, file cache
        run_pipeline(load_image(p), params)
    for _ in range(repeats):
        for p in paths:
            t0 = time.perf_counter()
            img = load_image(p)  # a LoadedImage, as the prediction path passes it
            t1 = time.perf_counter()
            run_pipeline(img, params)
            t2 = time.perf_counter()
            load_ms.append((t1 - t0) * 1e3)
            pipe_ms.append((t2 - t1) * 1e3)
            total_ms.append((t2 - t0) * 1e3)
    h, w = load_image(paths[0]).pixels.shape
    return {
        "images": len(paths),
        "timings": len(total_ms),
        "size": f"{w}x{h}",
        "load_ms_median": statistics.median(load_ms),
        "pipeline_ms_median": statistics.median(pipe_ms),
        "total_ms_median": statistics.median(total_ms),
        "total_ms_p90": float(np.percentile(total_ms, 90)),
    }


def make_big(sources: list[Path], folder: Path) -> list[Path]:
    out = []
    for p in sources:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(img, BIG, interpolation=cv2.INTER_CUBIC)
        dst = folder / f"{p.stem}_{BIG[0]}x{BIG[1]}.png"
        cv2.imwrite(str(dst), big)
        out.append(dst)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures here as JSON")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over each set (default 3)")
    ap.add_argument("--big", type=int, default=8, help="hires samples upscaled to 2000×2500 (default 8)")
    ap.add_argument("--thumbs", type=int, default=32, help="thumbnails timed (default 32; 0 = skip)")
    a = ap.parse_args(argv)

    shared = shared_data_dir() / "hires"
    hires = sorted(shared.glob("*.png")) if shared.is_dir() else []
    hires_src = "shared" if hires else "fixtures"
    hires = hires or sorted((FIXTURES_DIR / "hires").glob("*.png"))
    thumbs = sorted((FIXTURES_DIR / "thumbs").glob("*.png"))[: a.thumbs]
    params = PipelineParams()

    rows: dict[str, dict] = {}
    load_before = os.getloadavg()[0]
    rows[f"hires ({hires_src})"] = time_files(hires, a.repeats, params)
    with tempfile.TemporaryDirectory(prefix="boneage-bench-") as tmp:
        big = make_big(hires[:: max(1, len(hires) // a.big)][: a.big], Path(tmp))
        rows["upscaled 2000x2500 PNG"] = time_files(big, a.repeats, params)
    if thumbs:
        rows["thumbnails (fixtures)"] = time_files(thumbs, a.repeats, params)
    load_after = os.getloadavg()[0]

    print(f"{'input':26} {'n':>4} {'size':>10} {'load ms':>8} {'pipe ms':>8} {'total ms':>9} {'p90 ms':>7}  goal")
    for name, r in rows.items():
        ok = "ok" if r["total_ms_median"] <= GOAL_MS else "over"
        print(f"{name:26} {r['images']:>4} {r['size']:>10} {r['load_ms_median']:8.1f} {r['pipeline_ms_median']:8.1f} "
              f"{r['total_ms_median']:9.1f} {r['total_ms_p90']:7.1f}  {ok} (≤{GOAL_MS:.0f})")
    print(f"load average (1 min) {load_before:.2f} → {load_after:.2f} on {os.cpu_count()} CPUs; "
          f"OpenCV threads {cv2.getNumThreads()}")

    if a.json:
        doc = {
            "goal_ms": GOAL_MS,
            "rows": rows,
            "loadavg_1min": [load_before, load_after],
            "cpus": os.cpu_count(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "repeats": a.repeats,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=2))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
