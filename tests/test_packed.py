"""Packed model inputs (boneage.packed) and what the GPU machine's training needs from them:
close to the cached inputs, refused when made by another pipeline, trainable with --max-minutes,
and a run folder small enough to come back from a lent machine."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from boneage import packed
from boneage.data import build_cache

REPO = Path(__file__).resolve().parent.parent
THUMBS = REPO / "tests" / "fixtures" / "thumbs"


@pytest.fixture(scope="module")
def packed_file(tmp_path_factory):
    from boneage.train import TrainConfig

    d = tmp_path_factory.mktemp("packed")
    params = TrainConfig(data=str(THUMBS), out="unused", image_height=96, image_width=80).pipeline_params()
    prep = build_cache(THUMBS, params, cache_dir=d / "cache", workers=1, progress=False)
    f = d / "inputs.npz"
    info = packed.pack_inputs(prep.images, prep.labels, params, f)
    return f, params, prep, info


def test_packed_inputs_read_back_close_to_the_cache(packed_file):
    f, params, prep, info = packed_file
    assert packed.is_packed(f) and info["images"] == int(prep.labels["ok"].sum()) == 64
    back = packed.load_packed(f, params)
    assert back.images.shape == prep.images.shape and back.images.dtype == np.uint8
    assert list(back.labels["id"]) == list(prep.labels["id"])
    assert list(back.labels["boneage_months"]) == list(prep.labels["boneage_months"])
    err = np.abs(back.images.astype(int) - prep.images.astype(int))
    assert err.mean() < 1.5 and np.percentile(err, 99) <= 12  # WebP q90: ≈ 0.7 grey levels on average
    assert info["bytes_per_image"] < prep.images[0].size // 2  # and far smaller than raw


def test_packed_file_from_another_pipeline_is_refused(packed_file, monkeypatch, tmp_path):
    import dataclasses

    f, params, _, _ = packed_file
    with pytest.raises(packed.PackedError, match="other pipeline parameters.*clahe_clip"):
        packed.load_packed(f, dataclasses.replace(params, clahe_clip=2.0))
    monkeypatch.setattr(packed, "PIPELINE_VERSION", packed.PIPELINE_VERSION + 1)
    with pytest.raises(packed.PackedError, match="pipeline version"):
        packed.load_packed(f, params)
    plain = tmp_path / "plain.npz"
    np.savez(plain, images=np.zeros((2, 4, 4), np.uint8))
    assert not packed.is_packed(plain) and not packed.is_packed(tmp_path / "missing.npz")
    with pytest.raises(packed.PackedError, match="not a packed-inputs file"):
        packed.load_packed(plain)


def test_training_on_a_packed_file_stops_in_time_and_writes_a_slim_model(packed_file, tmp_path):
    import pandas as pd

    from boneage.train import TrainConfig, train

    f, _, _, _ = packed_file
    out = tmp_path / "run"
    m = train(TrainConfig(data=str(f), out=str(out), backbone="tiny", pretrained=False, epochs=3, batch_size=16,
                          image_height=96, image_width=80, val_fraction=0.25, max_minutes=1e-4),
              log=lambda *_: None)
    assert len(pd.read_csv(out / "history.csv")) == 1  # another epoch would have passed the budget
    assert m["n_train"] + m["n_val"] == 64 and np.isfinite(m["mae"])
    # model.keras holds the weights only (no optimizer moments): ≈ the weights' own bytes
    from boneage.model import load_model

    weights = sum(w.nbytes for w in load_model(out / "model.keras").get_weights())
    with zipfile.ZipFile(out / "model.keras") as z:
        stored = z.getinfo("model.weights.h5").file_size
    assert stored < 1.3 * weights + 200_000
    assert json.loads((out / "config.json").read_text())["max_minutes"] == 1e-4


def test_max_minutes_is_checked():
    from boneage.checks import ParameterError
    from boneage.train import TrainConfig

    with pytest.raises(ParameterError, match="--max-minutes"):
        TrainConfig(data=str(THUMBS), out="x", max_minutes=0)


def test_train_cli_takes_a_packed_file(packed_file, tmp_path):
    from boneage import preflight

    f, _, _, _ = packed_file
    assert preflight.training_data(f) == f
    assert preflight.training_data(THUMBS).name == "labels.csv"
    with pytest.raises(preflight.PathError, match="not found"):
        preflight.training_data(tmp_path / "missing.npz")


def test_an_npz_that_is_not_packed_inputs_is_one_training_error(tmp_path):
    from boneage.train import TrainConfig, TrainError, train

    plain = tmp_path / "plain.npz"
    np.savez(plain, images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(TrainError, match="not a packed-inputs file"):
        train(TrainConfig(data=str(plain), out=str(tmp_path / "run"), backbone="tiny", pretrained=False, epochs=1),
              log=lambda *_: None)
