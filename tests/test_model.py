"""Model, augmentation and training: builds, learns, saves, distributes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boneage import _quiet  # noqa: F401
import keras

from boneage.augment import augmenter, tta_batch
from boneage.model import build_model, compile_model, load_model, with_attention_output

REPO = Path(__file__).resolve().parent.parent
THUMBS = REPO / "tests" / "fixtures" / "thumbs"


def _batch(n=8, size=(96, 80), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *size, 1), dtype=np.float32)
    male = (rng.random((n, 1)) > 0.5).astype("float32")
    y = rng.uniform(10, 220, (n, 1)).astype("float32")
    return {"image": x, "male": male}, y


def test_model_outputs_months_and_attention():
    m = build_model("tiny", (96, 80), weights=None)
    x, _ = _batch(4)
    out = np.asarray(m(x, training=False))
    assert out.shape == (4, 1) and np.isfinite(out).all()
    months, att = with_attention_output(m)(x, training=False)
    att = np.asarray(att)
    assert att.shape[0] == 4 and att.shape[-1] == 1
    assert (att >= 0).all() and (att <= 1).all()  # sigmoid attention map


def test_sex_input_changes_prediction_path():
    m = build_model("tiny", (96, 80), weights=None)
    x, _ = _batch(2)
    a = np.asarray(m({"image": x["image"], "male": np.zeros((2, 1), "float32")}))
    b = np.asarray(m({"image": x["image"], "male": np.ones((2, 1), "float32")}))
    assert not np.allclose(a, b)


def test_overfits_a_tiny_batch():
    """Eight images whose content encodes the target (a bright square that grows with age):
    a model that can learn anything must get them nearly right."""
    keras.utils.set_random_seed(1)
    m = compile_model(build_model("tiny", (96, 80), weights=None, dropout=0.0), learning_rate=3e-3)
    rng = np.random.default_rng(0)
    y = np.linspace(12, 216, 8, dtype="float32")[:, None]
    img = rng.random((8, 96, 80, 1), dtype=np.float32) * 0.1
    for i, v in enumerate(y[:, 0]):
        s = int(8 + v / 216 * 60)
        img[i, 10 : 10 + s, 10 : 10 + min(s, 60)] += 0.8
    x = {"image": np.clip(img, 0, 1), "male": (np.arange(8) % 2).astype("float32")[:, None]}
    hist = m.fit(x, y, epochs=200, batch_size=8, verbose=0).history["loss"]
    assert hist[-1] < 0.25 * hist[0], (hist[0], hist[-1])
    assert min(hist[-20:]) < 10.0, hist[-20:]
    # In inference mode BatchNorm uses its moving statistics, which lag after 200 steps; the
    # ordering of the eight ages must be right all the same.
    pred = np.asarray(m(x, training=False)).ravel()
    assert np.corrcoef(np.argsort(np.argsort(pred)), np.arange(8))[0, 1] > 0.9, pred


def test_keras_save_load_identical(tmp_path):
    m = build_model("tiny", (96, 80), weights=None)
    x, _ = _batch(3)
    path = tmp_path / "m.keras"
    m.save(path)
    m2 = load_model(path)
    np.testing.assert_allclose(np.asarray(m(x)), np.asarray(m2(x)), rtol=0, atol=1e-5)


def test_augmenter_is_seeded_and_stays_in_range(tmp_path):
    import cv2

    from boneage.io import load_image
    from boneage.pipeline import run_pipeline

    img = run_pipeline(load_image(REPO / "tests/fixtures/hires/1437.png").pixels).model_input
    x = np.repeat(img[None, ..., None], 6, axis=0)
    a = keras.ops.convert_to_numpy(augmenter(seed=3)(x, training=True))
    b = keras.ops.convert_to_numpy(augmenter(seed=3)(x, training=True))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.min() >= 0 and a.max() <= 1
    assert all(np.abs(a[i] - x[i]).mean() > 0.005 for i in range(6))  # each copy really changed
    c = keras.ops.convert_to_numpy(augmenter(seed=3)(x, training=False))
    np.testing.assert_allclose(c, x, atol=1e-6)  # inference: identity
    grid = np.hstack([img] + [a[i, ..., 0] for i in range(6)])
    out = tmp_path / "augment_examples.png"
    cv2.imwrite(str(out), (grid * 255).astype(np.uint8))
    assert out.stat().st_size > 1000


def test_augment_strength_scales_the_change():
    x = np.repeat(np.linspace(0.1, 0.9, 64 * 48, dtype=np.float32).reshape(1, 64, 48, 1), 8, axis=0)
    change = {s: float(np.abs(keras.ops.convert_to_numpy(augmenter(seed=5, flip=False, strength=s)(x, training=True)) - x).mean())
              for s in (0.0, 0.3, 1.0)}
    assert change[0.0] < 1e-6  # nothing left to vary
    assert 0 < change[0.3] < change[1.0]
    with pytest.raises(ValueError, match="strength"):
        augmenter(strength=-1)


def test_tta_batch_keeps_the_original_first():
    img = np.random.default_rng(0).random((64, 48), dtype=np.float32)
    b = tta_batch(img, n=5)
    assert b.shape == (5, 64, 48, 1)
    np.testing.assert_allclose(b[0, ..., 0], img)
    np.testing.assert_allclose(b[1, ..., 0], img[:, ::-1])  # the flip
    assert all(np.abs(b[i, ..., 0] - img).mean() > 1e-3 for i in range(1, 5))
    np.testing.assert_array_equal(tta_batch(img, n=8), tta_batch(img, n=8))  # fixed, not random
    assert tta_batch(img, n=1).shape == (1, 64, 48, 1)
    assert tta_batch(img, n=50).shape[0] == 8
    from boneage.tta import tta_copy

    full = tta_batch(img, n=8)
    for k in range(8):  # one copy alone is the same array as in the batch
        np.testing.assert_array_equal(tta_copy(img, k), full[k, ..., 0])


def _run_cli(*args, env=None, timeout=600):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "boneage.cli", *args], capture_output=True, text=True, timeout=timeout, env=e, cwd=REPO)


@pytest.mark.slow
def test_train_one_epoch_smoke_on_64_images(tmp_path):
    out = tmp_path / "run"
    r = _run_cli("train", "--data", str(THUMBS), "--out", str(out), "--backbone", "tiny", "--no-pretrained",
                 "--epochs", "1", "--batch-size", "16", "--image-size", "96x80", "--val-fraction", "0.25", "--workers", "1",
                 "--augment-strength", "0.5", env={"BONEAGE_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["augment_strength"] == 0.5
    for f in ("model.keras", "meta.json", "metrics.json", "history.csv", "val_predictions.csv", "config.json"):
        assert (out / f).is_file(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] == 64
    assert np.isfinite(metrics["mae"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["pipeline"]["model_height"] == 96 and meta["pipeline"]["model_width"] == 80
    from boneage.pipeline import PIPELINE_VERSION

    assert meta["pipeline_version"] == PIPELINE_VERSION  # which preprocessing the weights were trained on
    assert "Traceback" not in r.stderr and "I0000" not in r.stderr


@pytest.mark.slow
def test_ema_weights_are_the_ones_validated_and_shipped(tmp_path):
    """With --ema the best checkpoint holds the averaged weights that validation scored."""
    import pandas as pd

    from boneage.train import TrainConfig, train

    out = tmp_path / "run"
    m = train(TrainConfig(data=str(THUMBS), out=str(out), backbone="tiny", pretrained=False, epochs=2, batch_size=8,
                          image_height=96, image_width=80, val_fraction=0.25, limit=48, workers=1, ema_momentum=0.9,
                          cache_dir=str(tmp_path / "cache")), log=lambda *_: None)
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 2
    assert m["mae"] == pytest.approx(hist["val_mae"].min(), abs=0.05)  # shipped == best validated (EMA) weights
    assert json.loads((out / "config.json").read_text())["ema_momentum"] == 0.9


def test_train_cli_refuses_negative_augmentation(tmp_path):
    r = _run_cli("train", "--data", str(THUMBS), "--out", str(tmp_path / "run"), "--augment-strength", "-1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "boneage: error: augment_strength (--augment-strength) must be a finite number ≥ 0.0 and ≤ 10.0, got -1"]
    assert not (tmp_path / "run").exists()
    r = _run_cli("train", "--data", str(THUMBS), "--out", str(tmp_path / "run"), "--ema", "1.5")
    assert r.returncode == 2 and "(--ema) must be a finite number ≥ 0.0 and < 1.0, got 1.5" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from boneage.train import TrainConfig, train, get_strategy
s = get_strategy("mirrored")
assert s.num_replicas_in_sync == 2, s.num_replicas_in_sync
m = train(TrainConfig(data={str(THUMBS)!r}, out={str(tmp_path / 'run')!r}, backbone="tiny", pretrained=False, epochs=1,
          batch_size=16, image_height=96, image_width=80, val_fraction=0.25, strategy="mirrored", limit=48, workers=1,
          cache_dir={str(tmp_path / 'cache')!r}))
print("REPLICAS", s.num_replicas_in_sync, "MAE", m["mae"])
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "REPLICAS 2" in r.stdout


def test_multiworker_needs_tf_config():
    from boneage.train import TrainError, get_strategy

    env = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(TrainError, match="TF_CONFIG"):
            get_strategy("multiworker")
    finally:
        if env is not None:
            os.environ["TF_CONFIG"] = env


@pytest.mark.slow
def test_interrupted_training_resumes(tmp_path):
    """Ctrl-C after an epoch leaves a backup; --resume continues from the next epoch."""
    from boneage.train import TrainConfig, train

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    import boneage.train as T

    cfg = dict(data=str(THUMBS), out=str(tmp_path / "run"), backbone="tiny", pretrained=False, epochs=2, batch_size=16,
               image_height=96, image_width=80, val_fraction=0.25, workers=1, cache_dir=str(tmp_path / "cache"))
    orig = T.EpochReport
    T.EpochReport = lambda total, log, max_minutes=None, schedule=None: Stop()  # the last callback: runs after the backup is written
    try:
        with pytest.raises(KeyboardInterrupt):  # the CLI turns it into exit status 130
            train(TrainConfig(**cfg), log=lambda *a: None)
    finally:
        T.EpochReport = orig
    assert (tmp_path / "run" / "backup").is_dir()
    m = train(TrainConfig(**cfg, resume=True), log=lambda *a: None)
    hist = (tmp_path / "run" / "history.csv").read_text().strip().splitlines()
    assert [line.split(",")[0] for line in hist[1:]] == ["0", "1"]  # epoch 0 from the first run, epoch 1 resumed
    assert m["epochs_run"] == 2


@pytest.mark.slow
def test_init_from_warm_starts_and_refuses_other_architectures(tmp_path):
    from boneage.train import TrainConfig, TrainError, train

    base = dict(data=str(THUMBS), backbone="tiny", pretrained=False, epochs=1, batch_size=16, image_height=96,
                image_width=80, val_fraction=0.25, workers=1, cache_dir=str(tmp_path / "cache"))
    train(TrainConfig(**base, out=str(tmp_path / "a")), log=lambda *a: None)
    logs: list[str] = []
    train(TrainConfig(**base, out=str(tmp_path / "b"), init_from=str(tmp_path / "a"), trainable_fraction=0.5), log=logs.append)
    assert any("initialised from" in line for line in logs)
    a, b = (load_model(tmp_path / r / "model.keras").get_layer("bone_age_months") for r in ("a", "b"))
    train(TrainConfig(**{**base, "limit": 24}, out=str(tmp_path / "few"), init_from=str(tmp_path / "a")), log=logs.append)
    few = load_model(tmp_path / "few" / "model.keras").get_layer("bone_age_months")
    # the output scaling is the source's, not the new data's (24 other ids: another label mean)
    assert (float(b.offset), float(b.scale)) == (float(a.offset), float(a.scale)) == (float(few.offset), float(few.scale))
    other = {**base, "image_height": 96, "image_width": 80}
    with pytest.raises(TrainError, match="do not fit"):
        train(TrainConfig(**{**other, "backbone": "efficientnet_lite0"}, out=str(tmp_path / "c"),
                          init_from=str(tmp_path / "a")), log=lambda *a: None)


def test_a_warm_start_keras_only_warns_about_is_refused(tmp_path):
    """Keras may skip parts of a network it cannot match with a warning and no error ("Affected
    layers will retain their freshly-initialized weights"): --init-from refuses that as it refuses
    a load that raises, instead of training from a half-random start."""
    import warnings

    from boneage.model import build_model
    from boneage.train import TrainError, _init_weights

    model = build_model("tiny", (96, 80), weights=None)
    src = tmp_path / "w.weights.h5"
    model.save_weights(str(src))

    class Partial:  # the model, whose load only warns
        def load_weights(self, path):
            warnings.warn("Skipping nested container at 'layers/functional/container_3': no matching group found "
                          "in the saved file. Affected layers will retain their freshly-initialized weights.")

    logs: list[str] = []
    with pytest.raises(TrainError, match="1 nested parts"):
        _init_weights(Partial(), src, logs.append)
    _init_weights(model, src, logs.append)  # the same file into its own architecture: fine, nothing said
    assert logs == [f"  initialised from {src}"]


def test_source_scaling_is_read_from_the_archive_without_loading_the_model(tmp_path):
    """The warm-start output scaling comes from the .keras archive's config: the same numbers a
    loaded model holds, for a run folder, a member file and a nested (resized-input) network."""
    from boneage.train import _source_scaling

    models = REPO / "models"
    for src in (models, models / "member-1.keras"):
        f = src / "model.keras" if src.is_dir() else src
        layer = load_model(f).get_layer("bone_age_months")
        assert _source_scaling(src, lambda *a: None) == (float(layer.offset), float(layer.scale))
    logs: list[str] = []
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip")
    assert _source_scaling(bad, logs.append) is None
    assert _source_scaling(tmp_path / "w.weights.h5", logs.append) is None
    assert len(logs) == 2 and "not readable" in logs[0] and "no .keras file" in logs[1]


def test_an_age_range_specialist_trains_and_validates_only_inside_its_range(tmp_path):
    """--age-range: both sides of the (unchanged) id split keep only the true ages in [lo, hi), so
    the validation figures and val_predictions.csv describe the range the specialist is for."""
    from boneage.train import TrainConfig, train

    logs: list[str] = []
    m = train(TrainConfig(data=str(THUMBS), out=str(tmp_path / "young"), backbone="tiny", pretrained=False, epochs=1,
                          batch_size=8, image_height=96, image_width=80, val_fraction=0.3, workers=1,
                          cache_dir=str(tmp_path / "cache"), age_range=(0, 130)), log=logs.append)
    vp = pd.read_csv(tmp_path / "young" / "val_predictions.csv")
    assert len(vp) and vp["boneage_months"].between(0, 129.999).all() and np.isfinite(m["mae"])
    assert any("bone age 0–130 months only" in line for line in logs)
    cfg = json.loads((tmp_path / "young" / "config.json").read_text())
    assert cfg["age_range"] == [0.0, 130.0]
    everyone = pd.read_csv(THUMBS / "labels.csv")
    assert (everyone["boneage_months"] >= 130).sum() > 10  # the fixture does hold ages the range left out


def test_a_student_trains_towards_the_blend_of_label_and_teacher(tmp_path, monkeypatch):
    """--teacher: the training targets are (1 − w)·label + w·reading for the training ids only;
    validation, val_predictions.csv and the age-balance bins stay on the true labels; a teacher
    file that misses a training id, or is not a readings CSV, stops before any training."""
    import boneage.train as tr
    from boneage.train import TrainConfig, TrainError, train

    labels = pd.read_csv(THUMBS / "labels.csv", dtype={"id": str})
    csv = tmp_path / "teacher.csv"
    pd.DataFrame({"id": labels["id"], "teacher_months": labels["boneage_months"] + 24.0}).to_csv(csv, index=False)
    base = dict(data=str(THUMBS), backbone="tiny", pretrained=False, epochs=1, batch_size=16, image_height=96,
                image_width=80, val_fraction=0.3, workers=1, cache_dir=str(tmp_path / "cache"))
    seen = {}
    real = tr._datasets

    def spy(cfg, data):
        seen["y_train"], seen["y_val"], seen["ids"] = data.y_train, data.y_val, data.train_ids
        return real(cfg, data)

    real_weights = tr.age_weights
    monkeypatch.setattr(tr, "_datasets", spy)

    def binned(y, alpha, **kw):
        seen["binned"] = y
        return real_weights(y, alpha, **kw)

    monkeypatch.setattr(tr, "age_weights", binned)
    logs: list[str] = []
    m = train(TrainConfig(out=str(tmp_path / "student"), teacher=str(csv), teacher_weight=0.25, age_balance=0.5, **base),
              log=logs.append)
    truth = seen["ids"]["boneage_months"].to_numpy(float)
    assert np.allclose(seen["y_train"], truth + 0.25 * 24.0)
    assert np.array_equal(seen["binned"], truth)
    vp = pd.read_csv(tmp_path / "student" / "val_predictions.csv", dtype={"id": str})
    assert np.allclose(seen["y_val"], labels.set_index("id").loc[vp["id"], "boneage_months"].to_numpy(float))
    assert np.isfinite(m["mae"]) and any("0.75·label + 0.25·the teacher's reading" in line for line in logs)
    assert json.loads((tmp_path / "student" / "config.json").read_text())["teacher_weight"] == 0.25

    one_short = tmp_path / "short.csv"
    t = pd.read_csv(csv, dtype={"id": str})
    t[t["id"] != str(seen["ids"]["id"].iloc[0])].to_csv(one_short, index=False)
    labels_only = tmp_path / "labels-only.csv"
    labels.to_csv(labels_only, index=False)
    for bad, words in ((one_short, "no finite reading for 1 of"), (labels_only, "needs columns id and teacher_months"),
                       (tmp_path / "absent.csv", "cannot read it as CSV")):
        with pytest.raises(TrainError, match=words):
            train(TrainConfig(out=str(tmp_path / "refused"), teacher=str(bad), **base), log=lambda *a: None)


def test_a_member_trains_at_a_finer_grid_on_the_bundles_pipeline_output(tmp_path):
    """--input-size: the network reads the pipeline's (smaller) output and resizes it inside, so
    an ensemble member at 256x208 trains on exactly what the bundle will feed it (160x128), from
    the same cache, and warm-starts from a network trained natively at its grid."""
    from boneage.train import TrainConfig, train
    from boneage.checks import ParameterError

    base = dict(data=str(THUMBS), backbone="tiny", pretrained=False, epochs=1, batch_size=16, image_height=128,
                image_width=96, val_fraction=0.25, workers=1, cache_dir=str(tmp_path / "cache"))
    train(TrainConfig(**base, out=str(tmp_path / "native")), log=lambda *a: None)
    logs: list[str] = []
    m = train(TrainConfig(**base, out=str(tmp_path / "fine"), input_height=96, input_width=80,
                          init_from=str(tmp_path / "native")), log=logs.append)
    assert np.isfinite(m["mae"])
    assert any("initialised from" in line for line in logs)
    assert any("model input 96×80, resized to 128×96 inside the network" in line for line in logs)
    meta = json.loads((tmp_path / "fine" / "meta.json").read_text())
    assert (meta["pipeline"]["model_height"], meta["pipeline"]["model_width"]) == (96, 80)
    net = load_model(tmp_path / "fine" / "model.keras")
    image = next(t for t in keras.tree.flatten(net.inputs) if len(t.shape) == 4)
    assert tuple(image.shape[1:3]) == (96, 80)
    assert net.get_layer("input_resize") is not None
    with pytest.raises(ParameterError, match="go together"):
        TrainConfig(**base, out=str(tmp_path / "x"), input_height=96)
    r = _run_cli("train", "--data", str(THUMBS), "--out", str(tmp_path / "bad"), "--input-size", "8x8")
    assert r.returncode == 2 and "'8x8': give HEIGHTxWIDTH, each at least 32" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "bad").exists()


def _script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_attention_xception_caches_one_feature_map_per_tta_view():
    """The cached-feature training of the study's model: view 0 is the image itself (validation
    reads it), every other view is that TTA transform's copy through the same frozen layers."""
    from boneage.tta import tta_batch

    xs = _script("train_attention_xception")
    assert xs._views("7,1,0,1") == [0, 7, 1]
    for bad in ("1,x", "8", "-1"):
        with pytest.raises(SystemExit, match="--views"):
            xs._views(bad)
    inp = keras.Input((32, 24, 1))
    frozen = keras.Model(inp, keras.layers.Conv2D(3, 3, strides=2, padding="same")(inp))
    imgs = (np.random.default_rng(0).random((5, 32, 24)) * 255).astype(np.uint8)
    feats = xs.cache_features(frozen, imgs, [0, 1, 7], batch=2, log=lambda *a: None)
    assert feats.shape == (3, 5, 16, 12, 3) and feats.dtype == np.float16
    x = imgs.astype("float32") / 255.0
    np.testing.assert_allclose(feats[0], np.asarray(frozen(x[..., None])), atol=2e-3)
    flipped = np.stack([tta_batch(im, 2)[1] for im in x])
    np.testing.assert_allclose(feats[1], np.asarray(frozen(flipped)), atol=2e-3)
    assert not np.allclose(feats[2], feats[0], atol=1e-2)


def test_distribution_head_answers_the_expectation_of_its_bins():
    """The distribution head's output is Σ p_k·c_k in months, through the usual rescaling layer,
    so a bundle reads it like the regression head; its loss is zero only at the label's own
    distribution and grows with the distance of the answer."""
    from boneage.model import AGE_BIN_MONTHS, distribution_loss, head_of, serving_view, training_view

    net = build_model("tiny", (96, 80), head="distribution", mean_months=120.0, sd_months=40.0)
    assert head_of(net) == "distribution" and head_of(build_model("tiny", (96, 80))) == "regression"
    x = {"image": np.random.default_rng(0).random((3, 96, 80, 1), dtype=np.float32), "male": np.array([[0.], [1.], [1.]], np.float32)}
    both = np.asarray(training_view(net)(x))
    assert both.shape == (3, 1 + len(AGE_BIN_MONTHS))
    p = both[:, 1:]
    assert np.allclose(p.sum(1), 1.0, atol=1e-5)
    assert np.allclose(both[:, 0], p @ AGE_BIN_MONTHS, atol=1e-3)
    assert np.allclose(np.asarray(net(x))[:, 0], both[:, 0], atol=1e-4)
    assert serving_view(training_view(net)).outputs[0].shape[-1] == 1
    assert not net.get_layer("age_expectation").trainable

    loss = distribution_loss(sigma_months=6.0, kl_weight=4.0)
    y = np.array([100.0], np.float32)
    target = np.exp(-((AGE_BIN_MONTHS - 100.0) ** 2) / 72.0)
    target /= target.sum()
    exact = np.concatenate([[target @ AGE_BIN_MONTHS], target])[None].astype(np.float32)
    far = np.roll(exact[:, 1:], 10, axis=1)
    far = np.concatenate([[[far[0] @ AGE_BIN_MONTHS]], far], axis=1).astype(np.float32)
    assert float(np.asarray(loss(y, exact))[0]) == pytest.approx(abs(exact[0, 0] - 100.0), abs=1e-3)
    assert float(np.asarray(loss(y, far))[0]) > 20.0 + 4.0  # 20 months off, and a KL well above zero
    with pytest.raises(ValueError, match="head must be one of"):
        build_model("tiny", (96, 80), head="ordinal")


def test_distribution_head_trains_from_a_regression_model(tmp_path):
    """--head distribution --init-from a regression run: every shared layer (backbone, attention,
    sex branch, head_dense) is copied, the bins start afresh, and the run folder ships one output
    in months that the bundle reads as usual."""
    from boneage.checks import ParameterError
    from boneage.train import TrainConfig, train

    base = dict(data=str(THUMBS), backbone="tiny", pretrained=False, epochs=1, batch_size=16, image_height=96,
                image_width=80, val_fraction=0.25, workers=1, cache_dir=str(tmp_path / "cache"))
    train(TrainConfig(**base, out=str(tmp_path / "reg")), log=lambda *a: None)
    logs: list[str] = []
    m = train(TrainConfig(**base, out=str(tmp_path / "dist"), head="distribution", init_from=str(tmp_path / "reg")),
              log=logs.append)
    assert np.isfinite(m["mae"])
    line = next(line for line in logs if "layers from" in line)
    assert "new: age_bins, age_expectation" in line
    src, net = load_model(tmp_path / "reg" / "model.keras"), load_model(tmp_path / "dist" / "model.keras")
    assert len(net.outputs) == 1 and net.outputs[0].shape[-1] == 1
    assert net.get_layer("age_bins") is not None
    # the expectation layer was frozen: still the bin centres in the source's z-units
    out = src.get_layer("bone_age_months")
    from boneage.model import AGE_BIN_MONTHS

    want = (AGE_BIN_MONTHS - float(out.offset)) / float(out.scale)
    assert np.allclose(net.get_layer("age_expectation").get_weights()[0][:, 0], want, atol=1e-5)
    assert json.loads((tmp_path / "dist" / "config.json").read_text())["head"] == "distribution"
    with pytest.raises(ParameterError, match="--head"):
        TrainConfig(**base, out=str(tmp_path / "x"), head="ordinal")


def test_array_batches_give_the_tf_data_contract_without_tensorflow():
    """The backend-neutral batches (used under torch or JAX, where tf.data is missing): inputs in
    [0, 1], every image once per epoch, a new shuffle each epoch, weights only when training, and
    validation batches in order and unaugmented. (Measured here under KERAS_BACKEND=jax with
    TensorFlow's import blocked: `boneage train` ran and its model.keras read back under TF.)"""
    from boneage.train import ArrayBatches

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (21, 24, 20), dtype=np.uint8)
    male = (np.arange(21) % 2).astype(float)
    y = np.arange(21, dtype=float) * 10
    w = np.linspace(0.5, 1.5, 21)
    tr = ArrayBatches(x, male, y, batch_size=8, training=True, seed=3, augment_strength=1.0, weights=w)
    assert len(tr) == 3
    seen = []
    for i in range(len(tr)):
        inputs, yb, wb = tr[i]
        img = np.asarray(inputs["image"])
        assert img.shape[1:] == (24, 20, 1) and img.min() >= 0.0 and img.max() <= 1.0
        assert np.allclose(wb[:, 0], np.interp(yb[:, 0], y, w))  # each weight travels with its image
        seen += list(yb[:, 0])
    assert sorted(seen) == list(y)
    first = [float(v) for v in tr[0][1][:, 0]]
    tr.on_epoch_end()
    assert [float(v) for v in tr[0][1][:, 0]] != first
    va = ArrayBatches(x, male, y, batch_size=8, training=False, weights=w)
    inputs, yb = va[0]  # no weights when validating
    assert np.array_equal(yb[:, 0], y[:8])
    assert np.allclose(np.asarray(inputs["image"])[..., 0], x[:8] / 255.0)
    assert np.array_equal(inputs["male"][:, 0], male[:8].astype("float32"))


def test_schedule_is_fitted_to_max_minutes_under_torch_and_tensorflow(monkeypatch):
    """A run stopped by --max-minutes ends its cosine schedule where the clock will stop it, so its
    last epochs run at the floor rate, not the peak (the lent GPU machine's run, 2026-11-29, was
    stopped after 2 of 120 epochs at 1e-3). The schedule's ``decay_steps`` is a variable, read by
    eager torch and by TensorFlow's compiled step alike; JAX's jit would fold it into a constant,
    so there it stays as built and the log says so."""
    import boneage.train as T

    keras = T._keras()
    sched = T.cosine_schedule(1e-3, total_steps=120 * 10, warm_steps=5)
    logs: list[str] = []
    clock = iter([0.0, 60.0, 120.0, 240.0, 250.0, 0.0, 60.0, 0.0, 60.0])
    monkeypatch.setattr(T.time, "time", lambda: next(clock))

    def fitted():
        return [line for line in logs if "schedule fitted" in line]

    def steps():
        return float(keras.ops.convert_to_numpy(sched.decay_steps))

    def run(backend):
        monkeypatch.setattr(keras.backend, "backend", lambda: backend)
        cb = T.EpochReport(120, logs.append, 5.0, T._Schedule(sched, steps_per_epoch=10, warm_steps=5))
        cb.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
        cb.on_train_begin()
        cb.on_epoch_begin(0)
        return cb

    assert steps() == 1195 and sched.get_config()["decay_steps"] == 1195.0  # as built; the config stays JSON
    cb = run("torch")  # clock: begins at 0 s
    cb.on_epoch_end(0)  # 60 s an epoch → 5 epochs fit in 5 minutes
    assert steps() == 5 * 10 - 5 and "cosine ends after epoch 5" in fitted()[-1]
    cb.on_epoch_begin(1)
    cb.on_epoch_end(1)  # 120 s for two: same pace, no change, no new line
    assert steps() == 45 and len(fitted()) == 1
    cb.on_epoch_begin(2)
    cb.on_epoch_end(119)  # the last epoch (clock 240 s): nothing left to fit, never past --epochs
    assert steps() == 45 and len(fitted()) == 1
    cb.model.stop_training = True  # the run stops here: nothing more to fit
    cb.on_epoch_end(2)
    assert len(fitted()) == 1
    sched.decay_steps.assign(1195.0)
    run("tensorflow").on_epoch_end(0)
    assert steps() == 45 and len(fitted()) == 2
    sched.decay_steps.assign(1195.0)
    run("jax").on_epoch_end(0)
    assert steps() == 1195 and "sized for --epochs" in logs[-2]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the compiled TensorFlow step")
def test_a_compiled_train_step_reads_the_moved_end_of_the_cosine():
    """Under TensorFlow the train step is a tf.function: moving ``decay_steps`` after it was traced
    must still change the rate it applies (a Python constant would have been traced in). One weight,
    plain SGD and a gradient of exactly 1, so each step moves the weight by the learning rate."""
    from boneage.train import cosine_schedule

    sched = cosine_schedule(0.1, total_steps=1001, warm_steps=1)  # a long cosine: the rate stays near 0.1
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=sched), loss=lambda y, p: keras.ops.mean(p))
    x, y = np.ones((4, 1), "float32"), np.zeros((4, 1), "float32")

    def step() -> float:
        before = float(model.get_weights()[0][0, 0])
        model.train_on_batch(x, y)
        return before - float(model.get_weights()[0][0, 0])

    step()  # warm-up step, and the trace
    assert step() == pytest.approx(0.1, rel=1e-3)
    sched.decay_steps.assign(1.0)  # the cosine now ended a step ago: the floor, 2 % of the peak
    assert step() == pytest.approx(0.1 * 0.02, rel=1e-3)


def test_gpu_probe_climbs_to_a_larger_batch_only_for_a_real_gain():
    """`scripts/train_gpu.sh run` with BATCH=auto trains at the batch scripts/gpu_probe.py picks:
    a larger one only where it reads ≥ 1.5× the images per second of the size chosen so far."""
    probe = _script("gpu_probe")
    assert probe.best_batch({64: 50, 256: 190, 512: 370}, 64) == 512  # launch-bound: images/s grow with the batch
    assert probe.best_batch({64: 50, 256: 90, 512: 100}, 64) == 256  # 512 gains too little over 256
    assert probe.best_batch({64: 50, 256: 60, 512: 70}, 64) == 64  # compute-bound: stay at 64
    assert probe.best_batch({256: 90}, 64) == 64  # the smallest size failed: no basis to climb


def test_teacher_readings_are_every_network_on_every_tta_copy():
    """scripts/teacher_readings.py: one column per (network, copy), each the network on that TTA
    copy of the image (copy 0 the image itself), so the teacher is the ensemble at all 8 copies."""
    from boneage.tta import TTA_TRANSFORMS, tta_copy

    t = _script("teacher_readings")
    nets = [build_model("tiny", (96, 80), weights=None) for _ in range(2)]
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (5, 96, 80), dtype=np.uint8)
    male = np.array([0, 1, 1, 0, 1], float)
    r = t.readings(nets, imgs, male, batch=2, log=lambda *a: None)
    assert r.shape == (5, 2 * len(TTA_TRANSFORMS))
    k = 3
    x = np.stack([tta_copy(im / np.float32(255.0), k) for im in imgs])[..., None]
    direct = keras.ops.convert_to_numpy(nets[1]({"image": x, "male": male[:, None].astype("float32")}, training=False))
    assert np.allclose(r[:, len(TTA_TRANSFORMS) + k], direct.reshape(5, -1)[:, 0], atol=1e-4)


def test_teacher_bias_correction_keeps_the_image_and_drops_the_age_trend(tmp_path):
    """The teacher's regression to the mean (a function of the true age) is taken out; what is
    particular to each image stays, and --keep-bias keeps the reading as it came."""
    t = _script("teacher_readings")
    rng = np.random.default_rng(0)
    y = rng.uniform(6, 228, 4000)
    own = rng.normal(0, 5, len(y))  # what the image says beyond its label
    raw = y + 0.12 * (127 - y) + own  # shrunk towards the mean by 12 %
    fixed = t.without_age_bias(y, raw)
    for lo, hi in ((0, 60), (180, 240)):
        sel = (y >= lo) & (y < hi)
        assert abs((raw - y)[sel].mean()) > 7 and abs((fixed - y)[sel].mean()) < 0.5
    assert np.corrcoef(fixed - y, own)[0, 1] > 0.99
    src = tmp_path / "raw.csv"
    pd.DataFrame({"id": np.arange(len(y)).astype(str), "boneage_months": y, "male": 1, "teacher_raw_months": raw,
                  "teacher_sd_months": 1.0}).to_csv(src, index=False)
    for extra, expect in (([], fixed), (["--keep-bias"], raw)):
        out = tmp_path / f"t{len(extra)}.csv"
        r = subprocess.run([sys.executable, str(REPO / "scripts" / "teacher_readings.py"), "--from-csv", str(src),
                            "--out", str(out), *extra], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        got = pd.read_csv(out)
        assert np.allclose(got["teacher_months"], expect, atol=1e-3) and np.allclose(got["teacher_raw_months"], raw, atol=1e-3)
        assert "bias by band" in r.stdout
