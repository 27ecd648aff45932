"""Attention-Xception bone-age regressor (backend-neutral Keras 3).

After the seed study ("Intelligent Bone Age Assessment … CNN with Attention Mechanism", 2021):
a CNN backbone, a learned spatial attention map that weights the last feature maps before
pooling (so the network looks at growth plates, not at background), the child's sex through a
small dense branch concatenated before the head, and one linear output in months trained with
MAE. The backbone is a parameter: Xception as in the study, EfficientNet-Lite0 for CPU budgets.

The head is a parameter too (issue #9's "loss variants"): ``"regression"`` (one linear output,
the study's) or ``"distribution"`` (a softmax over 2-month age bins whose expectation is the
answer, trained with label-distribution learning: see :func:`distribution_loss`). Both end in the
same ``bone_age_months`` rescaling layer and give one output in months, so a bundle does not
care which head its networks carry.

Only ``keras.ops`` and Keras layers are used, so the same model trains under TensorFlow, torch
or JAX (``KERAS_BACKEND``).
"""
from __future__ import annotations

from . import _quiet  # noqa: F401  (TensorFlow start-up logging off)
import keras
import numpy as np
from keras import layers, ops

from .backbones import build_backbone, freeze_backbone

# Output scaling: the head predicts a z-score, rescaled to months by the training labels'
# mean and SD (RSNA train-100px: mean ≈ 127, SD ≈ 41), which keeps early gradients sane.
DEFAULT_MEAN_MONTHS = 127.3
DEFAULT_SD_MONTHS = 41.2

HEADS = ("regression", "distribution")
# Distribution head: bins every 2 months over 0–20 years (RSNA labels run 1–228 months), and the
# label distribution a Gaussian of SD 6 months around the reading: about half the shipped model's
# residual SD (12 months), as DLDL-v2 (Gao et al., IJCAI 2018) sets σ below its MAE.
AGE_BIN_MONTHS = np.arange(0.0, 241.0, 2.0)
LABEL_SIGMA_MONTHS = 6.0
KL_WEIGHT = 4.0  # months of MAE one nat of KL is worth in the loss


@keras.saving.register_keras_serializable(package="boneage")
class AttentionPooling(layers.Layer):
    """Attention-weighted global average pooling: Σ a·F / Σ a over the spatial grid.

    Plain GAP gives every location the same weight; with bones occupying a small part of the
    image, a learned mask lets the regressor ignore soft tissue and background.
    """

    def call(self, inputs):
        features, attention = inputs
        num = ops.sum(features * attention, axis=(1, 2))
        den = ops.sum(attention, axis=(1, 2))
        return num / (den + 1e-6)

    def compute_output_shape(self, input_shape):
        f, _ = input_shape
        return (f[0], f[-1])


def build_model(
    backbone: str = "efficientnet_lite0",
    image_size: tuple[int, int] = (160, 128),
    *,
    weights: str | None = None,
    trainable_fraction: float = 1.0,
    attention_units: int = 64,
    sex_units: int = 16,
    head_units: int = 256,
    dropout: float = 0.25,
    mean_months: float = DEFAULT_MEAN_MONTHS,
    sd_months: float = DEFAULT_SD_MONTHS,
    input_size: tuple[int, int] | None = None,
    head: str = "regression",
) -> keras.Model:
    """Inputs ``image`` (H, W, 1) in [0, 1] and ``male`` (1,) ∈ {0, 1}; output bone age in months.

    ``weights``: None (random), ``"imagenet"`` (offline converted weights, see
    ``boneage fetch-weights``) or a converted weights file. ``input_size``: the image input's
    size when it differs from ``image_size``, the grid the network works at; the input is then
    resized (bilinear) first. See :func:`resized_input`. ``head``: one of :data:`HEADS` (see the
    module docstring); the distribution head's bin probabilities are the ``age_bins`` layer.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    h, w = image_size
    image = keras.Input((*(input_size or image_size), 1), name="image")
    male = keras.Input((1,), name="male")
    bb = build_backbone(backbone, (h, w, 1), weights)
    freeze_backbone(bb, trainable_fraction)
    x = image if tuple(input_size or image_size) == (h, w) else layers.Resizing(h, w, name="input_resize")(image)
    feats = bb(x)
    feats = layers.BatchNormalization(name="feature_bn")(feats)

    # Spatial attention: 1×1 convs → one sigmoid map over the feature grid.
    a = layers.Conv2D(attention_units, 1, activation="relu", name="attention_conv1")(feats)
    a = layers.Conv2D(16, 1, activation="relu", name="attention_conv2")(a)
    a = layers.Conv2D(1, 1, activation="sigmoid", name="attention_map")(a)
    pooled = AttentionPooling(name="attention_pool")([feats, a])

    s = layers.Dense(sex_units, activation="relu", name="sex_dense")(male)
    x = layers.Concatenate(name="concat")([pooled, s])
    x = layers.Dropout(dropout, name="head_dropout1")(x)
    x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout2")(x)
    if head == "regression":
        z = layers.Dense(1, name="head_out")(x)
    else:
        p = layers.Dense(len(AGE_BIN_MONTHS), activation="softmax", name="age_bins")(x)
        # The expectation Σ p_k·c_k as a frozen linear layer over the bin centres in z-units, so the
        # usual rescaling follows and the saved file holds only standard layers.
        expect = layers.Dense(1, use_bias=False, trainable=False, name="age_expectation")
        z = expect(p)
        expect.set_weights([((AGE_BIN_MONTHS - mean_months) / sd_months).astype("float32")[:, None]])
    months = layers.Rescaling(scale=sd_months, offset=mean_months, name="bone_age_months")(z)
    return keras.Model({"image": image, "male": male}, months, name=f"attention_{backbone}")


def head_of(model: keras.Model) -> str:
    """Which of :data:`HEADS` a built or loaded model carries."""
    names = {layer.name for layer in model.layers}
    return "distribution" if "age_bins" in names else "regression"


def training_view(model: keras.Model) -> keras.Model:
    """The network as it trains: the months, plus the bin probabilities for a distribution head.

    Same layers and weights as ``model``; the output is (months, p_1 … p_K) side by side, so one
    loss sees both and the callbacks keep their single ``val_mae`` (see :func:`compile_model`).
    A regression head trains on ``model`` itself.
    """
    if head_of(model) == "regression":
        return model
    both = layers.Concatenate(name="months_and_bins")([model.output, model.get_layer("age_bins").output])
    return keras.Model(model.inputs, both, name=model.name + "_training")


def serving_view(model: keras.Model) -> keras.Model:
    """The inverse of :func:`training_view`: one output in months (what a bundle ships)."""
    if model.get_layer("bone_age_months").output is model.outputs[0] and len(model.outputs) == 1:
        return model
    return keras.Model(model.inputs, model.get_layer("bone_age_months").output, name=model.name.removesuffix("_training"))


def distribution_loss(sigma_months: float = LABEL_SIGMA_MONTHS, kl_weight: float = KL_WEIGHT):
    """Label-distribution loss (DLDL-v2): |y − E[age]| + kl_weight · KL(N(y, σ) ‖ p).

    Why: the plain regression head learns one number per image; the distribution head is also
    told that 130 and 134 months are near answers and 60 is far, which DLDL reports as a gain over
    L1 regression in age estimation. Reads :func:`training_view`'s (months, bins) output.

    Measured here (2026-11-29, model card rows 18–19): 10 epochs from the shipped regression
    model fitted the training images closer (MAE 8.9 against 9.6) but read the validation ids
    worse (9.86 against 9.68, cached inputs, no TTA), so no shipped network uses it. σ and the
    KL weight were set from the paper's proportions, not tuned (one run is 56 min on 2 cores).
    """
    centres = ops.convert_to_tensor(AGE_BIN_MONTHS.astype("float32"))

    def loss(y_true, y_pred):
        y = ops.reshape(ops.cast(y_true, "float32"), (-1, 1))
        months, p = y_pred[:, :1], y_pred[:, 1:]
        target = ops.softmax(-ops.square(centres[None, :] - y) / (2.0 * sigma_months**2), axis=-1)
        kl = ops.sum(target * (ops.log(target + 1e-8) - ops.log(p + 1e-8)), axis=-1)
        return ops.abs(months[:, 0] - y[:, 0]) + kl_weight * kl

    return loss


def months_mae(y_true, y_pred):
    """MAE on the months column alone (the first output column of either view)."""
    return ops.abs(ops.reshape(ops.cast(y_true, "float32"), (-1,)) - y_pred[:, 0])


def compile_model(model: keras.Model, learning_rate=1e-3, weight_decay: float = 1e-4, ema_momentum: float = 0.0) -> keras.Model:
    """AdamW and MAE (the study's loss, and the figure clinicians read); for a
    :func:`training_view` of a distribution head, :func:`distribution_loss`. The metric is the
    months MAE either way, logged as ``mae`` / ``val_mae``.

    ``ema_momentum`` > 0 keeps an exponential moving average of the weights (Polyak averaging),
    which smooths the step-to-step noise of small-batch training; see ``boneage.train``.
    """
    distribution = model.outputs[0].shape[-1] not in (None, 1)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=1.0,
                                         use_ema=ema_momentum > 0, ema_momentum=ema_momentum),
        loss=distribution_loss() if distribution else "mean_absolute_error",
        metrics=[keras.metrics.MeanMetricWrapper(months_mae, name="mae") if distribution
                 else keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model


def resized_input(model: keras.Model, input_size: tuple[int, int], backbone: str) -> keras.Model:
    """The same network (same weights) taking ``input_size`` images and resizing them to its own grid.

    Why: an ensemble member trained at another input size (224×176 beside the shipped 160×128)
    can then read the bundle's pipeline output, so the bundle keeps one pipeline, one TTA batch
    and one acceptance check. The member sees the 160×128 crop upscaled (bilinear) instead of a
    crop made at 224×176; both come from a 100-px thumbnail. Measured on the 1,707 validation
    ids with 8× TTA (cached inputs): 9.124 read natively at 224×176, see the model card for the
    resized reading.
    """
    image = next(t for t in keras.tree.flatten(model.inputs) if len(t.shape) == 4)
    out = model.get_layer("bone_age_months")
    new = build_model(backbone, (int(image.shape[1]), int(image.shape[2])), input_size=tuple(input_size),
                      mean_months=float(out.offset), sd_months=float(out.scale), head=head_of(model))
    new.set_weights(model.get_weights())  # the resize layer has no weights: the lists line up
    return new


def with_attention_output(model: keras.Model) -> keras.Model:
    """Same weights, two outputs: months and the attention map (for the heatmap overlay)."""
    return keras.Model(model.inputs, [model.output, model.get_layer("attention_map").output])


def with_explanation_outputs(model: keras.Model) -> keras.Model:
    """Same weights, three outputs: months, the attention map and the attention-pooled features.

    The pooled features are what the acceptance check (:mod:`boneage.acceptance`) compares with
    the training radiographs'; reading them costs nothing extra in the same forward pass.
    """
    return keras.Model(model.inputs, [model.output, model.get_layer("attention_map").output,
                                      model.get_layer("attention_pool").output])


def load_model(path) -> keras.Model:
    return keras.saving.load_model(str(path), compile=False, custom_objects={"AttentionPooling": AttentionPooling})
