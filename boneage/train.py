"""Training entry point: ``boneage train --data DIR --out RUN_DIR``.

Images are prepared once by :func:`boneage.data.build_cache` (the same pipeline prediction
uses), then streamed through ``tf.data`` with on-the-fly augmentation. Best checkpoint by
validation MAE, early stopping, cosine LR with warm-up, fixed seeds, ``history.csv`` and
TensorBoard logs; Ctrl-C leaves a resumable state (``--resume``). ``--strategy`` picks a
``tf.distribute`` strategy so GPUs or several machines need no code change.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import bundle
from .pipeline import PipelineParams

STRATEGIES = ("default", "mirrored", "multiworker")  # --strategy: see get_strategy
CHECKPOINT_FILE = "best.weights.h5"  # the best epoch's weights, in the run folder (also --init-from's first choice)



def _keras():
    """Keras, imported with TensorFlow's start-up lines kept off the terminal (:mod:`boneage._quiet`).

    Imported inside the functions, not at module level, so ``boneage train``'s argument parser can
    read its defaults from :class:`TrainConfig` before TensorFlow loads.
    """
    from . import _quiet  # noqa: F401
    import keras

    return keras


@dataclass
class TrainConfig:
    data: str
    out: str
    backbone: str = "efficientnet_lite0"
    image_height: int = 160
    image_width: int = 128
    # The pipeline output the network reads, when it differs from the grid it works at
    # (image_height × image_width): the network resizes it first (boneage.model.resized_input).
    # Why: an ensemble member at a finer grid trained on exactly what the bundle feeds it.
    input_height: int | None = None
    input_width: int | None = None
    epochs: int = 14
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_epochs: float = 0.5
    augment_strength: float = 1.0  # scales every augmentation range (see boneage.augment.augmenter)
    ema_momentum: float = 0.0  # > 0: validate, checkpoint and ship the moving average of the weights
    age_balance: float = 0.0  # loss weight ∝ (share of the 1-year age bin)^-age_balance; 0 = plain MAE (see age_weights)
    head: str = "regression"  # or "distribution": softmax over age bins + label-distribution loss (boneage.model)
    # Train and validate only on images whose true bone age lies in [lo, hi) months: an age-range
    # specialist (issue #9's end bands, where the whole-range model regresses to the mean).
    age_range: tuple[float, float] | None = None
    # Knowledge distillation: a CSV (id, teacher_months) of another model's reading of each training
    # image (scripts/teacher_readings.py); the training target becomes
    # (1 − teacher_weight)·label + teacher_weight·reading. Validation stays on the true labels.
    teacher: str | None = None
    teacher_weight: float = 0.5
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    pretrained: bool = True
    trainable_fraction: float = 0.6  # share of backbone layers trained, from the top
    patience: int = 5
    max_minutes: float | None = None  # stop after the epoch that leaves no time for another (EpochReport)
    seed: int = 42
    strategy: str = "default"
    resume: bool = False
    limit: int | None = None
    init_from: str | None = None  # start from a trained model (run folder, .keras or .weights.h5)
    workers: int | None = None
    cache_dir: str | None = None
    pipeline: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every setting checked before any work (CLI and Python API alike; boneage.checks).

        Before issue #14 ``--lr nan`` trained and shipped NaN weights, ``--epochs 0/-1`` failed
        after the preprocessing and left an untrained model, and ``--batch-size 0`` surfaced a raw
        TensorFlow error.
        """
        from .backbones import BACKBONES
        from .model import HEADS
        from .checks import ParameterError, check_bool, check_choice, check_float, check_int

        c = self
        c.backbone = check_choice(c.backbone, "backbone", BACKBONES, flag="--backbone")
        c.head = check_choice(c.head, "head", HEADS, flag="--head")
        c.image_height = check_int(c.image_height, "image_height", lo=32, hi=1024, flag="--image-size")
        c.image_width = check_int(c.image_width, "image_width", lo=32, hi=1024, flag="--image-size")
        if (c.input_height is None) != (c.input_width is None):
            raise ParameterError("input_height and input_width go together (--input-size HEIGHTxWIDTH)")
        if c.input_height is not None:
            c.input_height = check_int(c.input_height, "input_height", lo=32, hi=1024, flag="--input-size")
            c.input_width = check_int(c.input_width, "input_width", lo=32, hi=1024, flag="--input-size")
        c.epochs = check_int(c.epochs, "epochs", lo=1, hi=10_000, flag="--epochs")
        c.batch_size = check_int(c.batch_size, "batch_size", lo=1, hi=4096, flag="--batch-size")
        c.learning_rate = check_float(c.learning_rate, "learning_rate", lo=0.0, lo_open=True, hi=1.0, flag="--lr")
        c.warmup_epochs = check_float(c.warmup_epochs, "warmup_epochs", lo=0.0, hi=10_000, flag="--warmup-epochs")
        c.augment_strength = check_float(c.augment_strength, "augment_strength", lo=0.0, hi=10.0,
                                         flag="--augment-strength")
        c.ema_momentum = check_float(c.ema_momentum, "ema_momentum", lo=0.0, hi=1.0, hi_open=True, flag="--ema")
        c.age_balance = check_float(c.age_balance, "age_balance", lo=0.0, hi=1.0, flag="--age-balance")
        c.weight_decay = check_float(c.weight_decay, "weight_decay", lo=0.0, hi=1.0)
        c.val_fraction = check_float(c.val_fraction, "val_fraction", lo=0.0, lo_open=True, hi=1.0, hi_open=True,
                                     flag="--val-fraction")
        c.pretrained = check_bool(c.pretrained, "pretrained", flag="--no-pretrained")
        c.trainable_fraction = check_float(c.trainable_fraction, "trainable_fraction", lo=0.0, hi=1.0,
                                           flag="--trainable-fraction")
        c.patience = check_int(c.patience, "patience", lo=0, hi=10_000, flag="--patience")
        if c.max_minutes is not None:
            c.max_minutes = check_float(c.max_minutes, "max_minutes", lo=0.0, lo_open=True, hi=10_000, flag="--max-minutes")
        c.seed = check_int(c.seed, "seed", lo=0, hi=2**32 - 1, flag="--seed")
        c.strategy = check_choice(c.strategy, "strategy", STRATEGIES, flag="--strategy")
        c.resume = check_bool(c.resume, "resume", flag="--resume")
        if c.limit is not None:
            c.limit = check_int(c.limit, "limit", lo=1, flag="--limit")
        if c.age_range is not None:
            if not isinstance(c.age_range, (tuple, list)) or len(c.age_range) != 2:
                raise ParameterError(f"age_range must be (low, high) in months, got {c.age_range!r}")
            lo = check_float(c.age_range[0], "age_range low", lo=0.0, hi=300.0, flag="--age-range")
            hi = check_float(c.age_range[1], "age_range high", lo=0.0, hi=300.0, flag="--age-range")
            if hi <= lo:
                raise ParameterError(f"--age-range: the upper end ({hi:g}) must be above the lower ({lo:g}) months")
            c.age_range = (lo, hi)
        c.teacher_weight = check_float(c.teacher_weight, "teacher_weight", lo=0.0, hi=1.0, flag="--teacher-weight")
        if c.teacher is not None and not isinstance(c.teacher, (str, os.PathLike)):
            raise ParameterError(f"teacher must be a path to a CSV, got {type(c.teacher).__name__}")
        if c.workers is not None:
            c.workers = check_int(c.workers, "workers", lo=1, hi=256, flag="--workers")
        if not isinstance(c.pipeline, dict):
            raise ParameterError(f"pipeline must be a dict of PipelineParams fields, got {type(c.pipeline).__name__}")
        self.pipeline_params()  # its own checks

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the images the network reads: the pipeline's output size."""
        if self.input_height is None:
            return self.image_height, self.image_width
        return self.input_height, self.input_width

    def pipeline_params(self) -> PipelineParams:
        p = PipelineParams.from_dict(self.pipeline)
        h, w = self.input_size
        return PipelineParams.from_dict({**p.to_dict(), "model_height": h, "model_width": w})


def get_strategy(name: str):
    """``tf.distribute`` strategy by name (TensorFlow backend only)."""
    keras = _keras()

    if name == "default":
        return None
    if keras.backend.backend() != "tensorflow":
        raise TrainError(f"--strategy {name} needs KERAS_BACKEND=tensorflow (got {keras.backend.backend()})")
    import tensorflow as tf

    if name == "mirrored":
        if not tf.config.list_logical_devices("GPU") and len(tf.config.list_logical_devices("CPU")) > 1:
            # CPU-only with several logical devices (tests, or a CPU box split on purpose).
            return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise TrainError("--strategy multiworker needs TF_CONFIG (cluster spec and this worker's task) in the environment")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainError(f"unknown --strategy {name!r} ({', '.join(STRATEGIES)})")


def age_weights(y_months: np.ndarray, alpha: float, bin_months: float = 12.0, max_weight: float = 5.0) -> np.ndarray:
    """Per-image loss weights that lift the thin ends of the age range; mean 1.

    Trained with plain MAE the model regresses to the mean: on the shipped model's validation
    predictions the bias was +9.7 months under 5 years, +5.6 at 5–10, +0.1 at 10–15 and −14.3
    at 15–20 (those bands hold 6 %, 27 %, 58 % and 9 % of the images). Weighting each image by
    its 1-year bin's share to the power −``alpha`` (``alpha`` 0 = plain, 1 = every bin counts
    equally) makes errors at the ends cost more; capped at ``max_weight`` so a bin of a handful
    of images cannot dominate. A post-hoc de-biasing instead (inverting a fit of prediction on
    true age, cross-fitted) flattened the band biases but cost 0.9 months of MAE.
    """
    y = np.asarray(y_months, float)
    if alpha <= 0 or y.size == 0:
        return np.ones_like(y)
    bins = np.floor(y / bin_months).astype(int)
    _, inv, counts = np.unique(bins, return_inverse=True, return_counts=True)
    w = (counts[inv] / y.size) ** (-alpha)
    w = np.minimum(w / w.mean(), max_weight)
    return w / w.mean()


def make_dataset(images_u8: np.ndarray, male: np.ndarray, y: np.ndarray, *, batch_size: int, training: bool, seed: int = 0,
                 augment_strength: float = 1.0, weights: np.ndarray | None = None):
    """``tf.data`` over the cached model inputs; augmentation per batch when training.

    ``weights`` (training only): per-image loss weights, e.g. :func:`age_weights`.
    Under another Keras backend (torch or JAX: a GPU machine without TensorFlow) the same batches
    come from :class:`ArrayBatches` instead; the TensorFlow path stays as the shipped runs used it.
    """
    if _keras().backend.backend() != "tensorflow":
        return ArrayBatches(images_u8, male, y, batch_size=batch_size, training=training, seed=seed,
                            augment_strength=augment_strength, weights=weights)
    import tensorflow as tf

    from .augment import augmenter

    parts = ({"image": images_u8[..., None], "male": male.astype("float32")[:, None]}, y.astype("float32")[:, None])
    if weights is not None:
        parts = parts + (np.asarray(weights, "float32")[:, None],)
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if training:
        ds = ds.shuffle(len(images_u8), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)

    def to_float(x, *rest):
        return ({"image": tf.cast(x["image"], tf.float32) / 255.0, "male": x["male"]}, *rest)

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if training:
        aug = augmenter(seed, strength=augment_strength)

        def augment(x, *rest):
            return ({"image": aug(x["image"], training=True), "male": x["male"]}, *rest)

        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def ArrayBatches(images_u8: np.ndarray, male: np.ndarray, y: np.ndarray, *, batch_size: int, training: bool,
                 seed: int = 0, augment_strength: float = 1.0, weights: np.ndarray | None = None):
    """A backend-neutral ``keras.utils.PyDataset`` with :func:`make_dataset`'s batches.

    Why: ``tf.data`` needs TensorFlow, which a torch or JAX GPU machine does not have; the model
    and the augmenter are Keras layers already. Same contract as the ``tf.data`` path: uint8
    inputs scaled to [0, 1], a fresh seeded shuffle every epoch and the seeded augmenter per
    batch when training, the loss weights as a third element; not byte-identical to it (another
    shuffle order and random stream).
    """
    keras = _keras()

    from .augment import augmenter

    class _Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.aug = augmenter(seed, strength=augment_strength) if training else None
            self.w = None if weights is None or not training else np.asarray(weights, "float32")[:, None]
            self.order = self.rng.permutation(len(images_u8)) if training else np.arange(len(images_u8))

        def __len__(self):
            return math.ceil(len(images_u8) / batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            x = cached_inputs(images_u8[idx], male[idx])
            if self.aug is not None:
                x["image"] = self.aug(x["image"], training=True)
            out = (x, y[idx].astype("float32")[:, None])
            return out + (self.w[idx],) if self.w is not None else out

        def on_epoch_end(self):
            if training:
                self.order = self.rng.permutation(len(images_u8))

    return _Batches()


@dataclass
class _Schedule:
    """The learning-rate schedule as built (:func:`_build`), with the numbers that sized it."""

    rate: object  # cosine_schedule(...): a CosineDecay whose decay_steps is a variable
    steps_per_epoch: int
    warm_steps: int


def cosine_schedule(peak: float, *, total_steps: int, warm_steps: int):
    """Linear warm-up from 5 % of ``peak`` to ``peak``, then a cosine to 2 % of it by ``total_steps``.

    Keras' ``CosineDecay``, with its ``decay_steps`` held in a non-trainable variable, so that
    :func:`EpochReport` can move the end of the cosine while training runs, also under TensorFlow's
    compiled train step (the CPU path: a constant would be traced into the ``tf.function``). Its
    config still reads as a plain ``CosineDecay``'s, with the current ``decay_steps`` as a number.
    """
    keras = _keras()

    class _Cosine(keras.optimizers.schedules.CosineDecay):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.decay_steps = keras.Variable(float(self.decay_steps), trainable=False, dtype="float32",
                                              name="cosine_decay_steps")

        def get_config(self):
            return {**super().get_config(), "decay_steps": float(keras.ops.convert_to_numpy(self.decay_steps))}

    return _Cosine(peak * 0.05, decay_steps=max(1, total_steps - warm_steps), alpha=0.02, warmup_target=peak,
                   warmup_steps=warm_steps)


def EpochReport(total_epochs: int, log, max_minutes: float | None = None, schedule: _Schedule | None = None):
    """Callback: a one-line summary per epoch with the overall ETA (Keras' bar only knows the epoch);
    with ``max_minutes``, training stops after the epoch when one more (at the mean pace) would pass
    it — a lent GPU machine's command has a hard limit, and a killed run writes no model.

    With ``max_minutes`` and the ``schedule``, the same clock also ends the cosine schedule where
    the time will end training. Why: the schedule is sized for ``--epochs``; a run stopped early by
    the clock would stop at a high learning rate, its last epochs the noisiest (the lent GPU
    machine's run, 2026-11-29, stopped after 2 of 120 epochs near its peak). After each epoch the
    number of epochs that fit the limit at the mean pace so far (at most ``--epochs``, at least one
    more) sets the schedule's ``decay_steps``, so the rate still reaches its floor. The schedule
    holds ``decay_steps`` in a variable (:func:`cosine_schedule`), which TensorFlow's compiled step
    reads at every call as eager torch does; JAX's ``jit`` folds it into the compiled step as a
    constant, so there the schedule stays as built and the log says so once.
    """
    keras = _keras()

    class _CB(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t0, self.best, self.start_epoch, self.fitted = time.time(), math.inf, None, total_epochs
            self.fit = max_minutes is not None and schedule is not None
            if self.fit and not (keras.backend.backend() in ("torch", "tensorflow")
                                 and isinstance(getattr(schedule.rate, "decay_steps", None), keras.Variable)):
                self.fit = False
                log("note: the learning-rate schedule is sized for --epochs (fitting it to --max-minutes needs "
                    "TensorFlow or torch and a cosine_schedule)")

        def on_epoch_begin(self, epoch, logs=None):
            if self.start_epoch is None:
                self.start_epoch = epoch  # a resumed run starts past 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            done = epoch + 1 - self.start_epoch
            el = time.time() - self.t0
            eta = el / done * (total_epochs - epoch - 1)
            v = logs.get("val_mae", math.nan)
            self.best = min(self.best, v)
            log(f"epoch {epoch + 1}/{total_epochs}: train MAE {logs.get('mae', math.nan):.2f}, val MAE {v:.2f} "
                f"(best {self.best:.2f}) months; elapsed {el / 60:.1f} min, ETA {eta / 60:.1f} min")
            if max_minutes is not None and epoch + 1 < total_epochs and el + el / done > 60 * max_minutes:
                self.model.stop_training = True
                log(f"stopping after epoch {epoch + 1}: another would pass --max-minutes {max_minutes:g}")
            if self.fit and epoch + 1 < total_epochs and not getattr(self.model, "stop_training", False):
                self._fit_schedule(epoch, el / done)

        def _fit_schedule(self, epoch, pace):
            fit = min(total_epochs, max(epoch + 2, self.start_epoch + int(60 * max_minutes / pace)))
            if fit != self.fitted:
                schedule.rate.decay_steps.assign(float(max(1, fit * schedule.steps_per_epoch - schedule.warm_steps)))
                log(f"  schedule fitted to --max-minutes {max_minutes:g}: cosine ends after epoch {fit} ({pace:.1f} s per epoch)")
                self.fitted = fit

    return _CB()


def HostValidation(images_u8: np.ndarray, male: np.ndarray, y: np.ndarray):
    """Callback: validation MAE computed on the host after each epoch (for distributed training)."""
    keras = _keras()

    class _CB(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                mae = float(np.mean(np.abs(predict_arrays(self.model, images_u8, male) - y)))
                logs["val_mae"] = logs["val_loss"] = mae

    return _CB()


class TrainError(RuntimeError):
    """Training cannot start or continue as configured (one-line message; the CLI exits 2)."""


@dataclass
class _Prepared:
    """Step 1's output: cached model inputs split by id, as arrays."""

    params: PipelineParams
    train_ids: pd.DataFrame
    val_ids: pd.DataFrame
    x_train: np.ndarray
    x_val: np.ndarray
    male_train: np.ndarray
    male_val: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray


def train(cfg: TrainConfig, log=print) -> dict:
    """Train, pick the best epoch by validation MAE, write the run folder; return metrics.

    Read top-down: prepare the data → build the model → callbacks → fit → write the run folder.
    Raises :class:`TrainError` for a configuration that cannot train; Ctrl-C keeps the last
    finished epoch for ``--resume`` and re-raises KeyboardInterrupt.
    """
    keras = _keras()

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    data = _prepare(cfg, log)
    datasets = _datasets(cfg, data)  # before the model: the seeded augmenter draws first, as the shipped runs did
    steps = math.ceil(len(data.train_ids) / cfg.batch_size)
    model, strategy, schedule = _build(cfg, data, steps, log)
    callbacks = _callbacks(cfg, out, data, strategy, log, schedule)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log(f"training {model.name} ({model.count_params() / 1e6:.1f} M parameters) for up to {cfg.epochs} epochs, {steps} steps each"
        f" ({keras.backend.backend()}{_gpu_note()}) …")
    train_s = _fit(cfg, out, model, datasets, strategy, callbacks, log)
    return _write(cfg, out, model, data, train_s, log)


def _prepare(cfg: TrainConfig, log) -> _Prepared:
    """Labels and cached pipeline outputs (boneage.data), usable images only, split by id."""
    from .data import Prepared, build_cache, split
    from .packed import PackedError, load_packed
    from .preflight import names_packed_inputs

    params = cfg.pipeline_params()
    log(f"preparing images from {cfg.data} (pipeline at {params.frame_width}×{params.frame_height}, model input {params.model_height}×{params.model_width}"
        f"{'' if cfg.input_size == (cfg.image_height, cfg.image_width) else f', resized to {cfg.image_height}×{cfg.image_width} inside the network'}) …")
    t0 = time.time()
    if names_packed_inputs(cfg.data):  # packed inputs (boneage.packed), the rule preflight.training_data applies
        try:
            prep = load_packed(cfg.data, params)
        except PackedError as e:
            raise TrainError(str(e)) from None
        if cfg.limit:
            prep = Prepared(images=prep.images[: cfg.limit], labels=prep.labels.iloc[: cfg.limit].copy())
    else:
        prep = build_cache(cfg.data, params, cache_dir=cfg.cache_dir, workers=cfg.workers, limit=cfg.limit)
    lab = prep.labels
    bad = lab[~lab["ok"]]
    if len(bad):
        log(f"warning: {len(bad)} image(s) unusable and left out, e.g. {bad['error'].iloc[0]}")
    log(f"  {len(lab) - len(bad)} images ready in {time.time() - t0:.0f} s; hand found in {lab['hand_found'].mean():.1%}")
    lab = lab.assign(row=np.arange(len(lab)))[lab["ok"]]
    tr, va = split(lab, cfg.val_fraction)
    if cfg.age_range is not None:  # the split stays the id split; only the range is kept on each side
        lo, hi = cfg.age_range
        tr, va = (d[(d["boneage_months"] >= lo) & (d["boneage_months"] < hi)] for d in (tr, va))
        log(f"  bone age {lo:g}–{hi:g} months only (--age-range)")
    if len(tr) == 0 or len(va) == 0:
        raise TrainError(f"need images on both sides of the split (train {len(tr)}, val {len(va)}); use more data or --val-fraction")
    log(f"  split by id: {len(tr)} train, {len(va)} validation")
    y_train = tr["boneage_months"].to_numpy(float)
    if cfg.teacher:
        y_train = (1.0 - cfg.teacher_weight) * y_train + cfg.teacher_weight * _teacher_months(cfg.teacher, tr["id"])
        log(f"  training targets: {1 - cfg.teacher_weight:g}·label + {cfg.teacher_weight:g}·the teacher's reading ({cfg.teacher})")
    return _Prepared(
        params=params, train_ids=tr, val_ids=va,
        x_train=prep.images[tr["row"].to_numpy()], x_val=prep.images[va["row"].to_numpy()],
        male_train=tr["male"].to_numpy(float), male_val=va["male"].to_numpy(float),
        y_train=y_train, y_val=va["boneage_months"].to_numpy(float),
    )


def _teacher_months(path: str, ids: pd.Series) -> np.ndarray:
    """The teacher's reading of each training id (``--teacher``); TrainError naming what is missing.

    Why a file and not a model: the teacher (an ensemble with all its TTA copies) is read once,
    outside the training loop, and the same targets can seed several students.
    """
    import pandas as pd

    try:
        t = pd.read_csv(path, dtype={"id": str})
    except (OSError, ValueError) as e:
        raise TrainError(f"--teacher {path}: cannot read it as CSV ({e.__class__.__name__}: {e})") from None
    if not {"id", "teacher_months"} <= set(t.columns):
        raise TrainError(f"--teacher {path}: needs columns id and teacher_months (scripts/teacher_readings.py writes them)")
    months = pd.to_numeric(t.set_index("id")["teacher_months"], errors="coerce")
    if months.index.has_duplicates:
        raise TrainError(f"--teacher {path}: an id appears twice")
    got = months.reindex(ids.astype(str)).to_numpy(float)
    missing = ~np.isfinite(got)
    if missing.any():
        raise TrainError(f"--teacher {path}: no finite reading for {int(missing.sum())} of the {len(got)} training images "
                         f"(e.g. id {ids.astype(str).to_numpy()[missing][0]})")
    return got


def _datasets(cfg: TrainConfig, data: _Prepared) -> tuple:
    """(training, validation) ``tf.data`` pipelines over the cached inputs."""
    # the age bins are the true labels', also when the targets are blended with a teacher's readings
    w = age_weights(data.train_ids["boneage_months"].to_numpy(float), cfg.age_balance) if cfg.age_balance > 0 else None
    ds_tr = make_dataset(data.x_train, data.male_train, data.y_train, batch_size=cfg.batch_size, training=True,
                         seed=cfg.seed, augment_strength=cfg.augment_strength, weights=w)
    ds_va = make_dataset(data.x_val, data.male_val, data.y_val, batch_size=cfg.batch_size, training=False)
    return ds_tr, ds_va


def _build(cfg: TrainConfig, data: _Prepared, steps: int, log):
    """The model (inside the distribution strategy's scope), its warm-up + cosine schedule, compiled."""
    from .model import build_model, compile_model, training_view

    strategy = get_strategy(cfg.strategy)
    scope = strategy.scope() if strategy is not None else _nullcontext()
    mean, sd = float(data.y_train.mean()), float(data.y_train.std() or 1.0)
    if cfg.init_from:
        # The output scaling is a constant of the graph, not a weight: a warm start keeps the
        # source's, or its head would answer on another scale (seen: a fine-tune on 200 older
        # thumbnails started 18 months low).
        mean, sd = _source_scaling(Path(cfg.init_from), log) or (mean, sd)
    with scope:
        model = build_model(
            cfg.backbone, (cfg.image_height, cfg.image_width), weights="imagenet" if cfg.pretrained else None,
            trainable_fraction=cfg.trainable_fraction, mean_months=mean, sd_months=sd, input_size=cfg.input_size,
            head=cfg.head,
        )
        warm = max(1, int(cfg.warmup_epochs * steps))
        total = max(warm + 1, cfg.epochs * steps)
        lr = cosine_schedule(cfg.learning_rate, total_steps=total, warm_steps=warm)
        if cfg.init_from:
            _init_weights(model, Path(cfg.init_from), log)
        model = training_view(model)  # the model itself for a regression head
        compile_model(model, learning_rate=lr, weight_decay=cfg.weight_decay, ema_momentum=cfg.ema_momentum)
    return model, strategy, _Schedule(lr, steps, warm)


def _callbacks(cfg: TrainConfig, out: Path, data: _Prepared, strategy, log, schedule: _Schedule) -> list:
    """Backup (resume), EMA swap, host validation when distributed, best checkpoint, early stop, logs.

    Order matters: the backup keeps the raw weights; then the EMA weights (if any) are swapped
    in, so host validation, the best checkpoint and early stopping all judge the average.
    """
    keras = _keras()

    backup = out / "backup"
    if cfg.resume and not backup.exists():
        log(f"note: --resume given but {backup} holds no interrupted run; starting fresh")
    callbacks = [keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch", delete_checkpoint=True)]
    if cfg.ema_momentum > 0:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if strategy is not None:
        # Distributed validation splits a final partial batch unevenly across replicas, which some
        # ops refuse; validate on the host instead (same numbers, logged as val_mae/val_loss).
        callbacks.append(HostValidation(data.x_val, data.male_val, data.y_val))
    return callbacks + [
        keras.callbacks.ModelCheckpoint(str(out / CHECKPOINT_FILE), monitor="val_mae", mode="min", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=cfg.patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=cfg.resume),
        EpochReport(cfg.epochs, log, cfg.max_minutes, schedule),
    ] + ([keras.callbacks.TensorBoard(str(out / "tensorboard"), write_graph=False, update_freq="epoch")]
         if keras.backend.backend() == "tensorflow" else [])  # its summary writer is TensorFlow's


def _fit(cfg: TrainConfig, out: Path, model, datasets: tuple, strategy, callbacks: list, log) -> float:
    """``model.fit``, then the best epoch's weights loaded back; returns the training seconds."""
    ds_tr, ds_va = datasets
    t0 = time.time()
    try:
        model.fit(ds_tr, validation_data=None if strategy is not None else ds_va, epochs=cfg.epochs,
                  callbacks=callbacks, shuffle=False, verbose=1 if _tty() else 2)
    except KeyboardInterrupt:
        log(f"\ninterrupted: the last finished epoch is kept in {out / 'backup'}; continue with the same command plus --resume")
        raise
    train_s = time.time() - t0
    if (out / CHECKPOINT_FILE).exists():
        model.load_weights(str(out / CHECKPOINT_FILE))
    return train_s


def _write(cfg: TrainConfig, out: Path, model, data: _Prepared, train_s: float, log) -> dict:
    """The run folder: the bundle (model read back: what we ship is what we measure), validation
    predictions, metrics; returns the metrics."""
    import pandas as pd

    from .metrics import summarise
    from .model import load_model, serving_view
    from .pipeline import PIPELINE_VERSION

    run = bundle.Bundle(out)
    view = serving_view(model)
    # A fresh, uncompiled Model over the same layers: the file holds the weights, not the optimizer's
    # two moments as well (16 MB instead of 60 for the 160×128 network; a lent GPU machine gives back
    # files of at most 16 MiB). --resume reads backup/, not this file.
    keras = _keras()
    keras.Model(view.inputs, view.output, name=view.name).save(run.model_file)
    model = load_model(run.model_file)
    pred = predict_arrays(model, data.x_val, data.male_val, batch_size=64)
    vp = data.val_ids[["id", "boneage_months", "male"]].copy()
    vp["predicted_months"] = pred
    vp.to_csv(out / "val_predictions.csv", index=False)
    metrics = summarise(vp)
    metrics["trivial_baseline_mae"] = float(np.mean(np.abs(data.y_val - data.y_train.mean())))
    hist = pd.read_csv(out / "history.csv")
    images_per_s = len(data.train_ids) * len(hist) / max(train_s, 1e-9)
    metrics.update({
        "n_train": int(len(data.train_ids)), "n_val": int(len(data.val_ids)), "epochs_run": int(len(hist)),
        "best_epoch": int(hist["val_mae"].idxmin()) + 1 if len(hist) else None,
        "train_seconds": round(train_s, 1), "train_images_per_second": round(images_per_s, 1),
        "hardware": f"{platform.machine()} {os.cpu_count()} CPU cores" + _gpu_note(),
    })
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    bundle.write_meta(run, bundle.new_meta(
        model_version=f"{cfg.backbone}-{cfg.image_height}x{cfg.image_width}-p{PIPELINE_VERSION}-{time.strftime('%Y%m%d')}",
        backbone=cfg.backbone, trainable_fraction=cfg.trainable_fraction, image_height=cfg.image_height,
        image_width=cfg.image_width, pipeline=data.params, label_mean_months=float(data.y_train.mean()),
        label_sd_months=float(data.y_train.std()), val_residual_sd_months=float(np.std(pred - data.y_val)),
        val_mae_months=metrics["mae"], trained_on=str(cfg.data)))
    log(f"done: validation MAE {metrics['mae']:.2f} months (trivial baseline {metrics['trivial_baseline_mae']:.2f}); wrote {out}")
    return metrics


def _source_scaling(src: Path, log) -> tuple[float, float] | None:
    """(mean, sd) of a warm-start source's output layer (``bone_age_months``), read from its
    ``.keras`` file (a run folder's ``model.keras``); None for a bare ``.weights.h5``.

    Read from the archive's ``config.json`` (the layer's ``offset`` and ``scale``) rather than by
    loading the model, which :func:`_init_weights` does anyway: a second load cost a few seconds
    at every warm start.
    """
    import json
    import zipfile

    f = bundle.Bundle(src).model_file if src.is_dir() else src
    if f.suffix != ".keras" or not f.is_file():
        log(f"  {src}: no .keras file to read the output scaling from; using this data's label mean and SD")
        return None
    try:
        with zipfile.ZipFile(f) as z:
            found = _layer_config(json.loads(z.read("config.json")), "bone_age_months")
        if found is None:
            raise KeyError("bone_age_months")
        return float(found["offset"]), float(found["scale"])
    except Exception as e:  # noqa: BLE001 - a file Keras cannot read fails in _init_weights with its own line
        log(f"  {f}: output scaling not readable ({e.__class__.__name__}); using this data's label mean and SD")
        return None


def _layer_config(node, name: str) -> dict | None:
    """The ``config`` of the layer called ``name`` anywhere in a Keras config tree (nested models included)."""
    if isinstance(node, dict):
        cfg = node.get("config")
        if isinstance(cfg, dict) and cfg.get("name") == name and "class_name" in node:
            return cfg
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _layer_config(child, name)
        if found is not None:
            return found
    return None


def _init_weights(model, src: Path, log) -> None:
    """Warm start from an earlier model of the same architecture (fine-tuning, or your own data).

    Weights travel through a ``.weights.h5`` file, which Keras matches by layer structure, so
    a source trained with a different frozen/trainable split loads all the same. A model whose
    head differs from its source's (``--head distribution`` from a regression model) takes every
    layer the two share by name and shape, backbone included, and starts the new head afresh.
    """
    import tempfile

    from .model import head_of, load_model

    if src.is_dir():
        # A finished run's model.keras holds its best checkpoint's weights and says which head it
        # has; the bare checkpoint is for a run stopped before writing it.
        shipped = bundle.Bundle(src).model_file
        src = shipped if shipped.exists() else src / CHECKPOINT_FILE
    if not src.exists():
        raise TrainError(f"--init-from {src}: not found")
    if src.suffix == ".keras":
        source = load_model(src)
        if head_of(source) != head_of(model):
            _copy_shared_layers(model, source, src, log)
            return
        tmp = Path(tempfile.mkdtemp()) / "init.weights.h5"
        source.save_weights(str(tmp))
        src = tmp
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        # Keras 3.15 loads a file of another structure container by container, warning "Skipping
        # nested container … Affected layers will retain their freshly-initialized weights" for
        # each it cannot match (100 for a tiny network into EfficientNet-Lite0) before it may or may
        # not raise: a partial warm start that would look like a whole one. Either is refused.
        warnings.simplefilter("always")
        try:
            model.load_weights(str(src))
        except Exception as e:  # noqa: BLE001 - shape/structure mismatch: say so in one line
            raise TrainError(f"--init-from {src}: weights do not fit this architecture ({e.__class__.__name__})") from None
    skipped = [w for w in caught if "Skipping nested container" in str(w.message)]
    if skipped:
        raise TrainError(f"--init-from {src}: weights do not fit this architecture "
                         f"({len(skipped)} nested parts of the network found no weights in the file)")
    for w in caught:  # anything else Keras said is passed on, as it would have been
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    log(f"  initialised from {src}")


def _copy_shared_layers(model, source, src: Path, log) -> None:
    """Copy the weights of every layer that ``model`` and ``source`` share by name and shapes."""
    theirs = {layer.name: layer for layer in source.layers}
    copied, fresh = [], []
    for layer in model.layers:
        mine = layer.get_weights()
        if not mine:
            continue
        other = theirs.get(layer.name)
        if other is not None and [w.shape for w in other.get_weights()] == [w.shape for w in mine]:
            layer.set_weights(other.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    if not copied or len(copied) < len(fresh):  # e.g. another backbone: nothing worth keeping
        raise TrainError(f"--init-from {src}: too few layers in common with this architecture "
                         f"({len(copied)} shared, {len(fresh)} not: {', '.join(fresh[:4])})")
    log(f"  initialised {len(copied)} layers from {src}; new: {', '.join(fresh)}")


def predict_arrays(model, images_u8: np.ndarray, male: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Batched forward pass over cached uint8 model inputs (no augmentation).

    ``convert_to_numpy``, not ``np.asarray``: under torch the output is a GPU tensor that
    requires grad, which numpy cannot read (seen in the torch smoke test of scripts/train_gpu.sh).
    """
    keras = _keras()
    out = []
    for i in range(0, len(images_u8), batch_size):
        y = keras.ops.convert_to_numpy(model(cached_inputs(images_u8[i : i + batch_size], male[i : i + batch_size]), training=False))
        out.append(y.reshape(len(y), -1)[:, 0])  # months first (a distribution head's training view adds its bins)
    return np.concatenate(out) if out else np.zeros(0)


def cached_inputs(images_u8: np.ndarray, male: np.ndarray) -> dict:
    """The model's input dict for cached uint8 pipeline outputs (N, H, W) and sexes (N,): the
    images in [0, 1] with a channel axis, both float32 (what :func:`make_dataset`'s ``tf.data``
    path makes inside TensorFlow)."""
    return {"image": images_u8.astype("float32")[..., None] / 255.0, "male": np.asarray(male, "float32")[:, None]}


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()


def _gpu_note() -> str:
    try:
        keras = _keras()

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            g = tf.config.list_physical_devices("GPU")
            return f", {len(g)} GPU(s)" if g else ", no GPU"
        if keras.backend.backend() == "torch":
            # Where Keras puts its tensors, said outright: the first GPU run (2026-11-29) went at
            # CPU speed and its logs could not tell on which device.
            import torch
            from keras.src.backend.torch.core import get_device

            d = str(get_device())
            return f", torch on {d}" + (f" ({torch.cuda.get_device_name(0)})" if d.startswith("cuda") else "")
    except Exception:  # noqa: BLE001
        pass
    return ""


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
