"""Add an int8 graph of one of a bundle's networks to the bundle (section ``int8`` of meta.json).

Why, and what it costs and gains, is in :mod:`boneage.runtime`. Steps:

1. Calibration radiographs: ``--images`` training ids (never validation ids, :func:`boneage.data.is_validation`),
   drawn with a fixed seed from the RSNA labels, read through the bundle's own prediction path
   (loader → pipeline → TTA copies), and of each image only the copies this network reads in the
   shared-copy ensemble (copy *i* goes to network *i* mod *m*, :class:`boneage.bundle.EnsembleSpec`).
2. The int8 graph (:func:`boneage.runtime.quantize_int8`): full-integer kernels, the layers of
   ``INT8_FLOAT_LAYERS`` kept float.
3. Written into the bundle with the sha256 of the weights it was made from, so it is used for
   those weights only; then the bundle is loaded again and the graph must pass its probe check.

    python scripts/quantize_member.py --bundle models --network member-1.keras --images 200

Measure it after: ``boneage evaluate`` on the validation ids (int8 is the default runtime where the
bundle holds a graph; ``BONEAGE_RUNTIME=litert-float`` reads the float graphs for comparison).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from boneage import bundle, data, runtime  # noqa: E402
from boneage.model import with_explanation_outputs  # noqa: E402
from boneage.paths import shared_data_dir  # noqa: E402
from boneage.predict import Predictor  # noqa: E402


def calibration_samples(pred: Predictor, data_dir: Path, network: int, n_images: int, seed: int = 20261205):
    """One-row input dicts: the TTA copies network ``network`` reads, of ``n_images`` training radiographs."""
    labels = data.read_labels(data_dir)
    train = labels[~labels["id"].map(data.is_validation)].sample(frac=1.0, random_state=seed)
    folder = data.image_dir(data_dir)
    out, skipped = [], 0
    for row in train.itertuples():
        if len(out) >= n_images:
            break
        f = data.find_image(folder, row.id)
        if f is None:
            continue
        try:
            batch = pred.prepare(f).batch
        except Exception:  # noqa: BLE001 - an image the pipeline refuses is simply not a calibration sample
            skipped += 1
            continue
        male = np.full((1, 1), float(row.male), np.float32)
        copies = [k for k in range(len(batch)) if k % pred.networks == network]
        out.append([{"image": batch[k : k + 1].astype(np.float32), "male": male} for k in copies])
    if len(out) < n_images:
        raise SystemExit(f"only {len(out)} calibration images could be read from {data_dir} ({skipped} refused)")
    return [x for per_image in out for x in per_image]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="models")
    ap.add_argument("--network", default="member-1.keras", help="model.keras or an ensemble member's file")
    ap.add_argument("--images", type=int, default=200, help="training radiographs to calibrate on")
    ap.add_argument("--float-layers", default="",
                    help="more layer-name substrings to keep float, comma-separated (beside runtime.INT8_FLOAT_LAYERS)")
    ap.add_argument("--data", default=None, help="RSNA folder with labels.csv (default: ../shared/data/rsna-bone-age)")
    a = ap.parse_args(argv)

    b = bundle.resolve(a.bundle)
    meta = bundle.read_meta(b)
    spec = bundle.EnsembleSpec.from_meta(meta)
    names = [bundle.MODEL_FILE, *(spec.members if spec else ())]
    if a.network not in names:
        raise SystemExit(f"{a.network}: not a network of {b.dir} ({', '.join(names)})")
    k = names.index(a.network)
    pred = Predictor.load(b.dir)
    model, _, _ = bundle.load(b.dir)
    net = model if k == 0 else bundle.load_members(b, meta)[k - 1]

    t0 = time.time()
    data_dir = Path(a.data) if a.data else shared_data_dir() / "train-100px"
    samples = calibration_samples(pred, data_dir, k, a.images)
    print(f"{len(samples)} calibration inputs ({a.images} images) in {time.time() - t0:.0f} s", flush=True)
    t0 = time.time()
    wrapped = with_explanation_outputs(net)
    extra = tuple(x for x in a.float_layers.split(",") if x)
    graph = runtime.quantize_int8(wrapped, lambda: iter(samples), runtime.INT8_FLOAT_LAYERS + extra)
    print(f"int8 graph {len(graph) / 1e6:.1f} MB in {time.time() - t0:.0f} s", flush=True)
    why = ("int8 graphs of the networks listed, calibrated on training radiographs by scripts/quantize_member.py "
           "and used only for the weights they were made from; boneage.runtime says what they cost and gain")
    meta = bundle.add_int8(b, meta, a.network, graph, runtime.weights_sha256(wrapped), why)
    bundle.write_meta(b, meta)
    check = Predictor.load(b.dir)
    used = [engine for engine, _ in check.engines]
    print(f"{b.dir}: networks run on {', '.join(used)}")
    if used[k] != "litert-int8":
        raise SystemExit(f"the int8 graph is written but not used: {check.engines[k][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
