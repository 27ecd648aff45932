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
"""
from __future__ import annotations

import datetime as _dt
import io
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import numpy as np

from .vocab import sex_or_none

MIN_SIDE = 64
MAX_PIXELS = 60_000_000
MAX_BYTES = 100 * 1024 * 1024

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
        kind = _sniff(data)
        if kind == "DICOM":
            return _load_dicom(data, label)
        if kind in ("PNG", "JPEG", "BMP", "TIFF"):
            return _load_raster(data, label, kind)
        ds = _try_preambleless_dicom(data)
        if ds is not None:
            return _load_dicom(data, label, ds=ds)
        raise ImageError(f"{label}: {_describe_unknown(data)}")
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode this image") from None
    except RecursionError:
        raise ImageError(f"{label}: image file structure is too deeply nested to read") from None
    except Exception as exc:  # cv2.error, OSError, struct.error, pydicom errors, ...
        raise ImageError(f"{label}: could not read image ({_exc_text(exc)})") from exc


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
            f"{label}: file is {n / 2**20:.0f} MB; the limit is {MAX_BYTES // 2**20} MB"
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
        n_frames = getattr(im, "n_frames", 1)
        if n_frames > 1:
            warnings.append(f"file holds {n_frames} images; using the first")
        bit_depth = _raster_bit_depth(im, data, kind)
        mode = im.mode
        orientation = _exif_orientation(im)
        try:
            if bit_depth > 8 and mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                # PIL reduces 16-bit colour PNG/TIFF to 8-bit RGB; OpenCV keeps the full depth.
                gray = _decode_cv2(data, label, kind, warnings)
            else:
                gray = _pil_to_gray(im, warnings)
        except (OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{label}: {kind} file is damaged or truncated ({_exc_text(exc, 100)})") from None
    if orientation not in (None, 1):
        gray = _apply_orientation(gray, orientation)
        warnings.append(f"EXIF orientation {orientation} applied")
    if kind == "JPEG":
        warnings.append(f"image is {bit_depth}-bit JPEG: lossy compression")
    elif bit_depth < 8:
        warnings.append(f"image has only {bit_depth}-bit depth")
    h, w = gray.shape
    meta = ImageMeta(
        source=label, format=kind, width=w, height=h, bit_depth=bit_depth,
        photometric=mode, inverted_by_loader=False, warnings=warnings,
    )
    return LoadedImage(_normalise(gray, label), meta)


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


def _pil_to_gray(im, warnings: list[str]) -> np.ndarray:
    """PIL image -> 2-D float64 gray at the source precision (forces the full decode)."""
    im.seek(0)
    im.load()  # raises OSError on truncated data (LOAD_TRUNCATED_IMAGES stays False)
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L"):
        return np.asarray(im).astype(np.float64)
    if mode == "1":
        return np.asarray(im.convert("L")).astype(np.float64)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode not in ("LA", "La", "RGB", "RGBA", "RGBa"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV ...
    if im.mode == "La":
        im = im.convert("LA")
    if im.mode == "RGBa":
        im = im.convert("RGBA")
    a = np.asarray(im).astype(np.float64)
    return _channels_to_gray(a, 255.0, rgb_order=True, warnings=warnings)


def _decode_cv2(data: bytes, label: str, kind: str, warnings: list[str]) -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError(f"{label}: {kind} file is damaged or truncated (image data cannot be decoded)")
    a = arr.astype(np.float64)
    if a.ndim == 2:
        return a
    full = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.integer) else 1.0
    return _channels_to_gray(a, full, rgb_order=False, warnings=warnings)


def _channels_to_gray(a: np.ndarray, alpha_full: float, *, rgb_order: bool, warnings: list[str]) -> np.ndarray:
    """(H, W, C) -> (H, W): luminance, alpha composited over black (see module docstring)."""
    if a.ndim == 2:
        return a
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
        spread = float(np.max(np.abs(r - g)) + np.max(np.abs(g - b)))
        if spread > 0.05 * alpha_full:
            warnings.append("colour image converted to gray (luminance)")
    if alpha is not None and float(alpha.min()) < 1.0:
        gray = gray * alpha
        warnings.append("transparent areas composited over black")
    return gray


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
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

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

    try:
        raw = pydicom.pixels.pixel_array(ds, index=0 if n_frames > 1 else None)
    except (MemoryError, ImageError):
        raise
    except Exception as exc:
        raise ImageError(f"{label}: DICOM pixel data is damaged or truncated ({_exc_text(exc, 100)})") from None
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise ImageError(f"{label}: DICOM pixel data has unexpected shape {raw.shape}")

    valid = _dicom_non_padding(raw, ds, warnings)
    values = apply_modality_lut(raw, ds).astype(np.float64)
    windowed = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        w = windowed if valid is None else windowed[valid]
        v = values if valid is None else values[valid]
        if w.size and (not np.isfinite(w).all() or float(w.max()) == float(w.min())):
            if v.size and float(v.max()) != float(v.min()):
                warnings.append("DICOM window leaves a blank image; ignored it (min-max used)")
                windowed = values
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
        patient_id=_dicom_text(ds.get("PatientID")),
        accession_number=_dicom_text(ds.get("AccessionNumber")),
    )
    return LoadedImage(pixels, meta)


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
    """
    a = np.asarray(a, dtype=np.float64)
    v = a if valid is None else a[valid]
    if not np.isfinite(v).all():
        raise ImageError(f"{label}: image contains NaN or infinite values")
    if v.size == 0:
        raise ImageError(f"{label}: image is blank (only padding pixels)")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        raise ImageError(f"{label}: image is blank (one uniform value)")
    out = np.nan_to_num((a - lo) / (hi - lo), nan=0.0).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def _exc_text(exc: BaseException, limit: int = 160) -> str:
    msg = str(exc).strip() or type(exc).__name__
    return _one_line(msg, limit)


def _one_line(s: str, limit: int = 400) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
