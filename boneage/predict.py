"""Prediction: ``Predictor.load(path=None).predict(image_or_path, sex="F")``.

One path for every caller (CLI, app, evaluation): loader → :func:`boneage.pipeline.run_pipeline`
with the parameters the model was trained with → model with test-time augmentation (TTA).
The model is loaded once; inference is serialised by a lock so one Predictor can be shared by
all Streamlit sessions.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .acceptance import AcceptanceCheck, NotAcceptedError, Verdict, image_scores, model_scores, pipeline_scores, unchecked
from .bundle import BundleError, BundleMeta, TTASpec
from .intervals import IntervalTable
from .checks import ParameterError, check_int
from .io import ImageError, ImageMeta, LoadedImage, helper_thread, load_array, load_image
from .pipeline import PipelineParams, PipelineResult, run_pipeline
from .vocab import Sex, SexError, format_age, model_input, parse_optional_sex

from .bundle import MAX_TTA_COPIES as MAX_TTA  # copies per image: one per fixed transform (boneage.tta)
LOW_CONFIDENCE_TTA_SD = 6.0  # months of disagreement between TTA copies that earns a warning
ATTENTION_FLOOR = 0.5  # attention below this share of its peak is drawn transparent
SIDE_THREAD_PIXELS = 1_000_000  # from this size the image scores run beside the pipeline (_prepare_pixels)


def attention_key(rgb: np.ndarray, floor: float = ATTENTION_FLOOR) -> np.ndarray:
    """The image with a colour key strip on its right: the overlay's scale, in words."""
    h, w = rgb.shape[:2]
    sw = max(60, w // 7)
    strip = np.full((h, sw, 3), 255, np.uint8)
    top, bottom = int(0.12 * h), int(0.88 * h)
    bx0, bx1 = sw // 6, sw // 6 + max(8, sw // 5)
    ramp = np.linspace(1.0, 0.0, bottom - top)[:, None]
    col = cv2.applyColorMap((255 * (0.35 + 0.65 * ramp)).astype(np.uint8), cv2.COLORMAP_INFERNO)
    strip[top:bottom, bx0:bx1] = cv2.cvtColor(np.repeat(col, bx1 - bx0, axis=1), cv2.COLOR_BGR2RGB)
    fs = max(0.3, sw / 230)
    th = max(1, int(round(fs * 1.6)))
    lh = int(cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, fs, th)[0][1] * 1.8)
    lines = [("most", top - 2 * lh + lh // 2), ("attention", top - lh // 2),
             (f"below {floor:.0%}", bottom + lh), ("of peak:", bottom + 2 * lh), ("clear", bottom + 3 * lh)]
    for text, y in lines:
        cv2.putText(strip, text, (4, max(lh, min(h - 4, y))), cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), th, cv2.LINE_AA)
    return np.concatenate([rgb, strip], axis=1)


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
    acceptance: Verdict | None = None  # the acceptance check's verdict (boneage.acceptance)
    interval_90_months: tuple[float, float] | None = None  # calibrated 90 % interval (boneage.intervals)

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

    def plain_rgb(self, rois: bool = True) -> np.ndarray:
        """The aligned radiograph (with the ROI boxes), without the attention map (uint8 RGB)."""
        from .pipeline import draw_rois

        base = self.pipeline.stages["canonical"]
        return draw_rois(base, self.pipeline.rois) if rois else cv2.cvtColor(base, cv2.COLOR_GRAY2RGB)

    def overlay_rgb(self, alpha: float = 0.65, rois: bool = True, key: bool = True,
                    floor: float = ATTENTION_FLOOR) -> np.ndarray:
        """The aligned radiograph with the model's attention where it is high, and a colour key.

        The old overlay painted the whole map in JET at a fixed opacity: the broad attention
        washed the hand red (red = *most*) while the eye-catching blues and greens marked less.
        Here attention below ``floor`` × its peak is fully transparent, opacity grows with
        attention above it, and the colour map is sequential (inferno: dark → bright yellow =
        most attention), so the brightest colour is where the model looked most. The key on the
        right says so (``key=False`` leaves it out).
        """
        rgb = self.plain_rgb(rois).astype(np.float32)
        hm = self.heatmap()
        if hm.max() > 0:
            hm = hm / hm.max()
        a = np.clip((hm - floor) / max(1e-6, 1.0 - floor), 0.0, 1.0)
        colour = cv2.cvtColor(cv2.applyColorMap((255 * (0.35 + 0.65 * a)).astype(np.uint8), cv2.COLORMAP_INFERNO),
                              cv2.COLOR_BGR2RGB).astype(np.float32)
        w = (alpha * a)[..., None]
        out = (rgb * (1 - w) + colour * w).astype(np.uint8)
        return attention_key(out, floor) if key else out

    def to_dict(self) -> dict:
        """JSON-friendly summary (the CLI's ``--json`` line)."""
        d = {
            "accepted": True,
            "bone_age_months": round(self.bone_age_months, 1),
            "bone_age_years": round(self.bone_age_months / 12.0, 2),
            "uncertainty_months": round(self.uncertainty_months, 1),
            "interval_90_months": ([round(v, 1) for v in self.interval_90_months]
                                   if self.interval_90_months is not None else None),
            "tta_sd_months": round(self.tta_sd_months, 2),
            "sex": self.sex,
            "warnings": list(self.warnings),
            "model_version": self.model_version,
            "pipeline": {k: v for k, v in self.pipeline.summary().items() if k in
                         ("rotation_deg", "laterality", "mirrored", "inverted", "hand_found", "rois")},
        }
        if self.acceptance is not None and self.acceptance.overridden:
            d["accepted_unusual"] = True
            d["not_accepted_reason"] = self.acceptance.reason
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


@dataclass
class Examination:
    """Everything measured on one image before any decision: the loaded picture, the pipeline's
    result, the model's TTA outputs and every acceptance score (what ``predict`` and the
    acceptance calibration both use, so they cannot drift apart)."""

    pixels: np.ndarray
    meta: ImageMeta | None
    pipeline: PipelineResult
    tta_months: np.ndarray  # (n,)
    attention: np.ndarray  # first copy's attention map, model grid
    pooled: np.ndarray  # first copy's (un-augmented) attention-pooled features
    scores: dict[str, float]


class Predictor:
    """A loaded model bundle (``model.keras`` + ``meta.json``), ready to predict."""

    def __init__(self, model, meta: BundleMeta, path: Path, members: list | tuple = (),
                 int8: list | tuple = ()):
        from .calibration import SECTION, CalibrationError, OutputCalibration
        from .model import with_explanation_outputs

        self.model = model
        self.meta = meta
        self.path = path
        self.params = meta.pipeline
        self.model_version = meta.model_version
        self.residual_sd = meta.labels.val_residual_sd_months
        try:  # TTA copies per prediction: the count the acceptance check and intervals were calibrated on
            self.tta: int = TTASpec.from_meta(meta).copies
        except BundleError as e:
            raise PredictionError(f"{Path(path).parent}: {e}") from None
        # The acceptance check and the interval table live beside the model (the one place each is read).
        self.acceptance: AcceptanceCheck | None = AcceptanceCheck.load(Path(path).parent)
        self.intervals: IntervalTable | None = IntervalTable.load(Path(path).parent)
        try:  # the output calibration (boneage.calibration), from the bundle's metadata; None = uncalibrated
            self.calibration: OutputCalibration | None = OutputCalibration.from_section(meta.section(SECTION))
        except CalibrationError as e:
            raise PredictionError(f"{Path(path).parent}: {e}") from None
        # Network 0 is model.keras; ensemble members (boneage.bundle.EnsembleSpec) share the TTA copies.
        # ``int8``: per network, the bundle's int8 graph and the weights it was made from, or None.
        nets = (model, *members)
        graphs = list(int8) + [None] * (len(nets) - len(int8))
        self._fns = [self._compile(with_explanation_outputs(net), g) for net, g in zip(nets, graphs)]
        self._lock = threading.Lock()

    @property
    def _fn(self):
        """Network 0's compiled call (``model.keras``), derived so it cannot drift from ``_fns``."""
        return self._fns[0]

    @property
    def networks(self) -> int:
        """How many networks read each image (1, or the ensemble's size)."""
        return len(self._fns)

    @staticmethod
    def _compile(net, int8=None):
        """The network's forward pass: LiteRT when it converts and matches Keras (int8 where the
        bundle holds a graph made from these weights), else TensorFlow (:mod:`boneage.runtime`,
        where the choice and its measured speed-up are explained)."""
        from .runtime import LiteNetwork

        return LiteNetwork.build(net, int8=int8)

    @property
    def engines(self) -> tuple[tuple[str, str | None], ...]:
        """Per network, in bundle order (``model.keras`` first): the engine that runs it
        ("litert", "litert-int8" or "keras") and why the bundle's int8 graph for it was refused
        (``None`` when it is used, when there is none, or when ``BONEAGE_RUNTIME=litert-float``
        switches int8 off). What ``scripts/quantize_member.py`` checks after writing a graph."""
        return tuple((f.runtime, f.int8_reason) for f in self._fns)

    @property
    def runtime(self) -> str:
        """Which engines run the networks: "litert", "litert-int8" (a network on the bundle's int8
        graph), or "keras" with the reason LiteRT is not used; one entry per engine, "; "-joined."""
        rs = {(f.runtime, f.fallback_reason) for f in self._fns}
        return "; ".join(r if why is None else f"{r} ({why})" for r, why in sorted(rs, key=str))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Predictor":
        """Load ``path`` (a run folder or a ``.keras`` file with ``meta.json`` beside it).

        Default: ``$BONEAGE_MODEL`` if set, else the shipped model in ``models/`` (see :mod:`boneage.bundle`).
        """
        from . import bundle

        try:
            model, meta, b = bundle.load(path)
            members = bundle.load_members(b, meta)
            graphs = bundle.load_int8(b, meta)
        except bundle.BundleError as e:
            raise PredictionError(str(e)) from None
        spec = bundle.EnsembleSpec.from_meta(meta)
        names = (bundle.MODEL_FILE, *(spec.members if spec else ()))
        return cls(model, meta, Path(path) if path and str(path).endswith(".keras") else b.model_file, members,
                   [graphs.get(n) for n in names])

    def _run(self, images: np.ndarray, male: float | np.ndarray, copy: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model on a batch: ``male`` is one value for all rows or one per row. Returns months,
        attention maps and the attention-pooled features (what the acceptance check compares).

        ``copy``: each row's TTA copy index (default: the rows are one image's copies 0, 1, …);
        with an ensemble, copy *i* is read by network *i* mod *m*, so copy 0 always by network 0.
        """
        n = len(images)
        m = np.broadcast_to(np.asarray(male, np.float32).reshape(-1, 1), (n, 1))
        imgs = np.asarray(images, np.float32)
        if len(self._fns) == 1:
            with self._lock:
                months, att, pooled = self._fn({"image": imgs, "male": np.ascontiguousarray(m)})
            return np.asarray(months).reshape(-1), np.asarray(att)[..., 0], np.asarray(pooled)
        net = (np.arange(n) if copy is None else np.asarray(copy)) % len(self._fns)
        months = np.empty(n, np.float32)
        att = pooled = None
        with self._lock:
            for k, fn in enumerate(self._fns):
                rows = np.flatnonzero(net == k)
                if not len(rows):
                    continue
                mo, at, po = (np.asarray(v) for v in fn({"image": imgs[rows], "male": np.ascontiguousarray(m[rows])}))
                if att is None:
                    att = np.zeros((n, *at.shape[1:]), at.dtype)
                    pooled = np.zeros((n, *po.shape[1:]), po.dtype)
                if at.shape[1:3] != att.shape[1:3]:
                    # A member working at another input size (boneage.model.resized_input) has a
                    # finer attention grid; only copy 0's map (network 0) is shown, the rest are
                    # brought onto its grid so one array holds them.
                    gh, gw = att.shape[1:3]
                    at = np.stack([cv2.resize(a[..., 0], (gw, gh), interpolation=cv2.INTER_AREA) for a in at])[..., None]
                months[rows], att[rows], pooled[rows] = mo.reshape(-1), at, po
        return months, att[..., 0], pooled

    def read(self, image: str | Path | bytes | np.ndarray | LoadedImage, sex, *, tta: int | None = None,
             name: str | None = None, params: PipelineParams | dict | None = None,
             accept_unusual: bool = False) -> Prediction:
        """The reading alone: bone age, uncertainty, attention and pipeline for one radiograph and a sex.

        No clinical inputs, no interpretation: the bone age depends on the image and the sex only.
        Raises NotAcceptedError (an ImageError with ``reason`` and ``scores``) when the image does
        not look like a child's hand radiograph, unless ``accept_unusual`` (research use: the
        result then says so).
        """
        n, params = self._checked(tta, params)
        loaded, meta = _loaded_and_meta(image, name)
        sx = _normalise_sex(sex)
        if sx is None:
            raise PredictionError("sex is required (M or F): the model's reference differs for boys and girls")
        return self._read(loaded, meta, sx, n, params, accept_unusual=accept_unusual, name=name)

    def predict(
        self,
        image: "str | Path | bytes | np.ndarray | LoadedImage | Prepared",
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
        accept_unusual: bool = False,
    ) -> Prediction:
        """The reading (:meth:`read`), interpreted with the clinical inputs that
        :func:`boneage.clinical_inputs.resolve` picks from what was typed and the DICOM tags.

        Tags never cost the bone age: implausible ones are ignored with a warning, and typed values
        win over them (with a warning where they disagree). Raises ImageError / PredictionError /
        ClinicalInputError (bad typed inputs) / ParameterError with a one-line message.

        ``image``: a path, bytes, a binary file, a :class:`LoadedImage`, or an array (checked and
        normalised by :func:`boneage.io.load_array`, as a file would be). ``tta``: 1 to MAX_TTA
        copies (0, -5 and 1.5 used to become 1 silently). ``params``: PipelineParams or a dict.
        NotAcceptedError when the image does not look like a child's hand radiograph (see :meth:`read`).
        ``image`` may also be a :class:`Prepared` from :func:`prepare` (its pipeline and TTA copies are
        used as they are; ``tta`` and ``params`` then do not apply): the app prepares an upload while
        the user is still choosing the sex, which the reading needs and the preparation does not.
        """
        n, params = self._checked(tta, params)
        ready = image if isinstance(image, Prepared) else None
        loaded, meta = (None, ready.meta) if ready is not None else _loaded_and_meta(image, name)
        inputs, notes = self.resolve_inputs(
            meta, sex, fill_from_tags=fill_from_tags, chronological_age_months=chronological_age_months,
            birth_date=birth_date, study_date=study_date, height_cm=height_cm, father_height_cm=father_height_cm,
            mother_height_cm=mother_height_cm)
        prep = ready if ready is not None else _prepare_pixels(loaded, meta, n, params)
        months, att, pooled = self._run(prep.batch, model_input(inputs.sex))
        return self.finish(prep, inputs, notes, months, att, pooled, accept_unusual=accept_unusual, name=name)

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

    def finish(self, prep: "Prepared", inputs, notes: list[str], months: np.ndarray, att: np.ndarray,
               pooled: np.ndarray | None = None, *, accept_unusual: bool = False, name: str | None = None) -> Prediction:
        """The interpreted :class:`Prediction` from the model's outputs on ``prep``'s TTA copies."""
        from .clinical import interpret

        pred = self._reading(prep, inputs.sex, months, att, pooled, accept_unusual=accept_unusual, name=name)
        pred.warnings.extend(notes)
        if inputs.wants_interpretation():
            pred.clinical = interpret(pred.bone_age_months, inputs.sex, **inputs.interpret_kwargs(),
                                      bone_age_interval_months=pred.interval_90_months)
        return pred

    def warm_up(self) -> None:
        """One prediction on a synthetic hand-sized image, so the first real one is not slow.

        The first call sizes the networks' interpreters and warms the pipeline's OpenCV paths (and,
        on the TensorFlow fallback of :mod:`boneage.runtime`, traces its ``tf.function``: seconds
        on 2 cores); ``boneage serve`` and the app run this at start, before anyone waits on it.
        """
        h, w = 1040, 800
        yy, xx = np.mgrid[0:h, 0:w]
        blob = ((xx - w / 2) / (w / 3)) ** 2 + ((yy - h / 2) / (h / 2.5)) ** 2 < 1
        self.read(np.where(blob, 0.8, 0.05).astype(np.float32), "F", accept_unusual=True)  # a blob, not a hand

    def predict_prepared(self, items: list["Prepared"], sexes: list[str], chunk: int = 64
                         ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Model outputs for many prepared images in as few model calls as possible (batch scoring).

        The TTA copies of all images are concatenated and run in chunks of about ``chunk`` rows:
        one call of 64 rows costs far less than eight of 8 (``bench/predict.py``: 240 images/s
        batched against ≈ 25 per 8-copy call). Returns ``(months, attention, pooled)`` per item, in order.
        """
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        group: list[int] = []

        def flush():
            if not group:
                return
            imgs = np.concatenate([items[i].batch for i in group])
            male = np.concatenate([np.full(len(items[i].batch), model_input(sexes[i]), np.float32)
                                   for i in group])
            copy = np.concatenate([np.arange(len(items[i].batch)) for i in group])
            months, att, pooled = self._run(imgs, male, copy)
            k = 0
            for i in group:
                n = len(items[i].batch)
                out.append((months[k:k + n], att[k:k + n], pooled[k:k + n]))
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

    def prepare(self, image, *, name: str | None = None) -> "Prepared":
        """Everything before the network for this bundle (its pipeline parameters and TTA count):
        what :meth:`predict` reads when given the result, so an upload can be prepared before the sex is known."""
        return prepare(image, self.params, tta=self.tta, name=name)

    def _checked(self, tta, params) -> tuple[int, PipelineParams]:
        n = self.tta if tta is None else check_int(tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")
        return n, (self.params if params is None else PipelineParams.coerce(params))

    def _read(self, image: "np.ndarray | LoadedImage", meta: ImageMeta | None, sx: Sex, n: int,
              params: PipelineParams, *, accept_unusual: bool = False, name: str | None = None) -> Prediction:
        prep = _prepare_pixels(image, meta, n, params)
        months, att, pooled = self._run(prep.batch, model_input(sx))
        return self._reading(prep, sx, months, att, pooled, accept_unusual=accept_unusual, name=name)

    def examine(self, pixels: np.ndarray, meta: ImageMeta | None, sex: str, *, tta: int | None = None,
                params: PipelineParams | None = None) -> "Examination":
        """Pipeline, model with TTA and every acceptance score for one loaded image (no decision)."""
        return self.examine_many([(pixels, meta, sex)], tta=tta, params=params)[0]

    def examine_many(self, items: list[tuple[np.ndarray, ImageMeta | None, str]], *, tta: int | None = None,
                     params: PipelineParams | None = None) -> list["Examination"]:
        """:meth:`examine` for several images with one forward pass (the calibration sweep's path)."""
        n = self.tta if tta is None else max(1, int(tta))
        preps = [_prepare_pixels(px, meta, n, params or self.params) for px, meta, _ in items]
        outs = self.predict_prepared(preps, [sex for _, _, sex in items])
        return [Examination(px, meta, prep.pipeline, mo, at[0], po[0], self.scores(prep, mo, po))
                for (px, meta, _), prep, (mo, at, po) in zip(items, preps, outs)]

    def scores(self, prep: "Prepared", months: np.ndarray, pooled: np.ndarray | None) -> dict[str, float]:
        """Every acceptance score of one prepared image and its model outputs."""
        scores = dict(prep.scores)
        n = len(months)
        if pooled is not None:
            space = self.acceptance.space if self.acceptance else None
            scores.update(model_scores(pooled[0], float(np.std(months)) if n > 1 else 0.0, space))
            if n != self.tta:  # the TTA-spread threshold was calibrated on the bundle's count; others skip it
                scores.pop("tta_sd_months")
        return scores

    def judge(self, scores: dict[str, float], *, accept_unusual: bool = False, label: str | None = None) -> Verdict:
        """The acceptance verdict; raises NotAcceptedError when refused unless ``accept_unusual``."""
        if self.acceptance is None:
            return unchecked(scores)
        v = self.acceptance.judge(scores)
        if not v.accepted:
            if not accept_unusual:
                raise NotAcceptedError(v, label)
            v = dataclasses.replace(v, overridden=True)
        return v

    def _reading(self, prep: "Prepared", sx: Sex, months: np.ndarray, att: np.ndarray,
                 pooled: np.ndarray | None = None, *, accept_unusual: bool = False,
                 name: str | None = None) -> Prediction:
        """The reading (no interpretation) from the model's outputs on ``prep``'s TTA copies, after
        the acceptance check (NotAcceptedError unless ``accept_unusual``)."""
        meta, res, n = prep.meta, prep.pipeline, len(months)
        if not np.isfinite(months).all():
            raise PredictionError(
                f"model {self.model_version} returned a non-finite bone age (NaN or infinity); its weights are broken "
                "(e.g. trained with a non-finite learning rate): retrain it or use the shipped model"
            )
        verdict = self.judge(self.scores(prep, months, pooled), accept_unusual=accept_unusual,
                             label=meta.source if meta is not None else name)
        est = float(np.mean(months))
        if self.calibration is not None:  # the estimate only: the copies' spread stays raw (boneage.calibration)
            est = float(self.calibration.apply(est, sx))
        tta_sd = float(np.std(months)) if n > 1 else 0.0
        unc = math.sqrt(self.residual_sd**2 + tta_sd**2)
        warnings = list(meta.warnings if meta else []) + list(res.warnings)
        if verdict.overridden:
            warnings.insert(0, f"not accepted as a child's hand radiograph ({verdict.reason}); "
                               "predicted anyway because unusual images were allowed (research use)")
        elif not verdict.checked:
            warnings.append("this model bundle has no acceptance calibration: the image was not checked")
        if tta_sd > LOW_CONFIDENCE_TTA_SD:
            warnings.append(f"low confidence: slightly perturbed copies of the image disagree by ±{tta_sd:.1f} months")
        if est < 0 or est > 228:
            warnings.append("estimate lies outside the training range (0–19 years); clipped")
            est = float(np.clip(est, 0, 228))
        interval = self.intervals.interval(est, sx, tta_sd) if self.intervals is not None else None
        a = att[0]
        a = (a - a.min()) / (a.max() - a.min() + 1e-9)
        return Prediction(
            bone_age_months=est, uncertainty_months=unc, tta_sd_months=tta_sd, sex=sx, model_version=self.model_version,
            warnings=warnings, attention_map=a.astype(np.float32), pipeline=res, image_meta=meta,
            tta_predictions=[float(v) for v in months], acceptance=verdict, interval_90_months=interval,
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
    scores: dict = field(default_factory=dict)  # image and outline scores of the acceptance check

    def slim(self, keep: tuple[str, ...] = ("canonical", "aligned_mask")) -> "Prepared":
        """A copy holding only the stages ``keep`` (overlay and heatmap need these two): less to
        send between processes (a full-size pipeline keeps ≈ 10 MB of intermediate images)."""
        import dataclasses

        stages = {k: v for k, v in self.pipeline.stages.items() if k in keep}
        return Prepared(dataclasses.replace(self.pipeline, stages=stages), self.meta, self.batch, self.scores)


def prepare(image, params: PipelineParams | dict, *, tta: int, name: str | None = None) -> Prepared:
    """Read ``image`` (ImageError / ParameterError on bad input), run the pipeline, make the TTA copies.

    ``tta`` has no default: the count belongs to the model bundle (:attr:`Predictor.tta`), and a
    default here once made 8 copies for a bundle calibrated on 4. :meth:`Predictor.prepare` fills it.
    """
    n = check_int(tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")
    loaded, meta = _loaded_and_meta(image, name)
    return _prepare_pixels(loaded, meta, n, PipelineParams.coerce(params))


def _prepare_pixels(image: "np.ndarray | LoadedImage", meta: ImageMeta | None, n: int, params: PipelineParams
                    ) -> Prepared:
    from .tta import tta_batch

    # The image-level scores read the picture the pipeline reads and nothing it makes, so they run
    # on the other core meanwhile (OpenCV and numpy let go of the GIL): a 2000×2500 PNG's pipeline
    # and scores took 20.0 ms one after the other, 14.7 ms side by side (2026-11-30, 2 cores). A
    # small picture's scores (a thumbnail's: 0.1 ms) are not worth the hand-over.
    pixels, colour = getattr(image, "pixels", image), (meta.colourfulness if meta is not None else 0.0)
    pending = _side_pool().submit(image_scores, pixels, colour) if np.size(pixels) >= SIDE_THREAD_PIXELS else None
    res = run_pipeline(image, params)  # a LoadedImage's pixels are read as the loader checked them
    scores = pending.result() if pending is not None else image_scores(pixels, colour)
    scores.update(pipeline_scores(res))
    return Prepared(pipeline=res, meta=meta, batch=tta_batch(res.model_input, n=n), scores=scores)


def _side_pool() -> ThreadPoolExecutor:
    """The image scores' worker thread (:func:`boneage.io.helper_thread`: one per process)."""
    return helper_thread("boneage-scores")


def _loaded_and_meta(image, name: str | None) -> tuple[LoadedImage, ImageMeta | None]:
    """The loaded image (what :func:`_prepare_pixels` takes) and its metadata (None for an array)."""
    if isinstance(image, LoadedImage):
        return image, image.meta
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(image, "read"):
        loaded = load_image(image, name=name)
        return loaded, loaded.meta
    # arrays (and anything else) get the loader's checks: shape, dtype, NaN/inf, blank
    return load_array(image, name=name or "array"), None


__all__ = ["Predictor", "Prediction", "PredictionError", "ImageError", "ParameterError", "Prepared", "prepare",
           "NotAcceptedError", "Examination"]
