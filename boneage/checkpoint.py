"""Read a PyTorch ``.pth`` state dict into numpy arrays without torch and without running code.

Why not ``torch.load``: torch is not a run-time dependency, and unpickling an untrusted file with
the stock unpickler can execute arbitrary code. :class:`_RestrictedUnpickler` only rebuilds
tensors, parameters, storages and ``OrderedDict`` and refuses every other global. Both on-disk
layouts are read: the zip format (torch ≥ 1.6: ``<root>/data.pkl`` + ``<root>/data/<key>``) and the
legacy format (magic number, header pickles, the object pickle, then each storage's raw bytes).

Used by :mod:`boneage.weights` for the EfficientNet-Lite0 ImageNet checkpoint; every failure is a
:class:`CheckpointError` with a one-line message.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np


class CheckpointError(ValueError):
    """The file is not a PyTorch checkpoint this reader accepts (message is one line)."""


# torch storage class name -> numpy dtype (little-endian, as torch writes on x86/arm)
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass
class _StorageRef:
    """Placeholder for a storage until its bytes are known (legacy format stores them last)."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        buf = self.storage.data
        if buf is None:
            raise CheckpointError(f"storage {self.storage.key} has no data in checkpoint")
        if not self.shape:
            return buf[self.offset].copy()
        isz = buf.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            buf[self.offset:], shape=self.shape, strides=[s * isz for s in self.stride]
        )
        return np.array(view)  # copy: detach from the shared storage


def _rebuild_tensor(storage: _StorageRef, offset: int, size: Sequence[int], stride: Sequence[int],
                    *_ignored: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _TensorRef, *_ignored: Any) -> _TensorRef:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Only rebuilds tensors/dicts: any other global in the pickle is refused (no code runs)."""

    def __init__(self, f: BinaryIO, storages: dict[str, _StorageRef]) -> None:
        super().__init__(f)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in checkpoint")

    def persistent_load(self, pid: Any) -> _StorageRef:
        # legacy: ('storage', type, key, location, numel, view_metadata); zip: 5-tuple
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        stype, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _StorageRef(key, stype.dtype, numel)
        return self._storages[key]


def _flatten(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """state_dict (possibly wrapped as {'state_dict': ...}) -> {name: array}."""
    if isinstance(obj, _TensorRef):
        return {prefix: obj.materialise()}
    if isinstance(obj, dict):
        out: dict[str, np.ndarray] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {}  # ints, strings, metadata: not tensors


def read_torch_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PyTorch ``.pth`` state dict (zip format or legacy format) into numpy arrays.

    Why not torch.load: torch is not a run-time dependency, and unpickling untrusted files
    with the stock unpickler can execute code; this reader only accepts tensor rebuilds.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip_checkpoint(path)
        with open(path, "rb") as f:
            return _read_legacy_checkpoint(f)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, struct.error) as e:
        raise CheckpointError(f"cannot read PyTorch checkpoint {path.name}: {e}") from e


def _read_zip_checkpoint(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkls) != 1:
            raise CheckpointError(f"{path.name}: expected one data.pkl, found {len(pkls)}")
        root = pkls[0][: -len("data.pkl")]
        storages: dict[str, _StorageRef] = {}
        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkls[0])), storages).load()
        for s in storages.values():
            raw = zf.read(f"{root}data/{s.key}")
            s.data = np.frombuffer(raw, dtype=s.dtype, count=s.numel)
    return _flatten(obj)


def _read_legacy_checkpoint(f: BinaryIO) -> dict[str, np.ndarray]:
    # Layout (torch.serialization._legacy_save): magic, protocol, sys_info pickles, the
    # object pickle, a pickle listing storage keys, then per key: int64 numel + raw bytes.
    if _NoGlobals(f).load() != _LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
    _NoGlobals(f).load()  # protocol version
    sys_info = _NoGlobals(f).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise CheckpointError("big-endian PyTorch checkpoints are not supported")
    storages: dict[str, _StorageRef] = {}
    safe = _RestrictedUnpickler(f, storages)
    obj = safe.load()
    keys = _NoGlobals(f).load()
    for key in keys:
        s = storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = numel * s.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError(f"truncated storage {key}")
        s.data = np.frombuffer(raw, dtype=s.dtype)
    return _flatten(obj)


class _NoGlobals(pickle.Unpickler):
    """For the small header pickles: plain data only."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in checkpoint header")
