"""Time and peak memory of the loader on hostile-but-small inputs (not a test: numbers depend on the machine).

Each input (see :mod:`boneage.hostile`) is generated once into a temp folder, then loaded by
:func:`boneage.io.load_image` in a fresh interpreter, ``--repeats`` times; the table shows the
median wall and CPU time of the load and its peak resident memory above the interpreter after imports
(VmHWM after resetting it, see ``boneage.hostile.PEAK_PROBE``; the worst of the repeats). Goal (issue #14): every input either refused
cheaply or loaded in a few seconds and under ~1 GB. The 1-minute load average is printed: other
work on the machine makes the times pessimistic.

    python bench/hostile.py                 # table
    python bench/hostile.py --json out.json # table + figures as JSON
    python bench/hostile.py --only tiff_200k_pages
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from boneage import hostile  # noqa: E402



def measure(path: Path, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-c", hostile.PEAK_PROBE, str(path)], capture_output=True, text=True, timeout=600,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if r.returncode != 0:
            return {"result": f"child failed: {r.stderr.strip().splitlines()[-1:]}", "seconds": None, "cpu_seconds": None,
                    "peak_mb": None}
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {"result": runs[0]["result"], "seconds": statistics.median(x["seconds"] for x in runs),
            "cpu_seconds": statistics.median(x["cpu_seconds"] for x in runs),
            "peak_mb": max(x["peak_mb"] for x in runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", choices=sorted(hostile.GENERATORS))
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (gen, what) in hostile.GENERATORS.items():
            if a.only and name not in a.only:
                continue
            path = gen(Path(tmp) / name)
            size_mb = path.stat().st_size / 1e6
            m = measure(path, a.repeats)
            rows[name] = {"input": what, "file_mb": round(size_mb, 2), **m}
            secs = "—" if m["seconds"] is None else f"{m['seconds']:.2f} s wall, {m['cpu_seconds']:.2f} s CPU"
            peak = "—" if m["peak_mb"] is None else f"{m['peak_mb']:.0f}"
            print(f"{name:30s} {size_mb:7.1f} MB file  {secs:>26s}  {peak:>5s} MB peak  {m['result'][:90]}", flush=True)
            path.unlink()
    if a.json:
        Path(a.json).write_text(json.dumps({"loadavg_1min": os.getloadavg()[0], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
