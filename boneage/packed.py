"""Packed model inputs: the pipeline's cached outputs in one small file, for a machine without the data.

Why: the GPU machine lent to some sessions (issue #9, item 3) receives the working tree and at
most 64 MiB in all, and has no copy of the RSNA thumbnails. The tracked tree is ≈ 35 MiB (the
two shipped networks are 31 MB of it), which leaves ≈ 27 MiB for data and wheels. The cached
160×128 model inputs of the 11,322 thumbnails are 222 MiB as raw uint8 and 65 MiB with xz; no
lossless codec tried gets them under the budget (measured on 300 random inputs, 2026-11-29:
PNG level 9 5.7 KB an image, WebP lossless 5.1 KB, xz 5.8 KB). WebP, on 400 random inputs:
quality 90 2.3 KB an image with a mean absolute error of 0.67 grey levels of 255 (JPEG at 90:
3.7 KB, 0.69), 88 2.1 KB and 0.77, 85 1.9 KB and 0.92, 80 1.6 KB and 1.14. Quality 88 is the
highest that leaves a margin: all 11,322 in 23 MiB, and with the tree and the Keras wheels
≈ 61 MiB travel (90 came to 64.4). The error is far below what training's augmentation adds
(brightness and contrast jitter of several percent), and what comes back is validated on the
CPU path with the exact inputs before anything ships.

Decisions:
- The file holds what :class:`boneage.data.Prepared` holds (images and the labels table with the
  pipeline's notes), plus the pipeline parameters and ``PIPELINE_VERSION`` they were made with:
  :func:`load_packed` refuses a file made by another pipeline version or with other parameters
  than the training run asks for, as the on-disk cache does through its key.
- Images that the pipeline could not read are kept as rows with ``ok`` False (zeros, no bytes),
  so the split by id and the counts stay those of the folder.
- One compressed ``.npz`` without pickles (``allow_pickle=False``): the WebP bytes concatenated,
  with offsets; the labels table as UTF-8 JSON bytes (a numpy string would store 4 bytes a
  character: 5.8 MB for the 11,322 rows).
"""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np

from .pipeline import PIPELINE_VERSION, PipelineParams

FORMAT = "boneage-packed-inputs-1"
DEFAULT_QUALITY = 88  # WebP quality: 2.1 KB an image, mean error 0.77 of 255 (see the module docstring)


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), np.uint8)


class PackedError(ValueError):
    """A packed-inputs file that cannot be used (one-line message)."""


def _open_packed(path: str | Path):
    """The open ``.npz`` of a file that :func:`pack_inputs` wrote (checked by its format tag, not
    only its name), else :class:`PackedError`; opened once, so the check and the read share it."""
    p = Path(path)
    z = None
    if p.is_file() and p.suffix == ".npz":
        try:
            z = np.load(p, allow_pickle=False)
            if isinstance(z, np.lib.npyio.NpzFile) and "format" in z.files and str(z["format"]) == FORMAT:
                return z
        except (OSError, ValueError):
            pass
    if isinstance(z, np.lib.npyio.NpzFile):
        z.close()
    raise PackedError(f"{path}: not a packed-inputs file (boneage.packed)")


def is_packed(path: str | Path) -> bool:
    """True for a file that :func:`pack_inputs` wrote (checked by its format tag, not its name)."""
    try:
        _open_packed(path).close()
    except PackedError:
        return False
    return True


def pack_inputs(images: np.ndarray, labels, params: PipelineParams, path: str | Path,
                quality: int = DEFAULT_QUALITY) -> dict:
    """Write ``images`` (N, H, W) uint8 and their ``labels`` table (a :class:`boneage.data.Prepared`'s,
    with an ``ok`` column) to ``path``; return sizes for the log."""
    import cv2

    if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
        raise PackedError(f"expected (N, H, W) uint8 images, one per label row; got {images.dtype} {images.shape}, {len(labels)} rows")
    ok = labels["ok"].to_numpy(bool) if "ok" in labels else np.ones(len(labels), bool)
    chunks, offsets = [], [0]
    for img, good in zip(images, ok):
        if good:
            done, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
            if not done:
                raise PackedError("OpenCV could not encode WebP (built without libwebp?)")
            chunks.append(buf.ravel())
        offsets.append(offsets[-1] + (len(chunks[-1]) if good else 0))
    blob = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, format=np.array(FORMAT), blob=blob, offsets=np.asarray(offsets, np.int64),
             shape=np.asarray(images.shape[1:], np.int64), labels=_utf8(labels.to_json()),
             params=np.array(json.dumps(params.to_dict(), sort_keys=True)),
             pipeline_version=np.array(PIPELINE_VERSION), quality=np.array(int(quality)))
    return {"images": int(ok.sum()), "bytes": path.stat().st_size, "bytes_per_image": round(len(blob) / max(1, ok.sum()))}


def load_packed(path: str | Path, params: PipelineParams | None = None):
    """The :class:`boneage.data.Prepared` stored in ``path`` (images decoded), checked against ``params``."""
    import cv2
    import pandas as pd

    from .data import Prepared

    with _open_packed(path) as z:
        version = int(z["pipeline_version"])
        if version != PIPELINE_VERSION:
            raise PackedError(f"{path}: made with pipeline version {version}, this code runs version {PIPELINE_VERSION}")
        stored = json.loads(str(z["params"]))
        want = None if params is None else json.loads(json.dumps(params.to_dict()))  # as stored: JSON types
        if want is not None and stored != want:
            diff = sorted(k for k in set(stored) | set(want) if stored.get(k) != want.get(k))
            raise PackedError(f"{path}: packed with other pipeline parameters ({', '.join(diff)})")
        blob, off, (h, w) = z["blob"], z["offsets"], (int(v) for v in z["shape"])
        lab = pd.read_json(StringIO(z["labels"].tobytes().decode("utf-8")), dtype={"id": str})
    lab["id"] = lab["id"].astype(str)
    images = np.zeros((len(lab), h, w), np.uint8)
    for k in range(len(lab)):
        if off[k + 1] > off[k]:
            images[k] = cv2.imdecode(blob[off[k]:off[k + 1]], cv2.IMREAD_GRAYSCALE)
    return Prepared(images=images, labels=lab)
