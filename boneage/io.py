"""One careful image loader: path / bytes / file-like -> grayscale float32 in [0, 1] + metadata.

Every way an input can be bad (empty, not an image, truncated, tiny, huge, decompression bomb,
colour DICOM, compressed DICOM without a decoder) ends in :class:`ImageError`, whose message is a
single line a clinician can read. Nothing else (MemoryError, cv2.error, OSError, pydicom errors)
escapes :func:`load_image`.

Decisions, so callers can rely on them:

* Format is detected from content (magic bytes), never from the file extension.
* Intensities are min-max normalised over the image's own range *in the original precision*
  (16-bit PNG/TIFF stay 16-bit until normalised; DICOM after modality LUT and VOI LUT/window).
* Colour -> luminance with ITU-R BT.601 weights (what PIL's "L" uses), computed in float so 16-bit
  colour keeps its precision. Alpha is composited over **black**, because radiographs (and the
  segmented training images) have a black background, so transparent areas read as background.
* JPEG/TIFF EXIF orientation is applied, so the hand is upright as the viewer showed it.
* DICOM MONOCHROME1 is inverted *after* the VOI LUT / window, as ``1 - x`` on the normalised
  image. DICOM defines the window on the stored (pre-inversion) values, and for the min-max
  normalised result ``1 - x`` equals normalising ``(2**BitsStored - 1) - x``.
* Multi-frame DICOM / multi-page TIFF: the first frame is used, with a warning.
* Pixel spacing is reported for DICOM only; DPI in PNG/JPEG exports is usually a 72/96 default.

Bounded cost (issue #14), because an upload is untrusted and the app serves many sessions:

* Sizes are checked before decoding: file bytes, pixels (``MAX_PIXELS``), decoded sample bytes
  (``MAX_DECODED_BYTES``), the TIFF page chain (walked cheaply up to ``MAX_TIFF_PAGES``; PIL's
  ``n_frames`` took 15–20 s for 50,000 one-pixel pages and 211 s for 200,000), and the size written
  inside a compressed DICOM codestream (a 12000² JPEG 2000 inside a 1040×800 header decoded to
  0.92 GB before any check).
* Decoded samples go to grey in strips of rows and are averaged over k×k blocks on the way
  (:func:`reduction_factor`), so no float64 array of the full image is ever made. Before this a
  0.5 MB PNG of 7700×7700 16-bit RGBA cost 4.5–5.2 GB and 20 s (float64 H×W×4). Images up to twice
  the study's 800×1000 frame in each direction (and up to ``MAX_WORK_PIXELS``) keep k = 1 and
  load bit for bit as before, so the RSNA images and the benchmark's 2000×2500 inputs are untouched;
  larger ones are reduced by an integer factor (a k×k box mean, what ``cv2.INTER_AREA`` does for
  integer factors) before the pipeline's own resize. ``ImageMeta.width/height`` stay the file's.
* A PNG's compressed rows are inflated by libdeflate and handed to PIL stored, so PIL only
  unfilters them (:func:`_png_with_rows_stored`: a 2000×2500 radiograph 22.7 → ≈ 16 ms, the same
  pixels); a plain grey one is unfiltered in two halves on two threads (:func:`_png_grey_in_halves`:
  its load inside a prediction 18 → 14 ms). Only after the size checks and for at most
  ``PNG_STORED_MAX_BYTES`` of rows, which are held two or three times for a moment; larger PNGs
  decode in PIL alone, as before.
* At most ``DECODE_SLOTS`` decodes run at once in a process (``$BONEAGE_DECODE_SLOTS``, default 2),
  whoever calls :func:`load_image` (app sessions, the CLI, a server), so N simultaneous uploads
  cost at most DECODE_SLOTS decodes' memory; a caller waits up to ``DECODE_WAIT_S`` for a slot.
* Arrays given to the Python API go through :func:`load_array`: the same checks (shape, dtype,
  finiteness, size, blank) and the same reduction and normalisation as files.
"""
from __future__ import annotations

import datetime as _dt
import functools
import io
import logging
import math
import os
import re
import struct
import threading
import warnings as _warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import numpy as np

from .vocab import sex_or_none

MIN_SIDE = 64
MAX_PIXELS = 60_000_000
# 10**8 bytes: the same number the app's upload widget enforces (.streamlit/config.toml
# server.maxUploadSize = 100; the browser counts a megabyte as 10**6 bytes).
MAX_BYTES = 100_000_000
# Decoded samples of one image before it is reduced (W × H × channels × bytes per sample; PIL
# keeps 3-channel images in 4 bytes). OpenCV's PNG decoder peaks at twice its output (907 MB for
# a 474 MB 7700² 16-bit RGBA, in 10 s), so that file is refused from its header; 60 MP of 8-bit
# RGBA (229 MiB) still passes. Measured per input by bench/hostile.py.
MAX_DECODED_BYTES = 256 * 2**20
# Twice the study's 800×1000 frame in each direction (four times the pipeline's 400×500 since
# pipeline version 5): the pipeline's own INTER_AREA resize stays the only reduction for usual films.
WORK_SIDES = (1600, 2000)  # (short side, long side)
MAX_WORK_PIXELS = 8_000_000
MAX_TIFF_PAGES = 64
DECODE_SLOTS = max(1, int(os.environ.get("BONEAGE_DECODE_SLOTS", "2") or 2))
DECODE_WAIT_S = 120.0
_STRIP_PIXELS = 1 << 20  # rows are converted ~1 MP at a time (≤ 32 MB of float64 for RGBA)

_SUPPORTED = "PNG, JPEG, BMP, TIFF or DICOM"
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, same weights as PIL's convert("L")


class ImageError(ValueError):
    """The one error load_image raises; ``str(err)`` is a single human-readable line."""

    def __init__(self, message: str):
        super().__init__(_one_line(message))


@dataclass
class ImageMeta:
    source: str
    format: str
    width: int
    height: int
    bit_depth: int
    photometric: str | None
    inverted_by_loader: bool = False
    sex: str | None = None
    birth_date: _dt.date | None = None
    study_date: _dt.date | None = None
    patient_age_months: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    warnings: list[str] = field(default_factory=list)
    reduced_by: int = 1  # pixels holds k×k block means of the file's pixels (see reduction_factor)
    # Hasler–Süsstrunk colourfulness of the source (0 for gray): evidence for the acceptance check
    # (boneage.acceptance), which refuses colour photographs; the pixels themselves are gray.
    colourfulness: float = 0.0
    patient_id: str | None = None  # DICOM PatientID, for the report header
    accession_number: str | None = None  # DICOM AccessionNumber

    def to_dict(self) -> dict:
        """JSON-friendly copy: dates as ISO strings, spacing as a list."""
        d = asdict(self)
        for k in ("birth_date", "study_date"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        if d["pixel_spacing_mm"] is not None:
            d["pixel_spacing_mm"] = [float(v) for v in d["pixel_spacing_mm"]]
        d["warnings"] = list(d["warnings"])
        return d


@dataclass
class LoadedImage:
    pixels: np.ndarray  # float32 (H, W) in [0, 1]
    meta: ImageMeta
    # True when this module made it: the pixels then passed every check (shape, size, finite, [0, 1],
    # float32), so :func:`boneage.pipeline.run_pipeline` reads them without checking and copying
    # again (three full-size passes, ≈ 7 ms of a 2000×2500 prediction). One made by hand is checked.
    checked: bool = field(default=False, repr=False, compare=False)


# --------------------------------------------------------------------------- public API


def load_image(
    source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
    *,
    name: str | None = None,
) -> LoadedImage:
    """Load a radiograph as float32 gray in [0, 1]; raise ImageError (one line) on any problem.

    ``name`` labels bytes / file-like input (e.g. a Streamlit upload's file name) in messages.
    """
    label = name or _default_label(source)
    try:
        data = _read_bytes(source, label)
        with decode_slot(label), _library_notes() as notes:
            kind = _sniff(data)
            loaded = None
            if kind == "DICOM":
                loaded = _load_dicom(data, label)
            elif kind in ("PNG", "JPEG", "BMP", "TIFF"):
                loaded = _load_raster(data, label, kind)
            else:
                ds = _try_preambleless_dicom(data)
                if ds is not None:
                    loaded = _load_dicom(data, label, ds=ds)
        if loaded is None:
            raise ImageError(f"{label}: {_describe_unknown(data)}")
        loaded.meta.warnings.extend(_summarise_notes(notes))
        return loaded
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode this image") from None
    except RecursionError:
        raise ImageError(f"{label}: image file structure is too deeply nested to read") from None
    except Exception as exc:  # cv2.error, OSError, struct.error, pydicom errors, ...
        raise ImageError(f"{label}: could not read image ({_exc_text(exc)})") from exc


def check_array_shape(image: object, *, name: str = "array", min_side: int = MIN_SIDE) -> np.ndarray:
    """The array as numpy if it can be an image (type, shape, size, finiteness), else ImageError.

    The structural part of :func:`load_array`, for :func:`boneage.pipeline.run_pipeline`, which
    keeps its own scaling of already-normalised pixels and runs (with warnings) on anything from
    2×2 up; 1-pixel-wide arrays made its stages raise IndexError.
    """
    try:
        a = np.asarray(image)
    except Exception as exc:  # ragged lists, objects numpy cannot hold
        raise ImageError(f"{name}: not an image array ({_exc_text(exc, 80)})") from None
    if a.dtype == bool:
        a = a.astype(np.uint8)
    if a.dtype.kind not in "uif":
        raise ImageError(f"{name}: array dtype {a.dtype} is not a real number type (uint8, uint16 or float expected)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise ImageError(f"{name}: array shape {a.shape} is not an image (H×W grey or H×W×3/4 colour expected)")
    h, w = a.shape[:2]
    if min(w, h) < min_side:
        raise ImageError(f"{name}: image is {w}x{h} px; at least {min_side} px per side is needed")
    if w * h > MAX_PIXELS:
        _check_dims(w, h, name)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ImageError(f"{name}: image contains NaN or infinite values")
    return a


def load_array(image: object, *, name: str = "array") -> LoadedImage:
    """An array given to the Python API, checked and normalised like a decoded file.

    2-D grey or (H, W, C) with C in 1..4 (RGB order; the last of 2 or 4 channels is alpha), any
    real numeric dtype. Refused with ImageError: other shapes, object/complex/str dtypes, NaN or
    infinite values, sides under MIN_SIDE, more than MAX_PIXELS, one uniform value. Before this,
    NaN, inf and all-zero arrays gave 95.8 months and 1×1 or 1-D arrays raised IndexError.
    """
    label = name
    a = check_array_shape(image, name=label)
    h, w = a.shape[:2]
    warnings: list[str] = []
    k = reduction_factor(w, h)
    with decode_slot(label):
        full = float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else 1.0
        gray = _gray_reduced(lambda r0, r1: a[r0:r1], h, w, k, alpha_full=full, rgb_order=True, warnings=warnings)
    meta = ImageMeta(source=label, format="array", width=w, height=h, bit_depth=a.dtype.itemsize * 8,
                     photometric=None, warnings=warnings, reduced_by=k)
    return LoadedImage(_normalise(gray, label), meta, checked=True)


@contextmanager
def decode_slot(label: str = "image"):
    """Hold one of the process's DECODE_SLOTS while decoding (bounded memory under concurrency).

    Re-entrant for the holding thread, so a loader that calls another loader does not deadlock.
    """
    if getattr(_held, "depth", 0):
        _held.depth += 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    if not _SLOTS.acquire(timeout=DECODE_WAIT_S):
        raise ImageError(f"{label}: busy decoding other images; try again in a minute")
    _held.depth = 1
    try:
        yield
    finally:
        _held.depth = 0
        _SLOTS.release()


_SLOTS = threading.BoundedSemaphore(DECODE_SLOTS)
_held = threading.local()


class _NoteSink(logging.Handler):
    """Collects the pydicom logger's warnings for the thread that is loading an image."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(_notes, "sink", None)
        if sink is not None:
            sink.append(record.getMessage())


_notes = threading.local()
logging.getLogger("pydicom").addHandler(_NoteSink(logging.WARNING))
# pydicom sends every warning both to its logger and to warnings.warn (pydicom.misc.warn_and_log);
# the loader reports them itself (ImageMeta.warnings), so the copy that would reach stderr as a
# multi-line "UserWarning: ..." block is dropped. A program that wants them configures logging.
_warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")


@contextmanager
def _library_notes():
    _notes.sink = sink = []
    try:
        yield sink
    finally:
        _notes.sink = None


def _summarise_notes(notes: list[str], limit: int = 3) -> list[str]:
    """pydicom's remarks on a file as at most ``limit`` one-line warnings (then a count)."""
    uniq = list(dict.fromkeys(_one_line(n, 160) for n in notes))
    out = [f"DICOM reader: {n}" for n in uniq[:limit]]
    if len(uniq) > limit:
        out.append(f"DICOM reader: {len(uniq) - limit} more remarks")
    return out


def reduction_factor(width: int, height: int) -> int:
    """Integer k by which an image is block-averaged on load (1 = kept at full resolution).

    k = 1 while the image is within WORK_SIDES (twice the pipeline frame) in either direction and
    under MAX_WORK_PIXELS; beyond that, the largest k that keeps both sides ≥ WORK_SIDES, and at
    least what brings the pixel count under MAX_WORK_PIXELS.
    """
    short, long = sorted((int(width), int(height)))
    k_sides = min(short // WORK_SIDES[0], long // WORK_SIDES[1])
    k_pixels = math.ceil(math.sqrt(width * height / MAX_WORK_PIXELS))
    return max(1, k_sides, k_pixels)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 for display or saving (clipped, rounded, NaN -> 0)."""
    x = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- input & sniffing


def _default_label(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    n = getattr(source, "name", None)
    if isinstance(n, str) and n:
        return n
    return "<bytes>"


def _read_bytes(source: object, label: str) -> bytes:
    """All bytes of the input, refusing empty and > MAX_BYTES inputs before reading them."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        _check_size(memoryview(source).nbytes, label)
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ImageError(f"{label}: file not found") from None
        except OSError as exc:
            raise ImageError(f"{label}: cannot access file ({_exc_text(exc)})") from None
        if os.path.isdir(path):
            raise ImageError(f"{label}: is a folder, not an image file")
        _check_size(st.st_size, label)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise ImageError(f"{label}: cannot read file ({_exc_text(exc)})") from None
    elif hasattr(source, "read"):
        size = getattr(source, "size", None)  # e.g. Streamlit UploadedFile
        if not isinstance(size, int):
            size = _remaining_size(source)
        if isinstance(size, int) and size > MAX_BYTES:
            _check_size(size, label)
        data = source.read(MAX_BYTES + 1)  # type: ignore[union-attr]
        if isinstance(data, str):
            raise ImageError(f"{label}: opened in text mode; open the file in binary mode ('rb')")
        data = bytes(data or b"")
    else:
        raise ImageError(f"{label}: expected a file path, bytes or a binary file, got {type(source).__name__}")
    _check_size(len(data), label)
    return data


def _remaining_size(f) -> int | None:
    """Bytes left in a seekable file-like (so a huge upload is refused before it is read)."""
    try:
        if not f.seekable():
            return None
        pos = f.tell()
        end = f.seek(0, os.SEEK_END)
        f.seek(pos)
        return int(end - pos)
    except Exception:
        return None


def _check_size(n: int, label: str) -> None:
    if n == 0:
        raise ImageError(f"{label}: file is empty (0 bytes)")
    if n > MAX_BYTES:
        raise ImageError(
            f"{label}: file is {n / 1e6:.0f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB"  # MB = 10⁶ bytes, as the app says
        )


def _sniff(data: bytes) -> str | None:
    if data[128:132] == b"DICM":
        return "DICOM"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124):
        return "BMP"  # 'BM' plus a known DIB header size, so text starting with "BM" is not a BMP
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    return None


_OTHER_MAGIC = {
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (e.g. WebP)",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (unzip it first)",
    b"\x1f\x8b": "a gzip archive (decompress it first)",
    b"\x00\x00\x00\x0cjP  ": "a JPEG 2000 file",
    b"\xff\x4f\xff\x51": "a JPEG 2000 codestream",
}


def _describe_unknown(data: bytes) -> str:
    for magic, what in _OTHER_MAGIC.items():
        if data.startswith(magic):
            return f"is {what}, not a supported image ({_SUPPORTED})"
    head = data[:1024]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"is a text file, not an image ({_SUPPORTED} expected)"
    return f"unrecognised file format ({_SUPPORTED} expected)"


def _try_preambleless_dicom(data: bytes):
    """Dataset for DICOM without the 128-byte preamble + 'DICM', else None.

    pydicom's force=False refuses such files and force=True accepts any junk, so first require the
    stream to open with a plausible element: group 0002/0008 and an explicit VR or a sane length.
    """
    if len(data) < 8:
        return None
    group, elem = int.from_bytes(data[0:2], "little"), int.from_bytes(data[2:4], "little")
    if group not in (0x0002, 0x0008) or elem > 0x1FFF:
        return None
    vr = data[4:6]
    explicit = vr.isalpha() and vr.isupper()
    implicit_len = int.from_bytes(data[4:8], "little")
    if not explicit and implicit_len > 1024:
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:
        return None
    if "PixelData" not in ds and "Rows" not in ds and "SOPClassUID" not in ds:
        return None
    return ds


# --------------------------------------------------------------------------- raster formats


def _load_raster(data: bytes, label: str, kind: str) -> LoadedImage:
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data), formats=[kind])  # lazy: header only
    except Image.DecompressionBombError as exc:  # PIL's own limit (~179 MP) fired first
        m = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(m.group(1)) / 1e6:.0f} megapixels" if m else "too many pixels"
        raise ImageError(f"{label}: image is {size}; the limit is {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except Exception:
        raise ImageError(f"{label}: {kind} file is damaged or truncated (its header cannot be read)") from None
    with im:
        width, height = im.size
        _check_dims(width, height, label)
        warnings: list[str] = []
        info: dict = {}  # what the decode measured beyond the pixels (colourfulness)
        n_frames = _tiff_page_count(data) if kind == "TIFF" else getattr(im, "n_frames", 1)
        if n_frames > MAX_TIFF_PAGES:
            warnings.append(f"file holds more than {MAX_TIFF_PAGES} images; using the first")
        elif n_frames > 1:
            warnings.append(f"file holds {n_frames} images; using the first")
        bit_depth = _raster_bit_depth(im, data, kind)
        mode = im.mode
        bands = len(im.getbands())
        _check_decoded_bytes(width, height, 4 if bands == 3 else bands, bit_depth, label)
        # PIL reduces 16-bit colour PNG/TIFF to 8-bit RGB; OpenCV keeps the full depth.
        by_opencv = bit_depth > 8 and mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
        k = reduction_factor(width, height)
        # Sizes checked: now a PNG's rows may be inflated (once), faster, for either path below.
        png = _png_inflated(data) if kind == "PNG" and not by_opencv else None
        halves = _png_grey_in_halves(png, im) if k == 1 else None
        if halves is None:
            im = _png_with_rows_stored(png, im)
        orientation = None if halves is not None else _exif_orientation(im)  # halves: no eXIf chunk
        try:
            if halves is not None:
                gray = halves
            elif by_opencv:
                gray = _decode_cv2(data, label, kind, k, warnings, info)
            else:
                if kind == "JPEG" and k > 1:
                    # DCT scaling decodes at 1/2, 1/4 or 1/8 size directly (never smaller than asked),
                    # and the rest of the reduction is done on the smaller decode.
                    im.draft(im.mode, (-(-width // k), -(-height // k)))
                    scale = round(width / im.size[0])
                    k_left = reduction_factor(*im.size)
                    gray = _pil_to_gray(im, k_left, warnings, info)
                    k = scale * k_left
                else:
                    gray = _pil_to_gray(im, k, warnings, info)
        except (OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{label}: {kind} file is damaged or truncated ({_exc_text(exc, 100)})") from None
    if orientation not in (None, 1):
        gray = _apply_orientation(gray, orientation)
        warnings.append(f"EXIF orientation {orientation} applied")
        if orientation >= 5:
            width, height = height, width
    if kind == "JPEG":
        warnings.append(f"image is {bit_depth}-bit JPEG: lossy compression")
    elif bit_depth < 8:
        warnings.append(f"image has only {bit_depth}-bit depth")
    meta = ImageMeta(
        source=label, format=kind, width=width, height=height, bit_depth=bit_depth,
        photometric=mode, inverted_by_loader=False, warnings=warnings, reduced_by=k,
        colourfulness=float(info.get("colourfulness", 0.0)),
    )
    return LoadedImage(_normalise(gray, label), meta, checked=True)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type (PNG spec, IHDR)
PNG_STORED_MAX_BYTES = 32 * 2**20  # the inflated rows are held twice beside PIL's image: a bounded extra


@dataclass
class _InflatedPng:
    """A PNG's chunks around its image data, and the image data inflated (filter byte + samples per row)."""

    width: int
    height: int
    stride: int  # bytes per row, its filter byte included
    ihdr_rest: bytes  # bit depth, colour type, compression, filter and interlace methods
    before: list  # the chunks before the image data (IHDR first), as they are
    after: list  # the chunks after it (IEND last)
    rows: bytes


def _png_inflated(data: bytes) -> _InflatedPng | None:
    """The image data of a well-formed, non-interlaced PNG inflated by libdeflate, or None for any
    other PNG, a stream libdeflate refuses, rows over :data:`PNG_STORED_MAX_BYTES`, or no ``deflate``."""
    try:
        import deflate
    except ImportError:  # optional speed-up: requirements.txt installs it
        return None
    if data[12:16] != b"IHDR" or len(data) < 33:
        return None
    w, h, bits, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if interlace != 0 or ctype not in _PNG_CHANNELS or bits not in (1, 2, 4, 8, 16):
        return None
    stride = 1 + (w * _PNG_CHANNELS[ctype] * bits + 7) // 8  # a filter byte + the samples, per row
    if h * stride > PNG_STORED_MAX_BYTES:
        return None
    mv = memoryview(data)
    p, before, after, idat = 8, [], [], []
    while p + 12 <= len(data):
        n = int.from_bytes(mv[p : p + 4], "big")
        cid, end = bytes(mv[p + 4 : p + 8]), p + 12 + n
        if end > len(data):
            return None
        if cid == b"IDAT":
            if after:
                return None  # image data split by other chunks: not a valid PNG, PIL says so
            idat.append(mv[p + 8 : p + 8 + n])
        else:
            (after if idat else before).append(mv[p:end])
        p = end
        if cid == b"IEND":
            break
    if not idat:
        return None
    try:
        rows = deflate.zlib_decompress(idat[0] if len(idat) == 1 else b"".join(idat), h * stride)
    except (deflate.DeflateError, ValueError, MemoryError):
        return None
    if len(rows) != h * stride:
        return None
    return _InflatedPng(w, h, stride, bytes(mv[24:29]), before, after, rows)


def _stored_png(before: list, rows: memoryview, after: list) -> bytes:
    """A PNG of ``before`` chunks, one IDAT holding ``rows`` as stored deflate blocks, ``after`` chunks."""
    import deflate

    n, block = len(rows), 65535
    n_blocks = -(-n // block)
    body_len = 4 + 2 + 5 * n_blocks + n + 4  # "IDAT", zlib header, block headers, rows, Adler-32
    out = bytearray(8 + sum(len(c) for c in before) + 4 + body_len + 4 + sum(len(c) for c in after))
    out[:8] = b"\x89PNG\r\n\x1a\n"
    q = 8
    for c in before:
        out[q : q + len(c)] = c
        q += len(c)
    out[q : q + 4] = (body_len - 4).to_bytes(4, "big")
    body = q + 4
    out[body : body + 6] = b"IDAT\x78\x01"
    q = body + 6
    for i in range(0, n, block):
        size = min(block, n - i)
        out[q : q + 5] = struct.pack("<BHH", 1 if i + block >= n else 0, size, 0xFFFF ^ size)
        out[q + 5 : q + 5 + size] = rows[i : i + size]
        q += 5 + size
    out[q : q + 4] = deflate.adler32(rows).to_bytes(4, "big")
    q += 4
    out[q : q + 4] = deflate.crc32(memoryview(out)[body:q]).to_bytes(4, "big")
    q += 4
    for c in after:
        out[q : q + len(c)] = c
        q += len(c)
    return bytes(out)


def _png_with_rows_stored(png: _InflatedPng | None, im):
    """``im``, or the same PNG (``png``, from :func:`_png_inflated`) re-opened with its image data inflated by libdeflate and handed to
    PIL as *stored* (uncompressed) deflate blocks, so PIL only unfilters the rows.

    Why: PIL's decode of a 2000×2500 8-bit radiograph (22.7 ms) is half inflate (zlib-ng 11.5 ms)
    and half unfiltering (11.1 ms, measured by giving it the same rows stored); libdeflate inflates
    the stream in 4.2 ms (2026-12-05). Other decoders are no faster: libpng with zlib-ng (imagecodecs)
    22.5 ms, libspng 23.6, OpenCV 27 — their unfiltering is slower than PIL's. PIL still parses and
    unfilters, so every mode, palette, transparency and bit depth reads as before, bit for bit (tests).

    Only for a well-formed, non-interlaced PNG whose inflated rows (size known from IHDR, after the
    loader's size checks) are at most :data:`PNG_STORED_MAX_BYTES`; anything else, a stream
    libdeflate refuses, or a missing ``deflate`` package (``png`` None) leaves ``im`` to PIL, which
    words any error.
    """
    if png is None:
        return im
    from PIL import Image

    try:
        return Image.open(io.BytesIO(_stored_png(png.before, memoryview(png.rows), png.after)), formats=["PNG"])
    except Exception:  # noqa: BLE001 - cannot happen for what PIL opened before; PIL keeps the original
        return im


def _png_grey_in_halves(png: _InflatedPng | None, im) -> np.ndarray | None:
    """The samples of a plain grey 8/16-bit PNG (``png``, from :func:`_png_inflated`; what ``np.asarray`` of PIL's image gives), its two
    halves unfiltered by PIL on both cores; None where this does not apply (the caller goes on
    with :func:`_png_with_rows_stored`).

    Why: after the libdeflate inflate, PIL's unfiltering (10 ms for a 2000×2500 radiograph) was the
    largest part of the load, on one core while the other waited. A row filtered "None" or "Sub"
    does not depend on the row above, so the image splits there into two PNGs of stored rows that
    PIL unfilters at once on two threads (it lets go of the GIL while decoding). The split row is
    the one with such a filter nearest the middle; every encoder tried writes some (OpenCV: all
    rows Sub; PIL: 120 of 2,500 None; the raw films: 6–10 % Sub); with none, the image is one piece.
    Not for tRNS/alpha, EXIF (``eXIf`` chunk: PIL would have to read it) or reduced (k > 1) images.
    """
    if png is None or im.mode not in _INT_GREY_MODES or "transparency" in im.info or png.ihdr_rest[1] != 0:
        return None
    if any(bytes(c[4:8]) == b"eXIf" for c in (*png.before, *png.after)):
        return None
    filters = np.frombuffer(png.rows, np.uint8)[:: png.stride]
    independent = np.flatnonzero(filters[1:] <= 1) + 1  # None or Sub, not the first row
    rows = memoryview(png.rows)
    from PIL import Image

    def piece(r0: int, r1: int) -> np.ndarray:
        ihdr = b"IHDR" + struct.pack(">II", png.width, r1 - r0) + png.ihdr_rest
        head = [struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))]
        body = _stored_png(head, rows[r0 * png.stride : r1 * png.stride], [b"\x00\x00\x00\x00IEND\xaeB`\x82"])
        with Image.open(io.BytesIO(body), formats=["PNG"]) as part:
            part.load()
            return np.asarray(part)

    h = png.height
    try:
        if not len(independent):
            return piece(0, h)
        split = int(independent[np.argmin(np.abs(independent - h // 2))])
        lower = _helper_thread().submit(piece, split, h)
        try:
            top = piece(0, split)
        finally:
            futures_wait([lower])  # the helper's half is done before anything returns
        bottom = lower.result()  # raises the helper's error, if any
    except Exception:  # noqa: BLE001 - e.g. a bad filter byte: the whole-image path decodes it and PIL words the error
        return None
    out = np.empty((h, png.width), top.dtype)
    out[:split], out[split:] = top, bottom
    return out


@functools.lru_cache(maxsize=None)
def _helper_thread_for(name: str, pid: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)


def helper_thread(name: str) -> ThreadPoolExecutor:
    """One worker thread per purpose (``name``) and process, for work that runs beside the caller's
    on the other core (a PNG's lower half here, the image scores in :mod:`boneage.predict`). Per
    process, because a forked batch worker must make its own, not use its parent's."""
    return _helper_thread_for(name, os.getpid())


def _helper_thread() -> ThreadPoolExecutor:
    return helper_thread("boneage-png")


def _check_dims(width: int, height: int, label: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label}: image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{label}: image is {width}x{height} px; at least {MIN_SIDE} px per side is needed"
        )


def _check_decoded_bytes(width: int, height: int, channels: int, bits: int, label: str) -> None:
    """Refuse before decoding when the decoded samples alone would pass MAX_DECODED_BYTES."""
    n = width * height * max(1, channels) * max(1, -(-int(bits) // 8))
    if n > MAX_DECODED_BYTES:
        raise ImageError(
            f"{label}: image is {width}x{height} with {channels} channel(s) of {bits} bits "
            f"({n / 2**20:.0f} MB decoded); the limit is {MAX_DECODED_BYTES // 2**20} MB"
        )


def _tiff_page_count(data: bytes, cap: int = MAX_TIFF_PAGES) -> int:
    """Pages in a TIFF by following the IFD chain, stopping after ``cap + 1``.

    Linear and bounded: PIL's ``n_frames`` re-parses the chain and grew faster than linearly
    (50,000 one-pixel pages: 15–20 s; 200,000: 211 s). A loop in the chain ends the walk.
    """
    bo = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        off = struct.unpack_from(bo + ("Q" if big else "I"), data, 8 if big else 4)[0]
    except struct.error:
        return 1
    n, seen = 0, set()
    count_fmt, entry, ptr_fmt = (bo + "Q", 20, bo + "Q") if big else (bo + "H", 12, bo + "I")
    count_size, ptr_size = struct.calcsize(count_fmt), struct.calcsize(ptr_fmt)
    while off and off not in seen and n <= cap:
        seen.add(off)
        if off + count_size > len(data):
            break
        n += 1
        nxt = off + count_size + struct.unpack_from(count_fmt, data, off)[0] * entry
        if nxt + ptr_size > len(data):
            break
        off = struct.unpack_from(ptr_fmt, data, nxt)[0]
    return max(1, n)


def _raster_bit_depth(im, data: bytes, kind: str) -> int:
    """Bits per sample as stored in the file (PIL's mode hides 16-bit colour)."""
    if kind == "PNG" and data[12:16] == b"IHDR":
        return int(data[24])
    if kind == "TIFF":
        bps = getattr(im, "tag_v2", {}).get(258)
        if isinstance(bps, (tuple, list)) and bps:
            return int(max(bps))
        if isinstance(bps, int):
            return bps
    if kind == "JPEG":
        return int(getattr(im, "bits", 8) or 8)
    return {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}.get(im.mode, 8)


def _exif_orientation(im) -> int | None:
    try:
        o = im.getexif().get(0x0112)
    except Exception:
        return None
    return int(o) if isinstance(o, int) and 1 <= o <= 8 else None


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Same result as PIL.ImageOps.exif_transpose, on a numpy array of any dtype."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1, :],
        5: lambda x: x.T,
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x.T[::-1, ::-1],
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops[orientation](a))


_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L")
_INT_GREY_MODES = ("L", "I;16", "I;16B", "I;16L", "I;16N")  # 8/16-bit unsigned grey: normalised by a table


def _pil_to_gray(im, k: int, warnings: list[str], info: dict | None = None) -> np.ndarray:
    """PIL image -> 2-D gray at the source precision, k×k block means (forces the decode): float64,
    or the stored 8/16-bit integers for a grey image kept at full size (``_normalise`` takes both).

    Rows are cropped, converted and reduced a strip at a time, so no full-size copy is made
    beyond PIL's own decoded image.
    """
    im.seek(0)
    im.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES stays False)
    mode = im.mode
    conv: str | None = None
    if mode == "1":
        conv = "L"
    elif mode in ("P", "PA"):
        conv = "RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB"
    elif mode == "La":
        conv = "LA"
    elif mode == "RGBa":
        conv = "RGBA"
    elif mode not in _GREY_MODES + ("LA", "RGB", "RGBA"):
        conv = "RGB"  # CMYK, YCbCr, LAB, HSV ...
    w, h = im.size
    if k == 1 and conv is None and mode in _INT_GREY_MODES:
        # Grey integers as stored: _normalise maps them through a table to the same float32 values,
        # without the full-size float64 copy (2000×2500 8-bit PNG: load 85 → 40 ms, 2026-11-28).
        return np.asarray(im)

    def rows(r0: int, r1: int) -> np.ndarray:
        part = im if (r0, r1) == (0, h) else im.crop((0, r0, w, r1))  # one strip: no crop copy
        return np.asarray(part.convert(conv) if conv else part)

    return _gray_reduced(rows, h, w, k, alpha_full=255.0, rgb_order=True, warnings=warnings, info=info)


def _decode_cv2(data: bytes, label: str, kind: str, k: int, warnings: list[str], info: dict | None = None) -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"{label}: {kind} file is damaged or truncated (image data cannot be decoded)")
    full = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    h, w = arr.shape[:2]
    return _gray_reduced(lambda r0, r1: arr[r0:r1], h, w, k, alpha_full=full, rgb_order=False, warnings=warnings,
                         info=info)


def _gray_reduced(rows, height: int, width: int, k: int, *, alpha_full: float, rgb_order: bool,
                  warnings: list[str], info: dict | None = None) -> np.ndarray:
    """Grey float64 of an image read a strip of rows at a time (``rows(r0, r1)`` -> samples),
    averaged over k×k blocks.

    k = 1: float64 throughout, equal to a whole-image conversion bit for bit. k > 1: each strip is
    alpha-premultiplied in float32 and box-reduced by OpenCV (``INTER_AREA``) before the
    luminance, which is linear, so nothing full-size is made in float64 (the float64 version of
    this took 6 s of a 16 s load of a 7700² RGBA PNG on the loaded 2-core box).
    """
    step = k * max(1, _STRIP_PIXELS // (width * k))
    out_w = -(-width // k)
    out = np.empty((-(-height // k), out_w), np.float64)  # filled strip by strip (no concatenation copy)
    spread_rg, spread_gb, alpha_min, colour = 0.0, 0.0, 1.0, False
    col_sums = np.zeros(5)  # n, Σrg, Σrg², Σyb, Σyb² for the colourfulness (0–255 scale)
    for r0 in range(0, height, step):
        r1 = min(height, r0 + step)
        if k == 1:
            a = np.asarray(rows(r0, r1)).astype(np.float64)
            gray, stats = _channels_to_gray(a, alpha_full, rgb_order=rgb_order)
        else:
            a = np.asarray(rows(r0, r1)).astype(np.float32)
            stats = {}
            has_alpha = a.ndim == 3 and a.shape[2] in (2, 4)
            if has_alpha:
                alpha = a[..., -1] * np.float32(1.0 / alpha_full)
                stats["alpha_min"] = float(alpha.min())
                if stats["alpha_min"] < 1.0:
                    a[..., :-1] *= alpha[..., None]  # premultiplied: composited over black
            small = _area_reduce(a, k, out_w)
            if has_alpha:
                small = small[..., :-1]
            gray, more = _channels_to_gray(small.astype(np.float64), alpha_full, rgb_order=rgb_order)
            stats.update(more)
        if stats.get("rg") is not None:
            colour = True
            spread_rg, spread_gb = max(spread_rg, stats["rg"]), max(spread_gb, stats["gb"])
        alpha_min = min(alpha_min, stats.get("alpha_min", 1.0))
        if "col" in stats:
            col_sums += stats["col"]
        out[r0 // k : r0 // k + gray.shape[0]] = gray
        del a, gray
    if colour and spread_rg + spread_gb > 0.05 * alpha_full:
        warnings.append("colour image converted to gray (luminance)")
    if alpha_min < 1.0:
        warnings.append("transparent areas composited over black")
    if info is not None and col_sums[0] > 0:
        n, s_rg, s_rg2, s_yb, s_yb2 = col_sums
        m_rg, m_yb = s_rg / n, s_yb / n
        sd = math.sqrt(max(0.0, s_rg2 / n - m_rg**2) + max(0.0, s_yb2 / n - m_yb**2))
        info["colourfulness"] = sd + 0.3 * math.hypot(m_rg, m_yb)  # Hasler & Süsstrunk (2003)
    return out


def _area_reduce(a: np.ndarray, k: int, out_w: int) -> np.ndarray:
    """Box-reduce a strip (rows a multiple of k, except the last) by k; 1–4 channels."""
    import cv2

    out_h = -(-a.shape[0] // k)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return cv2.resize(a, (out_w, out_h), interpolation=cv2.INTER_AREA)


def _block_mean(a: np.ndarray, k: int, weight: np.ndarray | None = None) -> np.ndarray:
    """Mean over k×k blocks of a 2-D array (edge blocks over the pixels they hold).

    With ``weight`` (0/1), the weighted mean; blocks of weight 0 come out NaN.
    """
    if k == 1:
        return a if weight is None else np.where(weight > 0, a, np.nan)
    h, w = a.shape
    ri, ci = np.arange(0, h, k), np.arange(0, w, k)
    if weight is None:
        s = np.add.reduceat(np.add.reduceat(a, ri, axis=0), ci, axis=1)
        n = np.outer(np.minimum(k, h - ri), np.minimum(k, w - ci))
        return s / n
    wa = np.where(weight > 0, a, 0.0)
    s = np.add.reduceat(np.add.reduceat(wa, ri, axis=0), ci, axis=1)
    n = np.add.reduceat(np.add.reduceat(weight.astype(np.float64), ri, axis=0), ci, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1e-300), np.nan)


def _channels_to_gray(a: np.ndarray, alpha_full: float, *, rgb_order: bool) -> tuple[np.ndarray, dict]:
    """(H, W, C) -> (H, W): luminance, alpha composited over black (see module docstring).

    Returns the grey image and what the caller needs for its warnings: the largest R−G and G−B
    differences (colour) and the smallest alpha.
    """
    stats: dict = {}
    if a.ndim == 2:
        return a, stats
    c = a.shape[2]
    alpha = None
    if c in (2, 4):
        alpha = a[..., -1] / alpha_full
        a = a[..., :-1]
        c -= 1
    if c == 1:
        gray = a[..., 0]
    else:
        r, g, b = (a[..., 0], a[..., 1], a[..., 2]) if rgb_order else (a[..., 2], a[..., 1], a[..., 0])
        gray = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
        if gray.size:
            stats["rg"], stats["gb"] = float(np.max(np.abs(r - g))), float(np.max(np.abs(g - b)))
            f = 255.0 / alpha_full  # colourfulness sums on a 0–255 scale (boneage.acceptance)
            rg, yb = (r - g) * f, (0.5 * (r + g) - b) * f
            stats["col"] = np.array([rg.size, rg.sum(), (rg * rg).sum(), yb.sum(), (yb * yb).sum()])
    if alpha is not None and alpha.size:
        stats["alpha_min"] = float(alpha.min())
        if stats["alpha_min"] < 1.0:
            gray = gray * alpha
    return gray, stats


# --------------------------------------------------------------------------- DICOM

# Transfer syntax -> what to install when pydicom has no decoder for it.
_DICOM_HINTS = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.70": "pylibjpeg and pylibjpeg-libjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.80": "pylibjpeg and pylibjpeg-libjpeg (or pyjpegls, python-gdcm)",
    "1.2.840.10008.1.2.4.81": "pylibjpeg and pylibjpeg-libjpeg (or pyjpegls, python-gdcm)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg and pylibjpeg-openjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg and pylibjpeg-openjpeg (or python-gdcm)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg and pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg and pylibjpeg-rle (or python-gdcm)",
}
_LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103",
}


def _load_dicom(data: bytes, label: str, ds=None) -> LoadedImage:
    import pydicom

    if ds is None:
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=False)
        except Exception as exc:
            raise ImageError(f"{label}: damaged or truncated DICOM file ({_exc_text(exc)})") from None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(f"{label}: DICOM file holds no image (no pixel data)")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2", ""):
        what = photometric or f"{samples} samples per pixel"
        raise ImageError(f"{label}: colour DICOM ({what}) is not supported; export as grayscale")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise ImageError(f"{label}: DICOM file has no valid image size (Rows/Columns)")
    _check_dims(cols, rows, label)

    warnings: list[str] = []
    if not photometric:
        warnings.append("PhotometricInterpretation missing; assumed MONOCHROME2")
        photometric = "MONOCHROME2"
        ds.PhotometricInterpretation = "MONOCHROME2"
    n_frames = _int_or(ds.get("NumberOfFrames", 1), 1)
    if n_frames > 1:
        warnings.append(f"DICOM has {n_frames} frames; using the first")
    tsuid = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not tsuid:  # bare dataset (no file meta): pixels are in the encoding pydicom read it with
        tsuid = _infer_transfer_syntax(ds)
    _check_decoder(tsuid, label)
    if tsuid in _LOSSY_SYNTAXES or str(ds.get("LossyImageCompression", "")) == "01":
        warnings.append("DICOM pixel data was lossy compressed")

    _check_codestream_size(ds, tsuid, rows, cols, label)
    _check_decoded_bytes(cols, rows, 1, _int_or(ds.get("BitsAllocated", 16), 16), label)
    try:
        raw = pydicom.pixels.pixel_array(ds, index=0 if n_frames > 1 else None)
    except (MemoryError, ImageError):
        raise
    except Exception as exc:
        raise ImageError(f"{label}: DICOM pixel data is damaged or truncated ({_exc_text(exc, 100)})") from None
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise ImageError(f"{label}: DICOM pixel data has unexpected shape {raw.shape}")
    raw = _dicom_stored_bits(raw, ds, tsuid, label, warnings)

    k = reduction_factor(cols, rows)
    valid = _dicom_non_padding(raw, ds, warnings)
    windowed, values, valid, blank_window = _dicom_windowed(raw, ds, valid, k)
    del raw
    if blank_window:
        warnings.append("DICOM window leaves a blank image; ignored it (min-max used)")
        windowed = values
    elif "WindowCenter" in ds or "VOILUTSequence" in ds:
        windowed = _dicom_window_clipping(values, windowed, valid, photometric == "MONOCHROME1", warnings)
    pixels = _normalise(windowed, label, valid)

    inverted = photometric == "MONOCHROME1"
    if str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE":
        inverted = not inverted
        warnings.append("Presentation LUT Shape INVERSE applied")
    if inverted:
        pixels = 1.0 - pixels  # == min-max of (2**BitsStored - 1) - x, done after the window
    if valid is not None:
        pixels[~valid] = 0.0  # padding (outside the exposed field) shown as black background

    bits = _int_or(ds.get("BitsStored", ds.get("BitsAllocated", 16)), 16)
    meta = ImageMeta(
        source=label, format="DICOM", width=cols, height=rows, bit_depth=bits,
        photometric=photometric, inverted_by_loader=inverted,
        sex=_dicom_sex(ds.get("PatientSex")),
        birth_date=_dicom_date(ds.get("PatientBirthDate"), "PatientBirthDate", warnings),
        study_date=(
            _dicom_date(ds.get("StudyDate"), "StudyDate", warnings)
            or _dicom_date(ds.get("AcquisitionDate"), "AcquisitionDate", warnings)
        ),
        patient_age_months=_dicom_age_months(ds.get("PatientAge"), warnings),
        pixel_spacing_mm=_dicom_spacing(ds, warnings),
        warnings=warnings,
        reduced_by=k,
        patient_id=_dicom_text(ds.get("PatientID")),
        accession_number=_dicom_text(ds.get("AccessionNumber")),
    )
    return LoadedImage(pixels, meta, checked=True)


_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _dicom_stored_bits(raw: np.ndarray, ds, tsuid: str, label: str, warnings: list[str]) -> np.ndarray:
    """Stored values beyond ``BitsStored``: read them whole when that is certainly right.

    pydicom masks each value to ``BitsStored`` bits, as the standard says. When the header
    understates the depth (e.g. BitsStored 8 over 12-bit data) that mask wraps the picture: a
    hand measured 137 months read correctly came out at 160, with no warning. For uncompressed
    unsigned data the raw words are checked: high bits set where no overlay plane is declared
    in them means the header is wrong, so every bit is used and that is said. Signed data with
    such bits cannot be sign-extended with any certainty and is refused. Overlays stored in the
    unused high bits (retired, but still written by old modalities) stay masked out.
    """
    alloc = _int_or(ds.get("BitsAllocated", 0), 0)
    stored = _int_or(ds.get("BitsStored", alloc), alloc)
    if alloc not in (16, 32) or not 0 < stored < alloc or tsuid not in _UNCOMPRESSED or "PixelData" not in ds:
        return raw
    rows, cols = raw.shape
    data = ds.PixelData
    n = rows * cols
    dt = np.dtype(f"{'>' if tsuid == '1.2.840.10008.1.2.2' else '<'}u{alloc // 8}")
    if len(data) < n * dt.itemsize:
        return raw
    full = np.frombuffer(data, dt, count=n).reshape(rows, cols)
    high = full >> stored
    if not high.any():
        return raw
    overlay_bits = {int(ds[g, 0x0102].value) for g in range(0x6000, 0x6020, 2)
                    if (g, 0x0102) in ds and (g, 0x3000) not in ds and ds[g, 0x0102].value is not None}
    if any(b >= stored for b in overlay_bits):
        warnings.append("overlay plane stored in the pixel data's unused high bits; left out of the image")
        return raw
    if _int_or(ds.get("PixelRepresentation", 0), 0) == 1:
        raise ImageError(f"{label}: DICOM pixel values use more bits than BitsStored ({stored}) in signed data; "
                         "the picture cannot be read safely (fix the header: BitsStored/HighBit)")
    used = int(full.max()).bit_length()
    warnings.append(f"DICOM pixel values use {used} bits but BitsStored says {stored}; read all {used} bits "
                    f"(the header was wrong: masking to {stored} bits would wrap the picture)")
    return full.astype(np.int64 if alloc == 32 else np.int32)


def _dicom_window_clipping(values: np.ndarray, windowed: np.ndarray, valid: np.ndarray | None, mono1: bool,
                           warnings: list[str]) -> np.ndarray:
    """A VOI window that saturates most of the subject is ignored (full range used), and said.

    The window is a display choice; the model was trained on full-range (min-max) pictures, and a
    narrow window that saturates the hand turned a reading into 96.5 months, "delayed", Z −2.85.
    The subject is approximated as the pixels on the bright side (as displayed) of an Otsu
    threshold of the stored values; when over half of them sit at one end of the window and
    their stored values differ (the window destroyed real detail, not a flat collimator
    border), the window is dropped. Moderate clipping (e.g. dense markers) is left alone.
    """
    v = (values if valid is None else values[valid]).ravel()
    w = (windowed if valid is None else windowed[valid]).ravel()
    if v.size < 64 or float(v.max()) == float(v.min()) or float(w.max()) == float(w.min()):
        return windowed
    import cv2

    lo_v, hi_v = float(np.percentile(v, 1)), float(np.percentile(v, 99))
    if hi_v <= lo_v:
        return windowed
    u8 = np.clip((v - lo_v) / (hi_v - lo_v) * 255, 0, 255).astype(np.uint8).reshape(-1, 1)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    subject = (u8[:, 0] <= t) if mono1 else (u8[:, 0] > t)
    if subject.sum() < 32:
        return windowed
    ws, vs = w[subject], v[subject]
    for end, name in ((float(w.max()), "bright"), (float(w.min()), "dark")):
        at_end = ws == end
        share = float(at_end.mean())
        if share > 0.5:
            p5, p95 = np.percentile(vs[at_end], (5, 95))
            if (p95 - p5) > 0.1 * (hi_v - lo_v):
                warnings.append(f"DICOM window saturates {share:.0%} of the subject ({name}); ignored it "
                                "(full range used, as the model was trained)")
                return values
    return windowed


def _dicom_windowed(raw: np.ndarray, ds, valid: np.ndarray | None, k: int):
    """Modality LUT then VOI LUT/window, a strip of rows at a time, reduced by k×k block means.

    Returns (windowed, values, valid, blank_window) at the reduced size, where ``values`` is the
    image after the modality LUT only and ``blank_window`` says the window leaves the real
    (non-padding) pixels blank or non-finite while the values are not uniform. The statistics
    for that test are taken at full resolution, as before the reduction existed; no float64
    array of the full image is made (a 60 MP DICOM once needed three of them, 1.4 GB).
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    has_window = "WindowCenter" in ds or "VOILUTSequence" in ds
    h, w = raw.shape
    step = k * max(1, _STRIP_PIXELS // (w * k))
    win_parts, val_parts = [], []
    w_lo, w_hi, v_lo, v_hi, w_finite, n_valid = np.inf, -np.inf, np.inf, -np.inf, True, 0
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        vs = np.asarray(apply_modality_lut(raw[r0:r1], ds), dtype=np.float64)
        ws = np.asarray(apply_voi_lut(vs, ds, index=0), dtype=np.float64)
        ok = None if valid is None else valid[r0:r1]
        if has_window:
            wv, vv = (ws, vs) if ok is None else (ws[ok], vs[ok])
            if wv.size:
                n_valid += wv.size
                w_finite = w_finite and bool(np.isfinite(wv).all())
                w_lo, w_hi = min(w_lo, float(wv.min())), max(w_hi, float(wv.max()))
                v_lo, v_hi = min(v_lo, float(vv.min())), max(v_hi, float(vv.max()))
        win_parts.append(_block_mean(ws, k, ok))
        val_parts.append(_block_mean(vs, k, ok))
    windowed, values = np.concatenate(win_parts), np.concatenate(val_parts)
    if valid is not None:
        valid = ~np.isnan(values)
    blank = bool(has_window and n_valid and (not w_finite or w_hi == w_lo) and v_hi != v_lo)
    return windowed, values, valid, blank


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic; JPEG-LS).
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def _codestream_size(frag: bytes) -> tuple[int, int] | None:
    """(width, height) written in a JPEG / JPEG-LS / JPEG 2000 codestream's header, if found."""
    i = frag.find(b"\xff\x4f\xff\x51", 0, 4096)  # JPEG 2000: SOC + SIZ (also inside a JP2 box)
    if i >= 0 and len(frag) >= i + 24:
        xsiz, ysiz, xo, yo = struct.unpack_from(">IIII", frag, i + 8)
        return max(0, xsiz - xo), max(0, ysiz - yo)
    if frag[:2] != b"\xff\xd8":
        return None
    pos = 2
    for _ in range(256):  # markers before the frame header: APPn, DQT, DHT, COM ...
        if pos + 9 > len(frag) or frag[pos] != 0xFF:
            return None
        marker = frag[pos + 1]
        if marker in _SOF_MARKERS:
            height, width = struct.unpack_from(">HH", frag, pos + 5)
            return width, height
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        pos += 2 + struct.unpack_from(">H", frag, pos + 2)[0]
    return None


def _check_codestream_size(ds, tsuid: str, rows: int, cols: int, label: str) -> None:
    """Refuse compressed DICOM pixel data whose codestream is not the size the header says.

    Decoders allocate what the codestream says, not what Rows/Columns say: a 12000² JPEG 2000
    inside a 1040×800 header decoded to 0.92 GB before pydicom compared the two.
    """
    from pydicom.uid import UID

    if not tsuid or not UID(tsuid).is_compressed or "PixelData" not in ds:
        return
    from pydicom.encaps import generate_fragments

    px = ds.PixelData
    try:
        # Basic Offset Table item first, then the fragments of the first frame.
        bot_len = struct.unpack_from("<I", px, 4)[0]
        frag = next(generate_fragments(px[8 + bot_len :]), b"")
    except Exception:
        return  # let the decoder report damaged data
    size = _codestream_size(bytes(frag[:65536]))
    if size is not None and size != (cols, rows):
        raise ImageError(
            f"{label}: DICOM header says {cols}x{rows} but its compressed image is {size[0]}x{size[1]}; "
            "the file is inconsistent and was not decoded"
        )
def _dicom_text(value) -> str | None:
    """A short identifier tag as one printable line, or None when absent or empty."""
    text = " ".join(str(value or "").split())
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:64] or None


def _infer_transfer_syntax(ds) -> str:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = ds.original_encoding
    uid = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    return str(uid)


def _dicom_non_padding(raw: np.ndarray, ds, warnings: list[str]) -> np.ndarray | None:
    """Mask of real pixels, or None when there is no Pixel Padding Value.

    Padding (e.g. around collimator shutters) is not image data: it must not set the min-max
    range, and it is shown as black background, like the transparent areas of PNGs.
    """
    pad = ds.get("PixelPaddingValue")
    if pad is None or isinstance(pad, (bytes, list, tuple)):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    lo, hi = (pad, pad) if limit is None or isinstance(limit, (bytes, list, tuple)) else sorted((pad, limit))
    padded = (raw >= lo) & (raw <= hi)
    if not padded.any():
        return None
    warnings.append(f"{100 * padded.mean():.0f}% of pixels are DICOM padding; shown as black")
    return ~padded


def _check_decoder(tsuid: str, label: str) -> None:
    """Refuse, naming the package to install, when pydicom cannot decode this transfer syntax."""
    if not tsuid:
        return
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(tsuid)
    if not uid.is_compressed:
        return
    name = uid.name if uid.is_valid and uid.name != tsuid else tsuid
    try:
        dec = get_decoder(uid)
    except NotImplementedError:
        raise ImageError(f"{label}: DICOM compression '{name}' is not supported; export uncompressed") from None
    if not dec.is_available:
        hint = _DICOM_HINTS.get(tsuid) or "; ".join(dec.missing_dependencies) or "python-gdcm"
        raise ImageError(f"{label}: DICOM is compressed as '{name}' and no decoder is installed; install {hint}")


def _int_or(v: object, default: int) -> int:
    try:
        return int(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _dicom_sex(v: object) -> str | None:
    """PatientSex M/F by the package's one parser; O (other) or empty: not given."""
    return sex_or_none(str(v or ""))


def _dicom_date(v: object, tag: str, warnings: list[str]) -> _dt.date | None:
    """DA value 'YYYYMMDD' (also legacy 'YYYY.MM.DD') -> date; unreadable -> None + warning."""
    s = str(v or "").strip()
    if not s:
        return None
    digits = s.replace(".", "").replace("-", "")
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
        return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        warnings.append(f"{tag} '{s}' is not a valid date; ignored")
        return None


_DAYS_PER_MONTH = 365.25 / 12


def _dicom_age_months(v: object, warnings: list[str]) -> float | None:
    """AS value like '010Y', '006M', '012W', '020D' -> months."""
    s = str(v or "").strip().upper()
    if not s:
        return None
    m = re.fullmatch(r"(\d{1,3})\s*([DWMY])", s)
    if not m:
        warnings.append(f"PatientAge '{s}' is not a DICOM age (e.g. 010Y); ignored")
        return None
    n, unit = int(m.group(1)), m.group(2)
    return float({"Y": n * 12, "M": n, "W": n * 7 / _DAYS_PER_MONTH, "D": n / _DAYS_PER_MONTH}[unit])


def _dicom_spacing(ds, warnings: list[str]) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else ImagerPixelSpacing (detector plane)."""
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        v = ds.get(tag)
        if v is None:
            continue
        try:
            r, c = float(v[0]), float(v[1])
        except (TypeError, ValueError, IndexError):
            warnings.append(f"{tag} is unreadable; ignored")
            continue
        if r > 0 and c > 0 and np.isfinite(r) and np.isfinite(c):
            if tag == "ImagerPixelSpacing":
                warnings.append("pixel spacing from ImagerPixelSpacing (at the detector, not magnification-corrected)")
            return (r, c)
    return None


# --------------------------------------------------------------------------- shared helpers


def _normalise(a: np.ndarray, label: str, valid: np.ndarray | None = None) -> np.ndarray:
    """Min-max to float32 [0, 1] over the image's own range (only `valid` pixels, if given).

    Blank or non-finite images raise ImageError.

    Without ``valid``, five passes over the image, not eight: a NaN makes ``min`` NaN and an infinity
    makes ``min`` or ``max`` infinite, so checking those two stands for a whole-image ``isfinite``
    (and, with no NaN left, ``nan_to_num`` has nothing to do); (a - lo) / (hi - lo) of finite values
    in [lo, hi] lies in [0, 1] exactly, so a clip would change nothing. Bit-identical output;
    measured on a 2000×2500 radiograph: 101–129 ms → 42–45 ms (2 cores, training beside it). With
    ``valid`` (DICOM padding), the pixels outside it may be NaN or out of range: zeroed and clipped.

    8/16-bit unsigned integers (grey PNG, TIFF) go through a table of the same arithmetic on each
    possible value, so the result is the same float32 bit for bit, with one pass over the image
    instead of a float64 copy and three passes (a 2000×2500 PNG: 45 ms less); 8-bit tables are
    read by ``cv2.LUT`` (1.2 ms against 14 for numpy's indexing, equal output).
    """
    a = np.asarray(a)
    if valid is None and a.dtype.kind == "u" and a.dtype.itemsize <= 2 and a.size:
        lo, hi = int(a.min()), int(a.max())
        if hi <= lo:
            raise ImageError(f"{label}: image is blank (one uniform value)")
        table = np.arange(256 if a.dtype == np.uint8 else hi + 1, dtype=np.float64)
        table -= lo
        table /= hi - lo
        table = table.astype(np.float32)
        if a.dtype == np.uint8 and a.ndim == 2:
            import cv2

            return cv2.LUT(a, table)  # the same table, read by OpenCV: 1 ms instead of 14 on 2000×2500
        return np.take(table, a)
    a = np.asarray(a, dtype=np.float64)
    v = a if valid is None else a[valid]
    if v.size == 0:
        raise ImageError(f"{label}: image is blank (only padding pixels)")
    lo, hi = float(v.min()), float(v.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError(f"{label}: image contains NaN or infinite values")
    if hi <= lo:
        raise ImageError(f"{label}: image is blank (one uniform value)")
    x = a - lo  # the same arithmetic as (a - lo) / (hi - lo), with one temporary instead of three
    x /= hi - lo
    if valid is None:
        return x.astype(np.float32)
    out = np.nan_to_num(x, nan=0.0, copy=False).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def _exc_text(exc: BaseException, limit: int = 160) -> str:
    msg = str(exc).strip() or type(exc).__name__
    return _one_line(msg, limit)


def _one_line(s: str, limit: int = 400) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
