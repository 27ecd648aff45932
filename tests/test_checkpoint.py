"""The torch-free PyTorch checkpoint reader: both on-disk layouts, and it refuses code."""
from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from boneage.checkpoint import CheckpointError, read_torch_checkpoint


@pytest.fixture()
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Stand-in torch globals so stdlib pickle writes the same references torch.save does."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    class FloatStorage:  # noqa: D401 - placeholder class referenced by the pickle
        pass

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args: object) -> None:  # never called: only its name is pickled
        raise AssertionError

    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
        setattr(torch_mod, cls.__name__, cls)
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch_mod._utils = utils_mod
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)
    return types.SimpleNamespace(FloatStorage=FloatStorage, LongStorage=LongStorage, rebuild=_rebuild_tensor_v2)


class _Storage:
    def __init__(self, key: str, data: np.ndarray, cls: type) -> None:
        self.key, self.data, self.cls = key, data, cls


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...],
                 rebuild: object) -> None:
        self.args = (storage, offset, shape, stride, False, OrderedDict())
        self.rebuild = rebuild

    def __reduce__(self) -> tuple:
        return (self.rebuild, self.args)


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, legacy: bool) -> None:
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj: object) -> tuple | None:
        if isinstance(obj, _Storage):
            pid = ("storage", obj.cls, obj.key, "cpu", obj.data.size)
            return pid + (None,) if self.legacy else pid
        return None


def _synthetic_state(ft: types.SimpleNamespace) -> tuple[OrderedDict, list[_Storage], dict[str, np.ndarray]]:
    base = np.arange(24, dtype=np.float32) * 0.5 - 3.0
    s0 = _Storage("0", base, ft.FloatStorage)
    s1 = _Storage("1", np.array([7], dtype=np.int64), ft.LongStorage)
    state = OrderedDict(
        [
            ("conv.weight", _Tensor(s0, 0, (2, 3, 2, 2), (12, 4, 2, 1), ft.rebuild)),
            # non-contiguous view into the same storage: transposed 3x4 starting at offset 4
            ("fc.weight", _Tensor(s0, 4, (4, 3), (1, 4), ft.rebuild)),
            ("bn.num_batches_tracked", _Tensor(s1, 0, (), (), ft.rebuild)),
        ]
    )
    expected = {
        "conv.weight": base.reshape(2, 3, 2, 2),
        "fc.weight": base[4:16].reshape(3, 4).T,
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    return state, [s0, s1], expected


def _check(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        np.testing.assert_array_equal(got[k], v)


def test_reader_zip_format(fake_torch: types.SimpleNamespace, tmp_path: Path) -> None:
    state, storages, expected = _synthetic_state(fake_torch)
    buf = io.BytesIO()
    _Pickler(buf, legacy=False).dump(state)
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/data.pkl", buf.getvalue())
        for s in storages:
            zf.writestr(f"model/data/{s.key}", s.data.tobytes())
    _check(read_torch_checkpoint(path), expected)


def test_reader_legacy_format(fake_torch: types.SimpleNamespace, tmp_path: Path) -> None:
    state, storages, expected = _synthetic_state(fake_torch)
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True, "protocol_version": 1001}):
        pickle.dump(header, buf, protocol=2)
    _Pickler(buf, legacy=True).dump(state)
    pickle.dump([s.key for s in storages], buf, protocol=2)
    for s in storages:
        buf.write(struct.pack("<q", s.data.size) + s.data.tobytes())
    path = tmp_path / "model.pth"
    path.write_bytes(buf.getvalue())
    _check(read_torch_checkpoint(path), expected)


def test_reader_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (subprocess.call, (["true"],))

    buf = io.BytesIO()
    pickle.dump({"w": Evil()}, buf, protocol=2)
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
    with pytest.raises(CheckpointError, match=r"refusing global \w+\.call"):
        read_torch_checkpoint(path)


def _zip_with(tmp_path: Path, state: OrderedDict, storages: list[_Storage], name: str = "crafted.pth") -> Path:
    buf = io.BytesIO()
    _Pickler(buf, legacy=False).dump(state)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/data.pkl", buf.getvalue())
        for s in storages:
            zf.writestr(f"model/data/{s.key}", s.data.tobytes())
    return path


@pytest.mark.parametrize(
    "offset, shape, stride, words",
    [
        (0, (4, 4), (10**12, 1), "reaches element"),  # crafted stride: segfaulted in as_strided before #14
        (0, (1000, 1000), (1000, 1), "reaches element"),  # too-large shape: returned heap memory before #14
        (30, (2,), (1,), "reaches element"),  # offset past the storage
        (24, (), (), "reaches element"),  # scalar past the storage (IndexError before)
        (-1, (2,), (1,), "non-negative"),
        (0, (-2, 3), (3, 1), "non-negative"),
        (0, (2, 3), (3, -1), "non-negative"),
        (0, (2, 3), (3,), "sizes and"),
        (0, (2, 2.5), (3, 1), "non-negative integer"),
        (0, (1 << 20, 1 << 20), (0, 0), "elements"),
    ],
    ids=["huge-stride", "huge-shape", "offset", "scalar-offset", "neg-offset", "neg-size", "neg-stride", "rank",
         "float-size", "too-many"],
)
def test_crafted_tensors_are_refused(fake_torch: types.SimpleNamespace, tmp_path: Path, offset, shape, stride,
                                     words) -> None:
    s0 = _Storage("0", np.arange(24, dtype=np.float32), fake_torch.FloatStorage)
    state = OrderedDict([("w", _Tensor(s0, offset, shape, stride, fake_torch.rebuild))])
    with pytest.raises(CheckpointError, match=words) as e:
        read_torch_checkpoint(_zip_with(tmp_path, state, [s0]))
    assert "\n" not in str(e.value)


def test_short_storage_and_junk_are_checkpoint_errors(fake_torch: types.SimpleNamespace, tmp_path: Path) -> None:
    s0 = _Storage("0", np.arange(24, dtype=np.float32), fake_torch.FloatStorage)
    state = OrderedDict([("w", _Tensor(s0, 0, (24,), (1,), fake_torch.rebuild))])
    path = _zip_with(tmp_path, state, [_Storage("0", np.arange(5, dtype=np.float32), fake_torch.FloatStorage)])
    with pytest.raises(CheckpointError, match="fewer than its 24 elements"):
        read_torch_checkpoint(path)
    for junk in (b"", b"\x80\x02K\x01.", bytes(range(256)) * 4, b"PK\x03\x04" + bytes(100)):
        p = tmp_path / "junk.pth"
        p.write_bytes(junk)
        with pytest.raises(CheckpointError):
            read_torch_checkpoint(p)
    legacy = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, legacy, protocol=2)
    _Pickler(legacy, legacy=True).dump(state)
    pickle.dump(42, legacy, protocol=2)  # the storage key list is not a list
    p = tmp_path / "legacy.pth"
    p.write_bytes(legacy.getvalue())
    with pytest.raises(CheckpointError, match="key list"):
        read_torch_checkpoint(p)
