"""Train the study's Attention-Xception within a CPU budget, by caching frozen features.

Xception trains at ~3–14 images/s on 2 CPU cores, i.e. 12–50 minutes per epoch of the RSNA
thumbnails. Its entry and middle flows (≈85 % of the FLOPs) are kept frozen at their ImageNet
weights, their output is computed once per image and cached, and only the exit flow, the
attention module and the head are trained on the cache. The result is saved as the *full*
Attention-Xception (`boneage.model.build_model("xception")`), so evaluation and prediction run
it end to end like any other model. No augmentation reaches the cached features — the price
of the shortcut, stated in the model card.

    python scripts/train_attention_xception.py --data ../shared/data/rsna-bone-age/train-100px --out runs/xception
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from boneage import _quiet  # noqa: F401
import keras

from boneage import bundle
from boneage.data import build_cache, split
from boneage.metrics import summarise
from boneage.model import build_model, compile_model, load_model
from boneage.pipeline import PipelineParams
from boneage.train import predict_arrays

SPLIT_LAYER = "add_10"  # last residual add of Xception's middle flow (728 channels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--image-size", default="160x128")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--finalize-from", help="skip caching and training: load these head weights (an interrupted "
                                            "run's best_head.weights.h5) and write the full model and its metrics")
    a = ap.parse_args(argv)
    h, w = (int(v) for v in a.image_size.split("x"))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(a.seed)

    params = PipelineParams(model_height=h, model_width=w)
    prep = build_cache(a.data, params, limit=a.limit)
    lab = prep.labels.assign(row=np.arange(len(prep.labels)))[prep.labels["ok"]]
    tr, va = split(lab)
    ytr, yva = tr["boneage_months"].to_numpy(float), va["boneage_months"].to_numpy(float)
    model = build_model("xception", (h, w), weights="imagenet", mean_months=float(ytr.mean()), sd_months=float(ytr.std()))
    bb = model.get_layer("xception_backbone")
    frozen = keras.Model(bb.input, bb.get_layer(SPLIT_LAYER).output)
    exit_flow = keras.Model(bb.get_layer(SPLIT_LAYER).output, bb.output)

    # Head graph on cached features, sharing the full model's layer objects (and weights).
    f_in = keras.Input(frozen.output.shape[1:], name="features")
    m_in = keras.Input((1,), name="male")
    x = exit_flow(f_in)
    x = model.get_layer("feature_bn")(x)
    att = model.get_layer("attention_conv1")(x)
    att = model.get_layer("attention_conv2")(att)
    att = model.get_layer("attention_map")(att)
    pooled = model.get_layer("attention_pool")([x, att])
    s = model.get_layer("sex_dense")(m_in)
    z = model.get_layer("concat")([pooled, s])
    z = model.get_layer("head_dropout1")(z)
    z = model.get_layer("head_dense")(z)
    z = model.get_layer("head_dropout2")(z)
    z = model.get_layer("head_out")(z)
    months = model.get_layer("bone_age_months")(z)
    head = keras.Model({"features": f_in, "male": m_in}, months)

    if a.finalize_from:
        head.load_weights(a.finalize_from)
        return _finish(model, out, prep, va, rva=va["row"].to_numpy(), ytr=ytr, yva=yva, h=h, w=w, params=params, data=a.data,
                       extra={"feature_cache_seconds": None, "train_seconds": None,
                              "stopped_early": "training interrupted for the CPU budget; best epoch's weights used"})

    t0 = time.time()
    print(f"caching frozen Xception features ({SPLIT_LAYER}) for {len(lab)} images …", flush=True)
    feats = np.zeros((len(prep.images), *frozen.output.shape[1:]), np.float16)
    for i in range(0, len(prep.images), 64):
        x = prep.images[i : i + 64].astype("float32")[..., None] / 255.0
        feats[i : i + 64] = keras.ops.convert_to_numpy(frozen(x, training=False))
        if (i // 64) % 20 == 0:
            print(f"  {i + len(x)}/{len(prep.images)} ({time.time() - t0:.0f} s)", flush=True)
    feat_s = time.time() - t0

    def ds(rows, y, training):
        import tensorflow as tf

        d = tf.data.Dataset.from_tensor_slices(({"features": feats[rows], "male": y[1][:, None].astype("float32")},
                                                y[0][:, None].astype("float32")))
        if training:
            d = d.shuffle(len(rows), seed=a.seed)
        return d.batch(a.batch_size).prefetch(2)

    rtr, rva = tr["row"].to_numpy(), va["row"].to_numpy()
    d_tr = ds(rtr, (ytr, tr["male"].to_numpy(float)), True)
    d_va = ds(rva, (yva, va["male"].to_numpy(float)), False)
    steps = math.ceil(len(rtr) / a.batch_size)
    lr = keras.optimizers.schedules.CosineDecay(a.lr * 0.05, decay_steps=a.epochs * steps, alpha=0.02, warmup_target=a.lr,
                                                warmup_steps=steps // 2)
    compile_model(head, learning_rate=lr)
    ckpt = out / "best_head.weights.h5"
    t1 = time.time()
    head.fit(d_tr, validation_data=d_va, epochs=a.epochs, verbose=2, callbacks=[
        keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_mae", save_best_only=True, save_weights_only=True),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
        keras.callbacks.EarlyStopping(monitor="val_mae", patience=4),
    ])
    train_s = time.time() - t1
    head.load_weights(str(ckpt))
    return _finish(model, out, prep, va, rva=rva, ytr=ytr, yva=yva, h=h, w=w, params=params, data=a.data,
                   extra={"feature_cache_seconds": round(feat_s, 1), "train_seconds": round(train_s, 1)})


def _finish(model, out, prep, va, *, rva, ytr, yva, h, w, params, extra, data) -> int:
    """Save the full Attention-Xception and measure it end to end on the validation images."""
    run = bundle.Bundle(out)
    model.save(run.model_file)
    full = load_model(run.model_file)
    pred = predict_arrays(full, prep.images[rva], va["male"].to_numpy(float), batch_size=32)  # end to end
    vp = va[["id", "boneage_months", "male"]].copy()
    vp["predicted_months"] = pred
    vp.to_csv(out / "val_predictions.csv", index=False)
    m = summarise(vp)
    hist = out / "history.csv"
    epochs = len(hist.read_text().strip().splitlines()) - 1 if hist.exists() else None
    m.update({"trivial_baseline_mae": float(np.mean(np.abs(yva - ytr.mean()))), "epochs_run": epochs,
              "n_train": int(len(ytr)), "n_val": int(len(rva)), **extra,
              "method": f"Xception entry+middle flow frozen (ImageNet), features cached at {SPLIT_LAYER}; exit flow, "
                        "attention and head trained; no augmentation"})
    (out / "metrics.json").write_text(json.dumps(m, indent=2))
    bundle.write_meta(run, bundle.new_meta(
        model_version=f"attention-xception-{h}x{w}-{time.strftime('%Y%m%d')}", backbone="xception", image_height=h,
        image_width=w, pipeline=params, label_mean_months=float(ytr.mean()), label_sd_months=float(ytr.std()),
        val_residual_sd_months=float(np.std(pred - yva)), val_mae_months=m["mae"], trained_on=str(data)))
    print(f"done: Attention-Xception validation MAE {m['mae']:.2f} months (end to end); wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
