"""Prediction: ``Predictor.load(path=None).predict(image_or_path, sex="F")``.

One path for every caller (CLI, app, evaluation): loader → :func:`boneage.pipeline.run_pipeline`
with the parameters the model was trained with → model with test-time augmentation (TTA).
The model is loaded once; inference is serialised by a lock so one Predictor can be shared by
all Streamlit sessions.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .checks import ParameterError, check_int
from .io import ImageError, ImageMeta, LoadedImage, load_array, load_image
from .paths import MODELS_DIR
from .pipeline import PipelineParams, PipelineResult, run_pipeline
from .vocab import Sex, SexError, format_age, model_input, parse_optional_sex

DEFAULT_TTA = 8
MAX_TTA = 64  # copies per image; more adds time, not accuracy (the spread settles by 8)
LOW_CONFIDENCE_TTA_SD = 6.0  # months of disagreement between TTA copies that earns a warning
MODEL_FILE = "model.keras"
META_FILE = "meta.json"


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


def _read_meta(meta_file: Path) -> dict:
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionError(f"{meta_file}: cannot read it ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise PredictionError(f"{meta_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict):
        raise PredictionError(f"{meta_file}: expected a JSON object, found {type(meta).__name__}")
    return meta


def _check_bundle(model, meta: dict, path: Path) -> tuple[PipelineParams, float]:
    """The bundle's pipeline settings and residual SD, checked against the network itself.

    A ``meta.json`` that does not belong to the model used to surface as a multi-line TensorFlow
    trace at the first prediction (input shape mismatch); now it is one line at load time.
    """
    meta_file = path.parent / META_FILE
    try:
        params = PipelineParams.from_dict(meta.get("pipeline"))
    except ParameterError as exc:
        raise PredictionError(f"{meta_file}: pipeline settings are invalid ({exc})") from None
    try:
        from .checks import check_float

        residual_sd = check_float(meta.get("val_residual_sd_months", 0.0), "val_residual_sd_months", lo=0.0, hi=240.0)
    except ParameterError as exc:
        raise PredictionError(f"{meta_file}: {exc}") from None
    shapes = {}
    for t in getattr(model, "inputs", None) or []:
        name = str(getattr(t, "name", "")).split(":")[0]
        shapes[name] = tuple(getattr(t, "shape", ()) or ())
    image_shape = shapes.get("image")
    if image_shape and len(image_shape) >= 3 and None not in image_shape[1:3]:
        want = (int(image_shape[1]), int(image_shape[2]))
        got = (params.model_height, params.model_width)
        if want != got:
            raise PredictionError(
                f"{meta_file} does not match {path.name}: the network takes {want[0]}×{want[1]} images but the "
                f"bundle's pipeline makes {got[0]}×{got[1]}; use the meta.json saved with this model"
            )
    return params, residual_sd


class Predictor:
    """A loaded model bundle (``model.keras`` + ``meta.json``), ready to predict."""

    def __init__(self, model, meta: dict, path: Path):
        from .model import with_attention_output

        self.model = model
        self.meta = meta
        self.path = path
        self.params, self.residual_sd = _check_bundle(model, meta, path)
        self.model_version = str(meta.get("model_version", path.stem))
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

        Default: ``$BONEAGE_MODEL`` if set, else the shipped model in ``models/``.
        """
        from .model import load_model

        p = Path(path or os.environ.get("BONEAGE_MODEL") or MODELS_DIR)
        model_file = p / MODEL_FILE if p.is_dir() else p
        meta_file = model_file.parent / META_FILE
        if not model_file.is_file():
            raise PredictionError(f"no model at {model_file}; train one with `boneage train` or pass --model")
        meta = _read_meta(meta_file) if meta_file.is_file() else {}
        try:
            model = load_model(model_file)
        except Exception as exc:  # noqa: BLE001 - Keras/TF raise anything from ValueError to their own types
            first = " ".join(str(exc).split())[:160] or exc.__class__.__name__
            raise PredictionError(f"{model_file}: cannot load the model ({first})") from None
        return cls(model, meta, model_file)

    def _run(self, images: np.ndarray, male: float) -> tuple[np.ndarray, np.ndarray]:
        x = {"image": images.astype(np.float32), "male": np.full((len(images), 1), male, np.float32)}
        with self._lock:
            months, att = self._fn(x)
        return np.asarray(months).reshape(-1), np.asarray(att)[..., 0]

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
        params: PipelineParams | None = None,
    ) -> Prediction:
        """Bone age for one radiograph. Raises ImageError / PredictionError / ClinicalInputError /
        ParameterError with a one-line message for bad input.

        ``image``: a path, bytes, a binary file, a :class:`LoadedImage`, or an array (checked and
        normalised by :func:`boneage.io.load_array`, as a file would be). ``tta``: 1 to MAX_TTA
        copies (0, -5 and 1.5 used to become 1 silently). ``params``: PipelineParams or a dict.
        """
        from .augment import tta_batch

        n = DEFAULT_TTA if tta is None else check_int(tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")
        params = self.params if params is None else PipelineParams.coerce(params)
        meta: ImageMeta | None = None
        if isinstance(image, LoadedImage):
            pixels, meta = image.pixels, image.meta
        elif isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(image, "read"):
            loaded = load_image(image, name=name)
            pixels, meta = loaded.pixels, loaded.meta
        else:  # arrays (and anything else) get the loader's checks: shape, dtype, NaN/inf, blank
            pixels = load_array(image, name=name or "array").pixels
        sx = _normalise_sex(sex) or _normalise_sex(meta.sex if meta else None)
        if sx is None:
            raise PredictionError("sex is required (M or F): the model's reference differs for boys and girls")
        if meta is not None:
            birth_date = birth_date or meta.birth_date
            study_date = study_date or meta.study_date
            if chronological_age_months is None and birth_date is None and meta.patient_age_months is not None:
                chronological_age_months = meta.patient_age_months

        res = run_pipeline(pixels, params)
        batch = tta_batch(res.model_input, n=n)
        months, att = self._run(batch, model_input(sx))
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
        clin = None
        if any(v is not None for v in (chronological_age_months, birth_date, study_date, height_cm,
                                        father_height_cm, mother_height_cm)):
            from .clinical import interpret

            clin = interpret(est, sx, chronological_age_months=chronological_age_months, birth_date=birth_date,
                             study_date=study_date, height_cm=height_cm, father_height_cm=father_height_cm,
                             mother_height_cm=mother_height_cm)
        a = att[0]
        a = (a - a.min()) / (a.max() - a.min() + 1e-9)
        return Prediction(
            bone_age_months=est, uncertainty_months=unc, tta_sd_months=tta_sd, sex=sx, model_version=self.model_version,
            warnings=warnings, attention_map=a.astype(np.float32), pipeline=res, image_meta=meta, clinical=clin,
            tta_predictions=[float(v) for v in months],
        )


__all__ = ["Predictor", "Prediction", "PredictionError", "ImageError", "ParameterError"]
