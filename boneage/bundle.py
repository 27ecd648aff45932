"""The model bundle: one folder with ``model.keras`` and ``meta.json`` (and optional extra files).

This module is the one owner of the bundle: which files it has, where the bundle in use is
(``$BONEAGE_MODEL``, resolved here only), the typed schema of ``meta.json`` (:class:`BundleMeta`),
and reading and writing it. Training (``boneage.train``), ``scripts/train_attention_xception.py``,
``scripts/make_model_card.py``, prediction and the app all go through it, so the metadata cannot
drift between writers again (the Attention-Xception script's ``meta.json`` had lost
``pipeline_version``, ``trained_on`` and ``keras_backend``).

Decisions:

* ``meta.json`` stays a flat JSON object (the shipped bundle's file reads unchanged); the
  dataclass groups it for code: model inputs, pipeline parameters and version, label statistics,
  provenance. Keys this version does not know are kept on a round trip (``extra``), so an older
  boneage never drops what a newer one wrote.
* **Optional sections** (:attr:`BundleMeta.sections`, stored under ``"sections"``): named JSON
  objects that a later step adds without a schema change, e.g. calibration of conformal
  intervals or of an acceptance check: ``meta.with_section("conformal", {...})`` then
  :func:`write_meta`; read with ``meta.section("conformal")`` (None when absent). A section that
  needs more than JSON (an array, a table) is an **extra file** in the bundle folder: write it
  with :func:`write_extra_file` and find it with :meth:`Bundle.file`; ``meta.json`` lists the
  names in ``"files"`` so copying a bundle knows what belongs to it.
* A bundle without ``meta.json`` (a bare ``.keras`` file) loads with defaults; a ``meta.json``
  that is not valid JSON, not an object, has a wrong type, or comes from a newer schema is a
  :class:`BundleError` with one line, never a guess.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import MODELS_DIR
from .pipeline import PIPELINE_VERSION, PipelineParams
from .tta import TTA_TRANSFORMS

MODEL_FILE = "model.keras"
META_FILE = "meta.json"
SCHEMA_VERSION = 1  # of meta.json; bundles written before it was recorded read as 1
ENV_VAR = "BONEAGE_MODEL"


class BundleError(ValueError):
    """A model bundle that cannot be used (one-line message)."""


# ------------------------------------------------------------------------------------ where


@dataclass(frozen=True)
class Bundle:
    """Where a bundle's files are (they need not exist yet)."""

    dir: Path

    @property
    def model_file(self) -> Path:
        return self.dir / MODEL_FILE

    @property
    def meta_file(self) -> Path:
        return self.dir / META_FILE

    def file(self, name: str) -> Path:
        """An extra file of the bundle (history.csv, val_predictions.csv, a calibration table …)."""
        return self.dir / name

    def exists(self) -> bool:
        return self.model_file.is_file()


def resolve(path: str | Path | None = None) -> Bundle:
    """The bundle at ``path`` (a folder or its ``.keras`` file), else ``$BONEAGE_MODEL``, else ``models/``."""
    p = Path(path or os.environ.get(ENV_VAR) or MODELS_DIR).expanduser()
    return Bundle(p.parent if p.suffix == ".keras" else p)


# ------------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class ModelInputs:
    """What the network takes: a grayscale image of this size and the sex (``male``: 1.0 / 0.0)."""

    image_height: int = 160
    image_width: int = 128


@dataclass(frozen=True)
class LabelStats:
    """Training labels and validation residuals, in months (the residual SD is the uncertainty floor)."""

    mean_months: float | None = None
    sd_months: float | None = None
    val_residual_sd_months: float = 0.0
    val_mae_months: float | None = None


@dataclass(frozen=True)
class Provenance:
    """How the model was made."""

    backbone: str | None = None
    trainable_fraction: float | None = None
    trained_on: str | None = None
    keras_backend: str | None = None


@dataclass(frozen=True)
class BundleMeta:
    """``meta.json``, typed. ``pipeline_version`` None means "written before versions were recorded"."""

    model_version: str
    inputs: ModelInputs = field(default_factory=ModelInputs)
    pipeline: PipelineParams = field(default_factory=PipelineParams)
    pipeline_version: int | None = PIPELINE_VERSION
    labels: LabelStats = field(default_factory=LabelStats)
    provenance: Provenance = field(default_factory=Provenance)
    sections: dict[str, dict] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    # -- optional sections (calibration and the like)
    def section(self, name: str) -> dict | None:
        return self.sections.get(name)

    def with_section(self, name: str, value: dict) -> "BundleMeta":
        if not isinstance(value, dict):
            raise BundleError(f"section {name!r} must be a JSON object, got {type(value).__name__}")
        return dataclasses.replace(self, sections={**self.sections, name: value})

    # -- the flat JSON form
    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "model_version": self.model_version,
            "backbone": self.provenance.backbone,
            "trainable_fraction": self.provenance.trainable_fraction,
            "image_height": self.inputs.image_height,
            "image_width": self.inputs.image_width,
            "pipeline": self.pipeline.to_dict(),
            "label_mean_months": self.labels.mean_months,
            "label_sd_months": self.labels.sd_months,
            "val_residual_sd_months": self.labels.val_residual_sd_months,
            "val_mae_months": self.labels.val_mae_months,
            "trained_on": self.provenance.trained_on,
            "keras_backend": self.provenance.keras_backend,
            "pipeline_version": self.pipeline_version,
        }
        d = {k: v for k, v in d.items() if v is not None}
        if self.sections:
            d["sections"] = self.sections
        if self.files:
            d["files"] = list(self.files)
        d["schema_version"] = SCHEMA_VERSION
        return {**d, **{k: v for k, v in self.extra.items() if k not in d}}

    @classmethod
    def from_dict(cls, d: Any, *, source: str = META_FILE, default_version: str = "unversioned") -> "BundleMeta":
        if not isinstance(d, dict):
            raise BundleError(f"{source}: expected a JSON object, got {type(d).__name__}")
        schema = d.get("schema_version", SCHEMA_VERSION)
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise BundleError(f"{source}: schema_version {schema!r} is newer than this boneage reads "
                              f"({SCHEMA_VERSION}); update boneage")
        known = {"model_version", "backbone", "trainable_fraction", "image_height", "image_width", "pipeline",
                 "label_mean_months", "label_sd_months", "val_residual_sd_months", "val_mae_months", "trained_on",
                 "keras_backend", "pipeline_version", "sections", "files", "schema_version"}
        try:
            pipeline = d.get("pipeline") or {}
            if not isinstance(pipeline, dict):
                raise TypeError("pipeline must be an object")
            sections = d.get("sections") or {}
            if not isinstance(sections, dict) or not all(isinstance(v, dict) for v in sections.values()):
                raise TypeError("sections must be an object of objects")
            files = d.get("files") or []
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise TypeError("files must be a list of names")
            pv = d.get("pipeline_version")
            return cls(
                model_version=str(d.get("model_version") or default_version),
                inputs=ModelInputs(image_height=_int(d, "image_height", 160), image_width=_int(d, "image_width", 128)),
                pipeline=PipelineParams.from_dict(pipeline),
                pipeline_version=None if pv is None else _int(d, "pipeline_version", 0),
                labels=LabelStats(mean_months=_num(d, "label_mean_months"), sd_months=_num(d, "label_sd_months"),
                                  val_residual_sd_months=_residual_sd(d),
                                  val_mae_months=_num(d, "val_mae_months")),
                provenance=Provenance(backbone=_str(d, "backbone"), trainable_fraction=_num(d, "trainable_fraction"),
                                      trained_on=_str(d, "trained_on"), keras_backend=_str(d, "keras_backend")),
                sections=dict(sections),
                files=tuple(files),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (TypeError, ValueError) as e:
            raise BundleError(f"{source}: malformed model metadata ({e})") from None


def _num(d: dict, key: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{key} must be a number, got {v!r}")
    return float(v)


def _residual_sd(d: dict) -> float:
    """The uncertainty floor: finite and ≥ 0, or every prediction's uncertainty would be NaN
    (and ``predict --json`` invalid JSON)."""
    v = _num(d, "val_residual_sd_months") or 0.0
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"val_residual_sd_months must be a finite number ≥ 0, got {v!r}")
    return v


def _int(d: dict, key: str, default: int) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{key} must be an integer, got {v!r}")
    return v


def _str(d: dict, key: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise TypeError(f"{key} must be text, got {v!r}")
    return v


# ------------------------------------------------------------------------------------ read and write


def read_meta(path: str | Path | Bundle | None = None) -> BundleMeta:
    """The bundle's metadata; defaults when it has no ``meta.json``; :class:`BundleError` when malformed."""
    b = path if isinstance(path, Bundle) else resolve(path)
    default_version = "unversioned" if b.exists() else "no model found"
    if not b.meta_file.is_file():
        return BundleMeta(model_version=default_version, pipeline_version=None)
    try:
        raw = json.loads(b.meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{b.meta_file}: not readable JSON ({e.__class__.__name__})") from None
    return BundleMeta.from_dict(raw, source=str(b.meta_file), default_version=default_version)


def write_meta(path: str | Path | Bundle, meta: BundleMeta) -> Path:
    b = path if isinstance(path, Bundle) else Bundle(Path(path))
    b.dir.mkdir(parents=True, exist_ok=True)
    tmp = b.meta_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2) + "\n")
    tmp.replace(b.meta_file)
    return b.meta_file


def write_extra_file(path: str | Path | Bundle, meta: BundleMeta, name: str, data: bytes | str) -> BundleMeta:
    """Write an extra file into the bundle and list it in ``meta.files`` (call :func:`write_meta` after)."""
    if Path(name).name != name or name in (MODEL_FILE, META_FILE):
        raise BundleError(f"{name!r} is not a plain extra file name")
    b = path if isinstance(path, Bundle) else Bundle(Path(path))
    b.dir.mkdir(parents=True, exist_ok=True)
    (b.file(name).write_bytes if isinstance(data, bytes) else b.file(name).write_text)(data)
    return meta if name in meta.files else dataclasses.replace(meta, files=(*meta.files, name))


def save(path: str | Path, model, meta: BundleMeta):
    """Write ``model.keras`` and ``meta.json``; returns the model read back (what we ship is what we measure)."""
    from .model import load_model

    b = Bundle(Path(path))
    b.dir.mkdir(parents=True, exist_ok=True)
    model.save(b.model_file)
    write_meta(b, meta)
    return load_model(b.model_file)


def load(path: str | Path | None = None):
    """(Keras model, metadata, bundle) for ``path`` / ``$BONEAGE_MODEL`` / ``models/``."""
    from .model import load_model

    b = resolve(path)
    p = Path(path).expanduser() if path else None
    model_file = p if p is not None and p.suffix == ".keras" else b.model_file
    if not model_file.is_file():
        raise BundleError(f"no model at {model_file}; train one with `boneage train` or pass --model")
    meta = read_meta(b)
    if not b.meta_file.is_file():  # a bare .keras file: name it after the file, as before
        meta = dataclasses.replace(meta, model_version=model_file.stem)
    try:
        model = load_model(model_file)
    except Exception as exc:  # noqa: BLE001 - Keras/TF raise anything from ValueError to their own types
        first = " ".join(str(exc).split())[:160] or exc.__class__.__name__
        raise BundleError(f"{model_file}: cannot load the model ({first})") from None
    check_matches(model, meta, b, model_file)
    return model, meta, b


# ------------------------------------------------------------------------------------ ensembles

TTA_SECTION = "tta"
DEFAULT_TTA_COPIES = 8  # bundles written before the count was a setting were all calibrated on 8
# As many as there are fixed TTA transforms (boneage.tta): a larger count used to be accepted (up
# to 64) and silently read as 8 copies.
MAX_TTA_COPIES = len(TTA_TRANSFORMS)


@dataclass(frozen=True)
class TTASpec:
    """How many test-time-augmentation copies a prediction reads (section ``tta`` of ``meta.json``).

    Why a bundle setting and not a constant: the acceptance check's TTA-spread threshold and the
    90 % interval table are calibrated on one count, so the count belongs with them; and the
    model part's cost is (copies × networks), the trade-off issue #9's 60 ms budget sets. An
    explicit ``--tta`` still overrides it (the spread is then not judged).
    """

    copies: int

    @classmethod
    def from_meta(cls, meta: "BundleMeta") -> "TTASpec":
        d = meta.section(TTA_SECTION)
        if d is None:
            return cls(DEFAULT_TTA_COPIES)
        n = d.get("copies")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TTA_COPIES:
            raise BundleError(f"meta.json: section 'tta' needs 'copies', a whole number from 1 to {MAX_TTA_COPIES}, "
                              f"got {n!r}")
        return cls(n)

    def to_section(self, why: str = "") -> dict:
        return {"copies": int(self.copies), **({"why": why} if why else {})}


ENSEMBLE_SECTION = "ensemble"


def _is_file_name(name: object, suffix: str) -> bool:
    """A plain file name directly inside the bundle folder (no folders), ending in ``suffix``."""
    return isinstance(name, str) and Path(name).name == name and name.endswith(suffix)


@dataclass(frozen=True)
class EnsembleSpec:
    """More networks in the bundle beside ``model.keras`` (section ``ensemble`` of ``meta.json``).

    ``members``: extra ``.keras`` files of the bundle folder (listed in ``files`` too, so a copy
    of the bundle takes them). The TTA copies of an image are **shared** among the networks,
    copy *i* going to network *i* mod *m* (``model.keras`` is network 0 and so reads copy 0, the
    unaugmented image whose attention and pooled features the app and the acceptance check
    use): an ensemble of *m* costs what one network costs, and the model part of a prediction
    stays within issue #9's budget (``bench/predict.py``).
    """

    members: tuple[str, ...]

    @classmethod
    def from_meta(cls, meta: BundleMeta) -> "EnsembleSpec | None":
        d = meta.section(ENSEMBLE_SECTION)
        if d is None:
            return None
        m = d.get("members")
        if (not isinstance(m, list) or not m
                or not all(_is_file_name(f, ".keras") and f != MODEL_FILE for f in m)):
            raise BundleError("meta.json: section 'ensemble' needs 'members', a list of .keras file names "
                              "in the bundle folder (other than model.keras)")
        if len(set(m)) != len(m):
            raise BundleError("meta.json: section 'ensemble' names a member twice")
        return cls(tuple(m))

    def to_section(self) -> dict:
        return {"members": list(self.members), "copies": "shared: copy i to network i mod m"}


def load_members(b: Bundle, meta: BundleMeta) -> list:
    """The ensemble's extra networks (empty for a single-model bundle); BundleError with one line
    when a member is missing, unreadable or takes another input size than the bundle's pipeline makes."""
    from .model import load_model

    spec = EnsembleSpec.from_meta(meta)
    if spec is None:
        return []
    out = []
    for name in spec.members:
        f = b.file(name)
        if not f.is_file():
            raise BundleError(f"{b.meta_file}: ensemble member {name} is missing from {b.dir}")
        try:
            net = load_model(f)
        except Exception as exc:  # noqa: BLE001 - Keras/TF raise anything from ValueError to their own types
            first = " ".join(str(exc).split())[:160] or exc.__class__.__name__
            raise BundleError(f"{f}: cannot load the ensemble member ({first})") from None
        check_matches(net, meta, b, f)
        out.append(net)
    return out


def add_member(path: str | Path | Bundle, meta: BundleMeta, source: str | Path, name: str | None = None) -> BundleMeta:
    """Copy a trained network (a run folder or ``.keras`` file) into the bundle as an ensemble
    member, without its optimiser state (a run's file is ≈ 4× the weights); returns the metadata
    listing it (call :func:`write_meta` after)."""
    from .model import load_model

    b = path if isinstance(path, Bundle) else Bundle(Path(path))
    src = Path(source)
    src = src / MODEL_FILE if src.is_dir() else src
    if not src.is_file():
        raise BundleError(f"no model at {src}")
    spec = EnsembleSpec.from_meta(meta)
    have = spec.members if spec else ()
    name = name or f"member-{len(have) + 1}.keras"
    if not _is_file_name(name, ".keras") or name == MODEL_FILE or name in have:
        raise BundleError(f"{name!r} is not a new member file name")
    try:
        net = load_model(src)
    except Exception as exc:  # noqa: BLE001 - Keras/TF raise anything from ValueError to their own types
        first = " ".join(str(exc).split())[:160] or exc.__class__.__name__
        raise BundleError(f"{src}: cannot load the model to add ({first})") from None
    size = _image_size(net)
    want = (meta.pipeline.model_height, meta.pipeline.model_width)
    if size is not None and size != want:
        # Trained at another input size: it reads the bundle's pipeline output resized to its
        # own grid (boneage.model.resized_input), so the bundle keeps one pipeline and TTA batch.
        from .model import resized_input

        run = Bundle(src.parent)  # a run folder's meta.json names its backbone; a bare .keras file takes the bundle's
        backbone = read_meta(run).provenance.backbone if run.meta_file.is_file() else None
        net = resized_input(net, want, backbone or meta.provenance.backbone or "efficientnet_lite0")
    net.save(b.file(name))
    meta = meta.with_section(ENSEMBLE_SECTION, EnsembleSpec((*have, name)).to_section())
    return meta if name in meta.files else dataclasses.replace(meta, files=(*meta.files, name))


# ------------------------------------------------------------------------------------ int8 graphs

INT8_SECTION = "int8"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Int8Spec:
    """Networks the bundle also holds as int8 LiteRT graphs (section ``int8`` of ``meta.json``).

    ``graphs``: network file (``model.keras`` or a member) -> (``.tflite`` file of the bundle, the
    sha256 of the weights it was made from, :func:`boneage.runtime.weights_sha256`). Why beside the
    ``.keras`` files and not derived at load like the float graph: the int8 graph is calibrated on
    training radiographs, which a user's machine does not have; the sha keeps it tied to the one
    set of weights it was made from (:mod:`boneage.runtime` says what it costs and gains).
    """

    graphs: tuple[tuple[str, str, str], ...]
    why: str = ""

    @classmethod
    def from_meta(cls, meta: BundleMeta) -> "Int8Spec | None":
        d = meta.section(INT8_SECTION)
        if d is None:
            return None
        g = d.get("graphs")
        bad = BundleError("meta.json: section 'int8' needs 'graphs', mapping a .keras file of the bundle to "
                          "{'file': a .tflite file of the bundle, 'weights_sha256': 64 hex digits}")
        if not isinstance(g, dict) or not g:
            raise bad
        out = []
        for net, v in g.items():
            if not (_is_file_name(net, ".keras") and isinstance(v, dict)):
                raise bad
            f, sha = v.get("file"), v.get("weights_sha256")
            if not (_is_file_name(f, ".tflite") and isinstance(sha, str) and _SHA256.fullmatch(sha)):
                raise bad
            out.append((net, f, sha))
        return cls(tuple(out), str(d.get("why", "")))

    def to_section(self) -> dict:
        return {"graphs": {n: {"file": f, "weights_sha256": sha} for n, f, sha in self.graphs},
                **({"why": self.why} if self.why else {})}


def load_int8(b: Bundle, meta: BundleMeta) -> dict[str, tuple[bytes, str]]:
    """Network file -> (int8 graph bytes, weights sha256) for the graphs the bundle holds (empty if
    none); BundleError with one line when a listed graph is missing."""
    spec = Int8Spec.from_meta(meta)
    out = {}
    for net, f, sha in spec.graphs if spec else ():
        p = b.file(f)
        if not p.is_file():
            raise BundleError(f"{b.meta_file}: int8 graph {f} of {net} is missing from {b.dir}")
        out[net] = (p.read_bytes(), sha)
    return out


def add_int8(path: str | Path | Bundle, meta: BundleMeta, network: str, graph: bytes, weights_sha256: str,
             why: str = "") -> BundleMeta:
    """Write ``graph`` as ``<network stem>.int8.tflite`` and list it in section ``int8`` (replacing an
    earlier graph of that network); returns the metadata (call :func:`write_meta` after)."""
    name = f"{Path(network).stem}.int8.tflite"
    meta = write_extra_file(path, meta, name, graph)
    spec = Int8Spec.from_meta(meta)
    graphs = tuple(g for g in (spec.graphs if spec else ()) if g[0] != network) + ((network, name, weights_sha256),)
    return meta.with_section(INT8_SECTION, Int8Spec(graphs, why or (spec.why if spec else "")).to_section())


def _image_size(model) -> tuple[int, int] | None:
    """(height, width) of a network's ``image`` input, or None when it does not say."""
    shapes = {str(getattr(t, "name", "")).split(":")[0]: tuple(getattr(t, "shape", ()) or ())
              for t in getattr(model, "inputs", None) or []}
    shape = shapes.get("image")
    if not shape or len(shape) < 3 or None in shape[1:3]:
        return None
    return int(shape[1]), int(shape[2])


def check_matches(model, meta: BundleMeta, b: Bundle, model_file: Path) -> None:
    """The network's image input against the bundle's pipeline output size.

    A ``meta.json`` that does not belong to its model used to surface as a multi-line TensorFlow
    trace at the first prediction (input shape mismatch); this is one line at load time.
    """
    want, got = _image_size(model), (meta.pipeline.model_height, meta.pipeline.model_width)
    if want is not None and want != got:
        raise BundleError(
            f"{b.meta_file} does not match {model_file.name}: the network takes {want[0]}×{want[1]} images but "
            f"the bundle's pipeline makes {got[0]}×{got[1]}; use the meta.json saved with this model"
        )


def new_meta(*, model_version: str, backbone: str, image_height: int, image_width: int, pipeline: PipelineParams,
             label_mean_months: float, label_sd_months: float, val_residual_sd_months: float,
             val_mae_months: float | None, trained_on: str, trainable_fraction: float | None = None) -> BundleMeta:
    """Metadata for a freshly trained model: provenance (backend, pipeline version) filled in here, once."""
    from . import _quiet  # noqa: F401
    import keras

    return BundleMeta(
        model_version=model_version,
        inputs=ModelInputs(image_height=int(image_height), image_width=int(image_width)),
        pipeline=pipeline,
        pipeline_version=PIPELINE_VERSION,
        labels=LabelStats(mean_months=float(label_mean_months), sd_months=float(label_sd_months),
                          val_residual_sd_months=float(val_residual_sd_months),
                          val_mae_months=None if val_mae_months is None else float(val_mae_months)),
        provenance=Provenance(backbone=backbone, trainable_fraction=trainable_fraction, trained_on=str(trained_on),
                              keras_backend=keras.backend.backend()),
    )
