"""Training throughput of the backbones on this machine's CPU (forward + backward + Adam step).

Why: the training budget is ~45 CPU-minutes on ~11k thumbnails, so backbone, input
resolution and how much to freeze are chosen by images/second, not by FLOP tables.
Each row builds backbone + GAP + Dense(1) (MAE loss, Adam, batch 32), runs warm-up steps
(graph tracing / XLA compile excluded) and then times train_on_batch on a fixed batch.
Numbers on a shared machine are noisy; the 1-minute load average is printed per row.

    python bench/backbone_speed.py                 # the default grid (~6-8 min on 2 cores)
    python bench/backbone_speed.py --only efficientnet_lite0 --steps 10
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from boneage.backbones import build_backbone, freeze_backbone  # noqa: E402

GRID: tuple[tuple[str, int, int], ...] = (
    ("tiny", 160, 128),
    ("efficientnet_lite0", 100, 100),  # native thumbnail size, no upsampling
    ("efficientnet_lite0", 128, 128),
    ("efficientnet_lite0", 160, 128),
    ("efficientnet_lite0", 192, 160),
    ("efficientnet_lite0", 224, 224),
    ("xception", 160, 128),
    ("xception", 299, 299),
)
FREEZE: tuple[tuple[str, float], ...] = (("full", 1.0), ("last 1/3", 1 / 3))


@dataclass
class Row:
    name: str
    h: int
    w: int
    mode: str
    trainable_params: int
    total_params: int
    steps: int
    sec_per_step: float
    images_per_s: float
    load1: float


def measure(name: str, h: int, w: int, fraction: float, mode: str, batch: int, warmup: int,
            steps: int, max_seconds: float, jit: str | bool) -> Row:
    keras.utils.clear_session(free_memory=True)
    gc.collect()
    backbone = build_backbone(name, (h, w, 1), None)  # weights don't change speed
    freeze_backbone(backbone, fraction)
    x = keras.layers.GlobalAveragePooling2D()(backbone.output)
    out = keras.layers.Dense(1)(x)
    model = keras.Model(backbone.input, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae", jit_compile=jit)
    rng = np.random.default_rng(0)
    xb = rng.random((batch, h, w, 1), dtype=np.float32)
    yb = rng.random((batch, 1), dtype=np.float32) * 200
    for _ in range(warmup):
        model.train_on_batch(xb, yb)
    done, t0 = 0, time.perf_counter()
    while done < steps:
        model.train_on_batch(xb, yb)
        done += 1
        if done >= 2 and time.perf_counter() - t0 > max_seconds:
            break
    dt = (time.perf_counter() - t0) / done
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return Row(name, h, w, mode, trainable, model.count_params(), done, dt, batch / dt, os.getloadavg()[0])


def format_table(rows: list[Row], n_images: int, budget_min: float) -> str:
    head = ("| backbone | H×W | trainable | params train/total | steps | s/step | img/s "
            f"| min/epoch ({n_images // 1000}k) | epochs in {budget_min:g} min | load1 |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        epoch_min = n_images / r.images_per_s / 60
        lines.append(
            f"| {r.name} | {r.h}×{r.w} | {r.mode} | {r.trainable_params / 1e6:.2f}M/{r.total_params / 1e6:.2f}M "
            f"| {r.steps} | {r.sec_per_step:.2f} | {r.images_per_s:.1f} | {epoch_min:.1f} "
            f"| {budget_min / epoch_min:.1f} | {r.load1:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=None, help="backbone names to run (default: all)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="timed steps per row (at most)")
    p.add_argument("--max-seconds", type=float, default=25.0, help="stop timing a row after this (min 2 steps)")
    p.add_argument("--jit", choices=["auto", "on", "off"], default="auto", help="Keras jit_compile")
    p.add_argument("--images", type=int, default=11_000, help="epoch size for the min/epoch column")
    p.add_argument("--budget-min", type=float, default=45.0)
    args = p.parse_args(argv)
    jit: str | bool = {"auto": "auto", "on": True, "off": False}[args.jit]
    rows: list[Row] = []
    t_start = time.perf_counter()
    print(f"keras {keras.__version__} backend={keras.backend.backend()} cpus={os.cpu_count()} "
          f"batch={args.batch} jit={args.jit}", flush=True)
    for name, h, w in GRID:
        if args.only and name not in args.only:
            continue
        for mode, frac in FREEZE:
            row = measure(name, h, w, frac, mode, args.batch, args.warmup, args.steps, args.max_seconds, jit)
            rows.append(row)
            print(f"  {name} {h}x{w} {mode}: {row.images_per_s:.1f} img/s "
                  f"({row.sec_per_step:.2f} s/step, {row.steps} steps, load1 {row.load1:.1f})", flush=True)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s\n")
    print(format_table(rows, args.images, args.budget_min))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
