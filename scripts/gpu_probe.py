"""Where a training step's time goes on the lent GPU machine (issue #9): one short, time-boxed probe.

Why: the first GPU run (2026-11-29, four `boneage train` processes at once under KERAS_BACKEND=torch)
took 1.2 s per 64-image step, no faster than this 2-core CPU. Before another run, this separates:
the machine's per-kernel launch cost, a plain PyTorch EfficientNet-Lite0 step (timm), Keras' eager
train step with and without EMA, the augmenter alone, a larger batch, and torch.compile. Each test
is bounded in time (``--seconds``) and reports milliseconds per call; one failing test prints its
error and the rest go on. Run there:

    run(command="scripts/train_gpu.sh probe", carry=["gpu"], timeout_s=240)

or here, as a smoke test on the CPU: ``KERAS_BACKEND=torch python scripts/gpu_probe.py --seconds 2``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "torch")


def timed(name: str, fn, seconds: float, sync, results: dict, warm: int = 2) -> None:
    try:
        for _ in range(warm):
            fn()
        sync()
        n, t0 = 0, time.perf_counter()
        while n < 3 or (time.perf_counter() - t0 < seconds and n < 200):
            fn()
            n += 1
        sync()
        ms = (time.perf_counter() - t0) / n * 1e3
        results[name] = round(ms, 2)
        print(f"{name}: {ms:.1f} ms per call ({n} calls)", flush=True)
    except Exception as e:  # a probe: report and go on
        results[name] = f"error: {type(e).__name__}: {str(e)[:200]}"
        print(f"{name}: {results[name]}", flush=True)


def fresh_model(ema: float):
    """Our network as ``boneage train`` builds and compiles it (random weights, no download)."""
    from boneage.model import build_model, compile_model

    model = build_model("efficientnet_lite0", (160, 128), weights=None, trainable_fraction=1.0, mean_months=120, sd_months=40)
    compile_model(model, learning_rate=1e-4, ema_momentum=ema)
    return model


def random_batch(rng, n: int):
    """(inputs, months) for ``n`` images, shaped as the model reads them."""
    import numpy as np

    return ({"image": rng.random((n, 160, 128, 1), dtype=np.float32), "male": rng.integers(0, 2, (n, 1)).astype("float32")},
            rng.random((n, 1), dtype=np.float32) * 200)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="time per test")
    ap.add_argument("--out", default=None, help="write the results here as JSON")
    ap.add_argument("--batch", type=int, default=64, help="batch size (the large-batch tests use 4×)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow on a 2-core CPU)")
    ap.add_argument("--quick", action="store_true",
                    help="only Keras' train step at --batch, 4× and 8× (EMA on, as trained) and the batch to train "
                         "with, as `best_batch` (scripts/train_gpu.sh run with BATCH=auto)")
    a = ap.parse_args()

    import torch

    import keras

    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    from keras.src.backend.torch.core import get_device

    res: dict = {"torch": torch.__version__, "keras": keras.__version__, "cuda": cuda,
                 "keras_device": str(get_device()), "threads": torch.get_num_threads()}
    print(json.dumps(res), flush=True)

    if a.quick:
        quick(a, res, sync)
    else:
        full(a, res, sync, dev, cuda)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2))
    return 0


def full(a, res: dict, sync, dev: str, cuda: bool) -> None:
    """Every test, in the order that separates the machine, plain PyTorch and our Keras path."""
    import numpy as np
    import torch

    # 1. The machine: one tiny kernel, launched many times.
    x = torch.ones(16, device=dev)
    timed("tiny kernel launch", lambda: x.add_(1), a.seconds / 2, sync, res)

    # 2. Plain PyTorch: timm's EfficientNet-Lite0 (random weights), a 64-image step.
    try:
        import timm

        net = timm.create_model("efficientnet_lite0", num_classes=1, in_chans=1).to(dev)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        B = a.batch
        xb = torch.rand(B, 1, 160, 128, device=dev)
        yb = torch.rand(B, 1, device=dev)

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = (net(xb) - yb).abs().mean()
            loss.backward()
            opt.step()

        timed(f"timm lite0 step, batch {B}, eager", torch_step, a.seconds, sync, res)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=cuda):
            timed(f"timm lite0 step, batch {B}, bf16 autocast", torch_step, a.seconds, sync, res)
        xb = torch.rand(4 * B, 1, 160, 128, device=dev)
        yb = torch.rand(4 * B, 1, device=dev)
        timed(f"timm lite0 step, batch {4 * B}, eager", torch_step, a.seconds, sync, res)
    except Exception as e:
        res["timm"] = f"error: {type(e).__name__}: {str(e)[:200]}"
        print(res["timm"], flush=True)

    # 3. Our Keras model and train step, as boneage.train builds them.
    from boneage.augment import augmenter

    rng = np.random.default_rng(0)

    for ema in (0.998, 0.0):
        model = fresh_model(ema)
        xk, yk = random_batch(rng, a.batch)
        timed(f"keras train_on_batch {a.batch}, ema {ema}", lambda: model.train_on_batch(xk, yk), a.seconds, sync, res)
    xk, yk = random_batch(rng, 4 * a.batch)
    timed(f"keras train_on_batch {4 * a.batch}, ema 0.0", lambda: model.train_on_batch(xk, yk), a.seconds, sync, res)
    xk, _ = random_batch(rng, a.batch)
    timed(f"keras forward {a.batch}, no grad", lambda: model(xk, training=False), a.seconds / 2, sync, res)
    aug = augmenter(0, strength=1.0)
    img = xk["image"]
    timed(f"augmenter {a.batch} (from numpy)", lambda: aug(img, training=True), a.seconds / 2, sync, res)

    out = aug(img, training=True)
    res["augmenter output device"] = str(getattr(out, "device", "numpy"))
    import threading

    box = {}
    t = threading.Thread(target=lambda: box.setdefault("d", str(getattr(aug(img, training=True), "device", "numpy"))))
    t.start(); t.join()
    res["augmenter output device, other thread"] = box.get("d")
    print({k: res[k] for k in res if k.startswith("augmenter output")}, flush=True)

    # The real path: model.fit over boneage.train.ArrayBatches (augmenting, loss weights), EMA on.
    from boneage.train import ArrayBatches

    n = a.batch * 12
    ds = ArrayBatches(rng.integers(0, 255, (n, 160, 128), dtype=np.uint8), rng.integers(0, 2, n).astype(float),
                      rng.random(n) * 200, batch_size=a.batch, training=True, seed=0, augment_strength=1.0,
                      weights=np.ones(n, "float32"))
    model = fresh_model(0.998)
    timed("keras fit, one epoch of 12 steps (ArrayBatches, ema)", lambda: model.fit(ds, epochs=1, verbose=0), a.seconds, sync, res, warm=1)

    # 4. The same Keras graph as a torch module, compiled (Keras models are torch.nn.Modules here).
    try:
        if a.no_compile:
            raise RuntimeError("skipped (--no-compile)")
        model = fresh_model(0.0)
        model.jit_compile = True
        model.make_train_function(force=True)
        xk, yk = random_batch(rng, a.batch)
        timed(f"keras train_on_batch {a.batch}, jit_compile (torch.compile)", lambda: model.train_on_batch(xk, yk), a.seconds, sync, res, warm=3)
    except Exception as e:
        res["jit"] = f"error: {type(e).__name__}: {str(e)[:200]}"
        print(res["jit"], flush=True)


def quick(a, res: dict, sync) -> None:
    """Keras' train step at --batch, 4× and 8× (EMA on, as trained); ``best_batch`` climbs to the
    next size only where it reads at least 1.5× the images per second of the size chosen so far
    (a larger batch also means fewer updates per epoch). Where each step's cost is its kernel
    launches (one suspect for the first GPU run's 1.2 s steps), images per second grow almost
    with the batch, and 8× is taken."""
    import numpy as np

    rng = np.random.default_rng(0)
    speed = {}
    for b in (a.batch, 4 * a.batch, 8 * a.batch):
        model = fresh_model(0.998)
        x, y = random_batch(rng, b)
        name = f"keras train_on_batch {b}, ema 0.998"
        timed(name, lambda: model.train_on_batch(x, y), a.seconds, sync, res)
        if isinstance(res[name], float):
            speed[b] = b / res[name] * 1e3
    res["images_per_second"] = {str(k): round(v, 1) for k, v in speed.items()}
    res["best_batch"] = best_batch(speed, a.batch)
    print(json.dumps({k: res[k] for k in ("images_per_second", "best_batch")}), flush=True)


def best_batch(speed: dict[int, float], smallest: int, gain: float = 1.5) -> int:
    """The largest batch reached by steps that each gain ≥ ``gain``× images per second."""
    best = smallest
    for b in sorted(speed):
        if b > best and speed[b] >= gain * speed.get(best, float("inf")):
            best = b
    return best


if __name__ == "__main__":
    sys.exit(main())
