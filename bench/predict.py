"""Benchmark: end-to-end prediction latency, batch throughput and training speed.

Each figure is printed beside a bare ``keras.applications.Xception`` 299×299 forward pass
(random weights; the cost does not depend on them) timed in the same run, so results from a
busy or a quiet machine can be compared. Goal: warm end-to-end latency ≤ 0.5× that pass.

    .venv/bin/python bench/predict.py [--model models] [--rounds 7] [--json bench/predict.json]
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

import cv2
import numpy as np

from boneage import _quiet  # noqa: F401
import keras

REPO = Path(__file__).resolve().parent.parent
HIRES = REPO / "tests" / "fixtures" / "hires"


def _median_ms(fn, n: int, warm: int = 2) -> float:
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def xception_forward():
    """Bare Xception-299 forward pass, batch 1, through a cached tf.function (its best case): the
    call to time."""
    m = keras.applications.Xception(weights=None, include_top=True)
    x = np.random.default_rng(0).random((1, 299, 299, 3), dtype=np.float32)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        f = tf.function(lambda v: m(v, training=False))
    else:
        f = lambda v: m(v, training=False)  # noqa: E731
    return lambda: np.asarray(f(x))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: shipped model)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1,
                    help="pairs of (Xception pass, end-to-end prediction) medians, in alternating order; the "
                         "ratio reported is the median of the rounds' ratios (the machine's speed drifts "
                         "between runs by more than the goal's margin)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from boneage.model import build_model, compile_model
    from boneage.predict import Predictor

    pred = Predictor.load(a.model)
    n_tta = pred.tta  # the bundle's count (boneage.bundle.TTASpec), what a plain predict() reads
    tmp = Path(tempfile.mkdtemp())
    # Full-size inputs: the hires samples upscaled to 2000×2500 and written as PNG (real decode cost).
    files = []
    for p in sorted(HIRES.glob("*.png"))[:4]:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(img, (2000, 2500), interpolation=cv2.INTER_CUBIC)
        f = tmp / f"{p.stem}_2000x2500.png"
        cv2.imwrite(str(f), big)
        files.append(f)

    res: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "model_version": pred.model_version,
                 "load_avg_1min": round(os.getloadavg()[0], 2)}
    it = iter(range(10**9))

    def one(tta):
        f = files[next(it) % len(files)]
        pred.predict(f, sex="F", tta=tta)

    # Each round times both back to back, the order alternating, so a drift in the machine's speed
    # does not always land on the same side of the ratio.
    xs, es = [], []
    timed = [(xs, xception_forward()), (es, lambda: one(None))]
    for r in range(max(1, a.rounds)):
        for out, fn in timed if r % 2 == 0 else timed[::-1]:
            out.append(_median_ms(fn, a.repeats))
    ratios = [e / x for e, x in zip(es, xs)]
    res["xception299_forward_ms"] = round(statistics.median(xs), 1)
    res["end_to_end_ms_tta%d" % n_tta] = round(statistics.median(es), 1)
    if len(ratios) > 1:
        res["rounds"] = len(ratios)
        res["end_to_end_over_xception_by_round"] = [round(q, 3) for q in ratios]
    res["end_to_end_ms_no_tta"] = round(_median_ms(lambda: one(1), a.repeats), 1)

    # The parts: model with TTA on a prepared input, versus loading + pipeline.
    h, w = pred.params.model_height, pred.params.model_width
    from boneage.augment import tta_batch

    prepared = np.random.default_rng(2).random((h, w), dtype=np.float32)
    def model_ms(p, k):
        return round(_median_ms(lambda: p._run(tta_batch(prepared, k), 0.0), a.repeats), 1)

    counts = sorted({n_tta, 8})  # the bundle's count, and 8 for comparison across bundles (once when equal)
    res["runtime"] = pred.runtime  # boneage.runtime: LiteRT unless it is unavailable or disagrees
    for k in counts:
        res["model_only_ms_tta%d" % k] = model_ms(pred, k)
    # The same batches on the TensorFlow path (the runtime's fallback), back to back.
    from boneage import runtime

    os.environ[runtime.ENV] = "keras"
    try:
        tf_pred = Predictor.load(a.model)
    finally:
        os.environ.pop(runtime.ENV)
    for k in counts:
        res["model_only_on_tensorflow_ms_tta%d" % k] = model_ms(tf_pred, k)
    del tf_pred

    # Batch throughput: model inputs already prepared, batches of 64, no TTA.
    xb = {"image": np.random.default_rng(1).random((64, h, w, 1), dtype=np.float32), "male": np.ones((64, 1), np.float32)}
    ms = _median_ms(lambda: np.asarray(pred._fn(xb)[0]), max(3, a.repeats // 2))
    res["batch64_model_images_per_s"] = round(64 / (ms / 1000), 1)

    # Training speed of the shipped recipe (backbone, input size, trainable share), batch 32.
    from boneage.train import TrainConfig

    prov = pred.meta.provenance  # boneage.bundle.BundleMeta; older bundles fall back to the training defaults
    tm = compile_model(build_model(prov.backbone or TrainConfig.backbone, (h, w), weights=None,
                                   trainable_fraction=TrainConfig.trainable_fraction if prov.trainable_fraction is None
                                   else prov.trainable_fraction))
    xt = {"image": xb["image"][:32], "male": xb["male"][:32]}
    yt = np.full((32, 1), 120.0, np.float32)
    ms = _median_ms(lambda: tm.train_on_batch(xt, yt), max(3, a.repeats // 2))
    res["train_images_per_s"] = round(32 / (ms / 1000), 1)
    res["end_to_end_over_xception"] = round(statistics.median(ratios), 3)
    res["model_only_over_xception"] = round(res["model_only_ms_tta%d" % n_tta] / res["xception299_forward_ms"], 3)

    w_ = max(len(k) for k in res)
    print("boneage prediction benchmark")
    for k, v in res.items():
        print(f"  {k:<{w_}}  {v}")
    goal = res["end_to_end_over_xception"] <= 0.5
    extra = f"; {sum(q <= 0.5 for q in ratios)} of {len(ratios)} rounds ≤ 0.5×" if len(ratios) > 1 else ""
    print(f"goal end-to-end ≤ 0.5× Xception-299 forward: {'met' if goal else 'NOT met'} "
          f"({res['end_to_end_over_xception']}×{' median of the rounds' if len(ratios) > 1 else ''}{extra})")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
