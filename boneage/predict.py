"""Prediction: ``Predictor.load(path=None).predict(image_or_path, sex="F")``.

One path for every caller (CLI, app, evaluation): loader → :func:`boneage.pipeline.run_pipeline`
with the parameters the model was trained with → model with test-time augmentation (TTA).
The model is loaded once; inference is serialised by a lock so one Predictor can be shared by
all Streamlit sessions.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .bundle import BundleMeta
from .checks import ParameterError, check_int
from .io import ImageError, ImageMeta, LoadedImage, load_array, load_image
from .pipeline import PipelineParams, PipelineResult, run_pipeline
from .vocab import Sex, SexError, format_age, model_input, parse_optional_sex

DEFAULT_TTA = 8
MAX_TTA = 64  # copies per image; more adds time, not accuracy (the spread settles by 8)
LOW_CONFIDENCE_TTA_SD = 6.0  # months of disagreement between TTA copies that earns a warning
class PredictionError(ValueError):
    """Input that cannot be predicted on (one-line message), e.g. sex missing."""


@dataclass
class Prediction:
    bone_age_months: float
    uncertainty_months: float  # 1 SD: validation residual SD ⊕ TTA spread on this image
    tta_sd_months: float
    sex: str
    model_version: str
    warnings: list[str]
    attention_map: np.ndarray  # on the model input's grid, [0, 1]
    pipeline: PipelineResult
    image_meta: ImageMeta | None = None
    clinical: Any = None  # boneage.clinical.ClinicalInterpretation | None
    tta_predictions: list[float] = field(default_factory=list)

    @property
    def bone_age_years_text(self) -> str:
        return format_age(self.bone_age_months)

    def heatmap(self) -> np.ndarray:
        """Attention resampled onto the aligned (canonical) image, [0, 1], kept to the hand."""
        hm = self.pipeline.to_canonical(self.attention_map)
        mask = self.pipeline.stages.get("aligned_mask")
        if self.pipeline.hand_found and mask is not None and mask.shape == hm.shape:
            k = max(3, int(min(mask.shape) / 40) | 1)
            soft = cv2.GaussianBlur(cv2.dilate(mask, np.ones((k, k), np.uint8)).astype(np.float32) / 255.0, (k, k), 0)
            hm = hm * soft
        return np.clip(hm, 0.0, 1.0)

    def overlay_rgb(self, alpha: float = 0.45, rois: bool = True) -> np.ndarray:
        """The aligned radiograph with the attention heatmap and ROI boxes (uint8 RGB)."""
        from .pipeline import draw_rois

        base = self.pipeline.stages["canonical"]
        rgb = draw_rois(base, self.pipeline.rois) if rois else cv2.cvtColor(base, cv2.COLOR_GRAY2RGB)
        hm = self.heatmap()
        if hm.max() > 0:
            hm = hm / hm.max()
        colour = cv2.cvtColor(cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        a = (alpha * hm)[..., None]
        return (rgb * (1 - a) + colour * a).astype(np.uint8)

    def to_dict(self) -> dict:
        """JSON-friendly summary (the CLI's ``--json`` line)."""
        d = {
            "bone_age_months": round(self.bone_age_months, 1),
            "bone_age_years": round(self.bone_age_months / 12.0, 2),
            "uncertainty_months": round(self.uncertainty_months, 1),
            "tta_sd_months": round(self.tta_sd_months, 2),
            "sex": self.sex,
            "warnings": list(self.warnings),
            "model_version": self.model_version,
            "pipeline": {k: v for k, v in self.pipeline.summary().items() if k in
                         ("rotation_deg", "laterality", "mirrored", "inverted", "hand_found", "rois")},
        }
        if self.image_meta is not None:
            d["source"] = self.image_meta.source
        if self.clinical is not None:
            d.update(self.clinical.to_dict())
        return d


def _normalise_sex(sex) -> Sex | None:
    """'M'/'F' by the package's one parser (:func:`boneage.vocab.parse_sex`), None when not given."""
    try:
        return parse_optional_sex(sex)
    except SexError:
        raise PredictionError(f"sex must be M or F, got {sex!r}") from None


class Predictor:
    """A loaded model bundle (``model.keras`` + ``meta.json``), ready to predict."""

    def __init__(self, model, meta: BundleMeta, path: Path):
        from .model import with_attention_output

        self.model = model
        self.meta = meta
        self.path = path
        self.params = meta.pipeline
        self.model_version = meta.model_version
        self.residual_sd = meta.labels.val_residual_sd_months
        self._net = with_attention_output(model)
        self._fn = self._compile(self._net)
        self._lock = threading.Lock()

    @staticmethod
    def _compile(net):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.function(lambda x: net(x, training=False), reduce_retracing=True)
        return lambda x: net(x, training=False)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Predictor":
        """Load ``path`` (a run folder or a ``.keras`` file with ``meta.json`` beside it).

        Default: ``$BONEAGE_MODEL`` if set, else the shipped model in ``models/`` (see :mod:`boneage.bundle`).
        """
        from . import bundle

        try:
            model, meta, b = bundle.load(path)
        except bundle.BundleError as e:
            raise PredictionError(str(e)) from None
        return cls(model, meta, Path(path) if path and str(path).endswith(".keras") else b.model_file)

    def _run(self, images: np.ndarray, male: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model on a batch: ``male`` is one value for all rows or one per row."""
        m = np.broadcast_to(np.asarray(male, np.float32).reshape(-1, 1), (len(images), 1))
        x = {"image": np.asarray(images, np.float32), "male": np.ascontiguousarray(m)}
        with self._lock:
            months, att = self._fn(x)
        return np.asarray(months).reshape(-1), np.asarray(att)[..., 0]

    def read(self, image: str | Path | bytes | np.ndarray | LoadedImage, sex, *, tta: int | None = None,
             name: str | None = None, params: PipelineParams | dict | None = None) -> Prediction:
        """The reading alone: bone age, uncertainty, attention and pipeline for one radiograph and a sex.

        No clinical inputs, no interpretation: the bone age depends on the image and the sex only.
        """
        n, params = self._checked(tta, params)
        pixels, meta = _pixels_and_meta(image, name)
        sx = _normalise_sex(sex)
        if sx is None:
            raise PredictionError("sex is required (M or F): the model's reference differs for boys and girls")
        return self._read(pixels, meta, sx, n, params)

    def predict(
        self,
        image: str | Path | bytes | np.ndarray | LoadedImage,
        sex: str | None = None,
        *,
        tta: int | None = None,
        chronological_age_months: float | None = None,
        birth_date: _dt.date | None = None,
        study_date: _dt.date | None = None,
        height_cm: float | None = None,
        father_height_cm: float | None = None,
        mother_height_cm: float | None = None,
        name: str | None = None,
        params: PipelineParams | dict | None = None,
        fill_from_tags: bool = True,
    ) -> Prediction:
        """The reading (:meth:`read`), interpreted with the clinical inputs that
        :func:`boneage.clinical_inputs.resolve` picks from what was typed and the DICOM tags.

        Tags never cost the bone age: implausible ones are ignored with a warning, and typed values
        win over them (with a warning where they disagree). Raises ImageError / PredictionError /
        ClinicalInputError (bad typed inputs) / ParameterError with a one-line message.

        ``image``: a path, bytes, a binary file, a :class:`LoadedImage`, or an array (checked and
        normalised by :func:`boneage.io.load_array`, as a file would be). ``tta``: 1 to MAX_TTA
        copies (0, -5 and 1.5 used to become 1 silently). ``params``: PipelineParams or a dict.
        """
        n, params = self._checked(tta, params)
        pixels, meta = _pixels_and_meta(image, name)
        inputs, notes = self.resolve_inputs(
            meta, sex, fill_from_tags=fill_from_tags, chronological_age_months=chronological_age_months,
            birth_date=birth_date, study_date=study_date, height_cm=height_cm, father_height_cm=father_height_cm,
            mother_height_cm=mother_height_cm)
        prep = _prepare_pixels(pixels, meta, n, params)
        months, att = self._run(prep.batch, model_input(inputs.sex))
        return self.finish(prep, inputs, notes, months, att)

    @staticmethod
    def resolve_inputs(meta: ImageMeta | None, sex=None, *, fill_from_tags: bool = True, **clinical):
        """``(inputs, notes)`` from what was typed and the DICOM tags (:func:`boneage.clinical_inputs.resolve`);
        PredictionError when no sex is known, ClinicalInputError for bad typed inputs."""
        from .clinical_inputs import ClinicalInputs, resolve

        typed = ClinicalInputs(sex=_normalise_sex(sex), **clinical)
        inputs, notes = resolve(typed, meta, fill_from_tags=fill_from_tags)
        if inputs.sex is None:
            raise PredictionError("sex is required (M or F): the model's reference differs for boys and girls")
        return inputs, notes

    def finish(self, prep: "Prepared", inputs, notes: list[str], months: np.ndarray, att: np.ndarray) -> Prediction:
        """The interpreted :class:`Prediction` from the model's outputs on ``prep``'s TTA copies."""
        from .clinical import interpret

        pred = self._reading(prep, inputs.sex, months, att)
        pred.warnings.extend(notes)
        if inputs.wants_interpretation():
            pred.clinical = interpret(pred.bone_age_months, inputs.sex, **inputs.interpret_kwargs())
        return pred

    def warm_up(self) -> None:
        """One prediction on a synthetic hand-sized image, so the first real one is not slow.

        The first call traces the cached ``tf.function`` (seconds on 2 cores); ``boneage serve``
        and the app run this at start, before anyone waits on it.
        """
        h, w = 1040, 800
        yy, xx = np.mgrid[0:h, 0:w]
        blob = ((xx - w / 2) / (w / 3)) ** 2 + ((yy - h / 2) / (h / 2.5)) ** 2 < 1
        self.read(np.where(blob, 0.8, 0.05).astype(np.float32), "F")

    def predict_prepared(self, items: list["Prepared"], sexes: list[str], chunk: int = 64
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Model outputs for many prepared images in as few model calls as possible (batch scoring).

        The TTA copies of all images are concatenated and run in chunks of about ``chunk`` rows:
        one call of 64 rows costs far less than eight of 8 (``bench/predict.py``: 240 images/s
        batched against ≈ 25 per 8-copy call). Returns ``(months, attention)`` per item, in order.
        """
        out: list[tuple[np.ndarray, np.ndarray]] = []
        group: list[int] = []

        def flush():
            if not group:
                return
            imgs = np.concatenate([items[i].batch for i in group])
            male = np.concatenate([np.full(len(items[i].batch), model_input(sexes[i]), np.float32)
                                   for i in group])
            months, att = self._run(imgs, male)
            k = 0
            for i in group:
                n = len(items[i].batch)
                out.append((months[k:k + n], att[k:k + n]))
                k += n
            group.clear()

        rows = 0
        for i, it in enumerate(items):
            if group and rows + len(it.batch) > chunk:
                flush()
                rows = 0
            group.append(i)
            rows += len(it.batch)
        flush()
        return out

    def _checked(self, tta, params) -> tuple[int, PipelineParams]:
        n = DEFAULT_TTA if tta is None else check_int(tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")
        return n, (self.params if params is None else PipelineParams.coerce(params))

    def _read(self, pixels: np.ndarray, meta: ImageMeta | None, sx: Sex, n: int, params: PipelineParams) -> Prediction:
        prep = _prepare_pixels(pixels, meta, n, params)
        months, att = self._run(prep.batch, model_input(sx))
        return self._reading(prep, sx, months, att)

    def _reading(self, prep: "Prepared", sx: Sex, months: np.ndarray, att: np.ndarray) -> Prediction:
        """The reading (no interpretation) from the model's outputs on ``prep``'s TTA copies."""
        meta, res, n = prep.meta, prep.pipeline, len(months)
        if not np.isfinite(months).all():
            raise PredictionError(
                f"model {self.model_version} returned a non-finite bone age (NaN or infinity); its weights are broken "
                "(e.g. trained with a non-finite learning rate): retrain it or use the shipped model"
            )
        est = float(np.mean(months))
        tta_sd = float(np.std(months)) if n > 1 else 0.0
        unc = math.sqrt(self.residual_sd**2 + tta_sd**2)
        warnings = list(meta.warnings if meta else []) + list(res.warnings)
        if tta_sd > LOW_CONFIDENCE_TTA_SD:
            warnings.append(f"low confidence: slightly perturbed copies of the image disagree by ±{tta_sd:.1f} months")
        if est < 0 or est > 228:
            warnings.append("estimate lies outside the training range (0–19 years); clipped")
            est = float(np.clip(est, 0, 228))
        a = att[0]
        a = (a - a.min()) / (a.max() - a.min() + 1e-9)
        return Prediction(
            bone_age_months=est, uncertainty_months=unc, tta_sd_months=tta_sd, sex=sx, model_version=self.model_version,
            warnings=warnings, attention_map=a.astype(np.float32), pipeline=res, image_meta=meta,
            tta_predictions=[float(v) for v in months],
        )


@dataclass
class Prepared:
    """One radiograph read and prepared for the model: everything before the network.

    Separate from the model call so batch scoring can prepare in worker processes (decode and
    pipeline are CPU-bound, about 130 ms for a 2000×2500 PNG) while the main process runs the
    model on many images at once.
    """

    pipeline: PipelineResult
    meta: ImageMeta | None
    batch: np.ndarray  # (n, H, W, 1) float32: the TTA copies of the model input

    def slim(self, keep: tuple[str, ...] = ("canonical", "aligned_mask")) -> "Prepared":
        """A copy holding only the stages ``keep`` (overlay and heatmap need these two): less to
        send between processes (a full-size pipeline keeps ≈ 10 MB of intermediate images)."""
        import dataclasses

        stages = {k: v for k, v in self.pipeline.stages.items() if k in keep}
        return Prepared(dataclasses.replace(self.pipeline, stages=stages), self.meta, self.batch)


def prepare(image, params: PipelineParams | dict, *, tta: int | None = None, name: str | None = None) -> Prepared:
    """Read ``image`` (ImageError / ParameterError on bad input), run the pipeline, make the TTA copies."""
    n = DEFAULT_TTA if tta is None else check_int(tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")
    pixels, meta = _pixels_and_meta(image, name)
    return _prepare_pixels(pixels, meta, n, PipelineParams.coerce(params))


def _prepare_pixels(pixels: np.ndarray, meta: ImageMeta | None, n: int, params: PipelineParams) -> Prepared:
    from .tta import tta_batch

    res = run_pipeline(pixels, params)
    return Prepared(pipeline=res, meta=meta, batch=tta_batch(res.model_input, n=n))


def _pixels_and_meta(image, name: str | None) -> tuple[np.ndarray, ImageMeta | None]:
    if isinstance(image, LoadedImage):
        return image.pixels, image.meta
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(image, "read"):
        loaded = load_image(image, name=name)
        return loaded.pixels, loaded.meta
    # arrays (and anything else) get the loader's checks: shape, dtype, NaN/inf, blank
    return load_array(image, name=name or "array").pixels, None


__all__ = ["Predictor", "Prediction", "PredictionError", "ImageError", "ParameterError", "Prepared", "prepare"]
