"""Hostile-but-small inputs, generated on demand (the hostile-input tests and ``bench/hostile.py``).

Each generator writes one file that is cheap to make and small on disk but was expensive or
dangerous for the loader before issue #14 (figures measured then on the 2-core development box):

* ``png_rgba16``: 7700×7700 16-bit RGBA PNG, ~0.5 MB, just under the 60 MP limit; it went
  through a float64 H×W×4 array: 4.5–5.2 GB and about 20 s.
* ``jpeg_big``: 7700×7700 grey JPEG (~1 MB); decoded at full size before any reduction.
* ``tiff_pages``: a 256×256 first page followed by N one-pixel pages; PIL's page count took
  15–20 s for 50,000 pages and 211 s for 200,000 (21 MB).
* ``dicom_j2k_lie``: a DICOM whose header says 1040×800 but whose JPEG 2000 codestream says
  12000×12000; decoded in full (0.92 GB from 1.9 MB) before the size check.
* ``dicom_big``: 7000×7000 16-bit uncompressed DICOM (98 MB, just under the upload limit).

The files are written with plain ``zlib``/``struct`` so that making them does not itself need the
memory they are meant to test (a 7700² 16-bit RGBA array is 474 MB).
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_rgba(path: Path, side: int = 7700, bits: int = 16) -> Path:
    """RGBA PNG (8 or 16 bits per sample): an opaque bright rectangle (a stand-in hand) on opaque
    black, rows filtered 'Up' so that identical rows compress to almost nothing."""
    n = bits // 8
    bpp = 4 * n
    top = (1 << bits) - 1
    fg = b"".join(int(v * top).to_bytes(n, "big") for v in (0.61, 0.58, 0.60, 1.0))
    bg = b"".join(int(v * top).to_bytes(n, "big") for v in (0.0, 0.0, 0.0, 1.0))
    x0, x1 = side // 3, 2 * side // 3
    bg_row = bg * side
    fg_row = bg * x0 + fg * (x1 - x0) + bg * (side - x1)
    zero = bytes(side * bpp)
    y0, y1 = side // 5, 4 * side // 5
    comp = zlib.compressobj(6)
    idat = bytearray()
    prev = None
    for y in range(side):
        row = fg_row if y0 <= y < y1 else bg_row
        # filter None at the first row and where the content changes, else Up (same as above)
        idat += comp.compress(b"\x00" + row if row is not prev else b"\x02" + zero)
        prev = row
    idat += comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, bits, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(idat))
                     + _png_chunk(b"IEND", b""))
    return path


def png_rgba16(path: Path) -> Path:
    return png_rgba(path, 7700, 16)


def png_rgba8(path: Path) -> Path:
    return png_rgba(path, 7700, 8)


def png_rgb16_4000(path: Path) -> Path:
    return png_rgba(path, 4000, 16)


def jpeg_big(path: Path, side: int = 7700) -> Path:
    import cv2

    img = np.zeros((side, side), np.uint8)
    img[side // 5 : 4 * side // 5, side // 3 : 2 * side // 3] = 200
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def tiff_pages(path: Path, pages: int = 200_000) -> Path:
    """Little-endian TIFF: a 256×256 8-bit first page, then ``pages - 1`` one-pixel pages."""
    side = 256
    first = np.zeros((side, side), np.uint8)
    first[64:192, 80:176] = 200
    head = bytearray(b"II*\x00" + struct.pack("<I", 0))
    data_off = len(head)
    head += first.tobytes()
    one_px_off = len(head)
    head += b"\x80"

    def ifd(w: int, h: int, strip_off: int, nbytes: int) -> bytearray:
        tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, 4, 1, strip_off), (278, 3, 1, h), (279, 4, 1, nbytes)]
        body = struct.pack("<H", len(tags))
        for tag, typ, count, value in tags:
            body += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
        return bytearray(body + struct.pack("<I", 0))

    first_ifd = len(head)
    struct.pack_into("<I", head, 4, first_ifd)
    page0, page = ifd(side, side, data_off, side * side), ifd(1, 1, one_px_off, 1)
    size = len(page)
    out = head + page0 + page * (pages - 1)
    for i in range(pages - 1):  # each IFD's last 4 bytes point at the next one
        end = first_ifd + (i + 1) * size
        struct.pack_into("<I", out, end - 4, end)
    path.write_bytes(bytes(out))
    return path


def png_header_only(path: Path, side: int = 7700, bits: int = 16) -> Path:
    """A PNG whose header says side² RGBA at ``bits`` but whose data is a stub: the loader must
    refuse it from the header alone (decoding would fail differently)."""
    ihdr = struct.pack(">IIBBBBB", side, side, bits, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


def _dicom(rows: int, cols: int, pixel_data: bytes, tsuid: str, *, encapsulated: bool, **extra) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = tsuid
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientSex = "DX", "F"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB" if encapsulated else "OW"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom_j2k_lie(path: Path, claimed: tuple[int, int] = (1040, 800), real: int = 12000) -> Path:
    """DICOM header Rows×Columns = ``claimed``; the JPEG 2000 codestream's SIZ says real×real."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    siz = struct.pack(">HHIIIIIIIIH", 41, 0, real, real, 0, 0, real, real, 0, 0, 1) + b"\x0f\x01\x01"
    frag = b"\xff\x4f\xff\x51" + siz + b"\xff\x52" + bytes(1_900_000) + b"\xff\xd9"
    path.write_bytes(_dicom(claimed[0], claimed[1], encapsulate([frag]), JPEG2000Lossless, encapsulated=True))
    return path


def dicom_big(path: Path, side: int = 7000) -> Path:
    """Uncompressed 16-bit DICOM of side² pixels (7000² = 98 MB, under the 10⁸-byte limit)."""
    from pydicom.uid import ExplicitVRLittleEndian

    img = np.zeros((side, side), np.uint16)
    img[side // 5 : 4 * side // 5, side // 3 : 2 * side // 3] = 3000
    path.write_bytes(_dicom(side, side, img.tobytes(), ExplicitVRLittleEndian, encapsulated=False))
    return path


GENERATORS = {
    "png_rgba16_7700": (png_rgba16, "16-bit RGBA PNG 7700×7700 (just under 60 MP; 474 MB decoded)"),
    "png_rgba8_7700": (png_rgba8, "8-bit RGBA PNG 7700×7700 (237 MB decoded)"),
    "png_rgba16_4000": (png_rgb16_4000, "16-bit RGBA PNG 4000×4000 (128 MB decoded)"),
    "jpeg_7700": (jpeg_big, "grey JPEG 7700×7700"),
    "tiff_200k_pages": (tiff_pages, "TIFF with 200,000 pages"),
    "dicom_j2k_12000_in_1040x800": (dicom_j2k_lie, "JPEG 2000 DICOM, codestream 12000² in a 1040×800 header"),
    "dicom_7000_u16": (dicom_big, "uncompressed 16-bit DICOM 7000×7000 (98 MB)"),
}


# Peak memory of one load, measured inside a fresh interpreter (the tests and the benchmark both
# use it). ``ru_maxrss`` is a high-water mark for the whole process life, so a peak during the
# imports would hide the load's own; Linux lets a process reset its mark (``/proc/self/clear_refs``,
# value 5) and read it back as VmHWM, which is used where available.
PEAK_PROBE = """
import json, resource, sys, time
import numpy, cv2, PIL.Image, pydicom
import boneage.pipeline
from boneage.io import ImageError, load_image

def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return None

try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, how = _status("VmRSS"), "VmHWM"
except OSError:
    before, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"
t, c = time.perf_counter(), time.process_time()
try:
    im = load_image(sys.argv[1])
    out = {"ok": True, "shape": list(im.pixels.shape), "k": im.meta.reduced_by, "dtype": str(im.pixels.dtype),
           "warnings": im.meta.warnings,
           "result": f"loaded {im.pixels.shape[1]}x{im.pixels.shape[0]} (reduced {im.meta.reduced_by}x)"}
except ImageError as e:
    out = {"ok": False, "error": str(e), "result": "refused: " + str(e).split(": ", 1)[-1]}
out["seconds"] = time.perf_counter() - t
out["cpu_seconds"] = time.process_time() - c  # all threads; less sensitive than wall time to a busy machine
peak = _status("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out["peak_mb"] = peak - before
out["peak_measure"] = how
print(json.dumps(out))
"""
