"""Read a PyTorch ``.pth`` state dict into numpy arrays without torch and without running code.

Why not ``torch.load``: torch is not a run-time dependency, and unpickling an untrusted file with
the stock unpickler can execute arbitrary code. :class:`_RestrictedUnpickler` only rebuilds
tensors, parameters, storages and ``OrderedDict`` and refuses every other global. Both on-disk
layouts are read: the zip format (torch ≥ 1.6: ``<root>/data.pkl`` + ``<root>/data/<key>``) and the
legacy format (magic number, header pickles, the object pickle, then each storage's raw bytes).

Used by :mod:`boneage.weights` for the EfficientNet-Lite0 ImageNet checkpoint; every failure is a
:class:`CheckpointError` with a one-line message.

Every tensor is bounds-checked before ``as_strided`` (issue #14): dtype from the known storage
types only, shape and stride non-negative integers of the same length (at most ``MAX_DIMS``),
at most ``MAX_ELEMENTS`` elements, and offset + the furthest strided element inside its storage.
Before this a crafted stride segfaulted the process and a too-large shape returned heap memory.
Storage sizes are checked before their bytes are read, and nothing but CheckpointError leaves
:func:`read_torch_checkpoint` (IndexError/MemoryError used to escape).
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
MAX_DIMS = 8
MAX_ELEMENTS = 1 << 28  # 268 M elements (1 GB of float32) per storage or tensor; EfficientNet-Lite0 has 4.7 M in all
MAX_MEMBER_BYTES = 1 << 30  # one zip member (data.pkl or a storage), checked before it is read


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
        n = len(buf)
        if any(d == 0 for d in self.shape):
            return np.zeros(self.shape, buf.dtype)
        last = self.offset + sum((d - 1) * st for d, st in zip(self.shape, self.stride))
        if self.offset >= n or last >= n:
            raise CheckpointError(
                f"tensor of shape {self.shape} (offset {self.offset}, stride {self.stride}) reaches element {last} "
                f"of storage {self.storage.key}, which holds {n}"
            )
        if not self.shape:
            return buf[self.offset].copy()
        isz = buf.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            buf[self.offset:], shape=self.shape, strides=[s * isz for s in self.stride]
        )
        return np.array(view)  # copy: detach from the shared storage


def _whole(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise pickle.UnpicklingError(f"tensor {what} must be a non-negative integer, got {v!r}")
    return v


def _rebuild_tensor(storage: _StorageRef, offset: int, size: Sequence[int], stride: Sequence[int],
                    *_ignored: Any) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor without a storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
        raise pickle.UnpicklingError("tensor shape and stride must be sequences")
    shape = tuple(_whole(d, "size") for d in size)
    strides = tuple(_whole(d, "stride") for d in stride)
    if len(shape) != len(strides) or len(shape) > MAX_DIMS:
        raise pickle.UnpicklingError(f"tensor has {len(shape)} sizes and {len(strides)} strides (at most {MAX_DIMS})")
    numel = 1
    for d in shape:
        numel *= d
    if numel > MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"tensor of shape {shape} has more than {MAX_ELEMENTS} elements")
    return _TensorRef(storage, _whole(offset, "offset"), shape, strides)


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
        if len(pid) < 5:
            raise pickle.UnpicklingError("malformed storage reference")
        stype, key, numel = pid[1], str(pid[2])[:64], _whole(pid[4], "storage size")
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        if numel > MAX_ELEMENTS:
            raise pickle.UnpicklingError(f"storage {key} has more than {MAX_ELEMENTS} elements")
        if key in self._storages and (self._storages[key].dtype, self._storages[key].numel) != (stype.dtype, numel):
            raise pickle.UnpicklingError(f"storage {key} is declared twice with different types or sizes")
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
    except CheckpointError as e:
        raise CheckpointError(f"cannot read PyTorch checkpoint {path.name}: {e}") from None
    except MemoryError:
        raise CheckpointError(f"cannot read PyTorch checkpoint {path.name}: not enough memory") from None
    except RecursionError:
        raise CheckpointError(f"cannot read PyTorch checkpoint {path.name}: structure nested too deeply") from None
    except Exception as e:  # noqa: BLE001 - the one error boundary: pickle, zip, struct, numpy, OS errors
        msg = " ".join(str(e).split())[:160] or e.__class__.__name__
        raise CheckpointError(f"cannot read PyTorch checkpoint {path.name}: {msg}") from None


def _read_zip_checkpoint(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkls) != 1:
            raise CheckpointError(f"{path.name}: expected one data.pkl, found {len(pkls)}")
        root = pkls[0][: -len("data.pkl")]
        storages: dict[str, _StorageRef] = {}
        obj = _RestrictedUnpickler(io.BytesIO(_read_member(zf, pkls[0])), storages).load()
        for s in storages.values():
            raw = _read_member(zf, f"{root}data/{s.key}")
            if len(raw) < s.numel * s.dtype.itemsize:
                raise CheckpointError(f"storage {s.key} holds {len(raw)} bytes, fewer than its {s.numel} elements")
            s.data = np.frombuffer(raw, dtype=s.dtype, count=s.numel)
    return _flatten(obj)


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """A zip member's bytes, refusing one whose declared size is over MAX_MEMBER_BYTES (zip bombs)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CheckpointError(f"missing {name}") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise CheckpointError(f"{name} is {info.file_size / 2**20:.0f} MB; the limit is {MAX_MEMBER_BYTES // 2**20} MB")
    return zf.read(info)


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
    if not isinstance(keys, (list, tuple)):
        raise CheckpointError("storage key list is missing")
    for key in keys:
        s = storages.get(str(key)[:64])
        if s is None:
            raise CheckpointError(f"storage {str(key)[:64]!r} is listed but no tensor uses it")
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != s.numel:
            raise CheckpointError(f"storage {s.key} says {numel} elements here and {s.numel} in the tensor table")
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
