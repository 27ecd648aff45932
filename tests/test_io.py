"""boneage.io: every supported input loads faithfully; every bad input gives one clear ImageError."""
from __future__ import annotations

import datetime as dt
import io
import json
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

from boneage import io as bio
from boneage.io import MAX_BYTES, MIN_SIDE, ImageError, load_image, to_uint8

HIRES = sorted((Path(__file__).parent / "fixtures" / "hires").glob("*.png"))


# --------------------------------------------------------------------------- helpers


def minmax(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return ((a - a.min()) / (a.max() - a.min())).astype(np.float32)


def ramp(h: int = 96, w: int = 80, hi: int = 255, dtype=np.uint8) -> np.ndarray:
    """Non-constant test image with every row different (catches flips/rotations)."""
    y, x = np.mgrid[0:h, 0:w]
    return ((y * w + x) * hi // (h * w - 1)).astype(dtype)


def png_bytes(a: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", a)
    assert ok
    return buf.tobytes()


def pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def expect_error(source, *words: str, name: str | None = None) -> str:
    """load_image must raise ImageError whose message is one line and mentions every word."""
    with pytest.raises(ImageError) as ei:
        load_image(source, name=name)
    msg = str(ei.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    for w in words:
        assert w.lower() in msg.lower(), f"{w!r} not in {msg!r}"
    return msg


def make_dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    signed: bool = False,
    **attrs,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if pixels is not None:
        frames = pixels.shape[0] if pixels.ndim == 3 and photometric.startswith("MONO") else 1
        shape = pixels.shape[1:] if frames > 1 else pixels.shape
        ds.Rows, ds.Columns = shape[0], shape[1]
        ds.SamplesPerPixel = 1 if photometric.startswith("MONO") else 3
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = pixels.dtype.itemsize * 8
        ds.BitsStored = bits_stored if ds.BitsAllocated > 8 else 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = int(signed)
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = pixels.tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def dicom_bytes(ds: Dataset, **kw) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, **kw)
    return buf.getvalue()


def dicom_ramp(h: int = 100, w: int = 90, hi: int = 4095) -> np.ndarray:
    return ramp(h, w, hi, np.uint16)


# --------------------------------------------------------------------------- real fixtures


@pytest.mark.parametrize("path", HIRES, ids=lambda p: p.name)
def test_hires_fixtures_load(path: Path):
    img = load_image(path)
    expected = np.asarray(Image.open(path).convert("L"))
    assert img.pixels.dtype == np.float32 and img.pixels.shape == expected.shape
    np.testing.assert_allclose(img.pixels, minmax(expected), atol=1e-6)
    m = img.meta
    assert (m.format, m.bit_depth, m.width, m.height) == ("PNG", 8, expected.shape[1], expected.shape[0])
    assert m.source == str(path) and not m.inverted_by_loader and m.sex is None
    json.dumps(m.to_dict())


def test_hires_fixtures_present():
    assert len(HIRES) >= 8


# --------------------------------------------------------------------------- raster formats


def test_png_8bit_gray_from_bytes_and_filelike():
    a = ramp()
    data = png_bytes(a)
    for src, name, label in [
        (data, None, "<bytes>"),
        (bytearray(data), "upload.png", "upload.png"),
        (io.BytesIO(data), "scan.png", "scan.png"),
    ]:
        img = load_image(src, name=name)
        np.testing.assert_allclose(img.pixels, minmax(a), atol=1e-6)
        assert img.meta.source == label


def test_format_detected_by_content_not_extension(tmp_path: Path):
    p = tmp_path / "actually_png.dcm"
    p.write_bytes(png_bytes(ramp()))
    assert load_image(p).meta.format == "PNG"


def test_png_16bit_gray_keeps_full_precision():
    a = (ramp(hi=4095, dtype=np.uint16) * 16 + 3).astype(np.uint16)  # 4096 levels, not 256
    img = load_image(png_bytes(a))
    assert img.meta.bit_depth == 16 and img.meta.photometric.startswith("I")
    assert len(np.unique(img.pixels)) > 1000
    np.testing.assert_allclose(img.pixels, minmax(a), atol=1e-6)


def test_png_16bit_rgb_keeps_full_precision():
    a = ramp(hi=4095, dtype=np.uint16) * 16
    bgr = np.stack([a, a, a], -1)
    img = load_image(png_bytes(bgr))
    assert img.meta.bit_depth == 16
    assert len(np.unique(img.pixels)) > 1000
    np.testing.assert_allclose(img.pixels, minmax(a), atol=1e-6)
    assert not any("colour" in w for w in img.meta.warnings)


def test_png_16bit_rgba_composited_over_black():
    a = ramp(hi=60000, dtype=np.uint16) + 5000
    alpha = np.full_like(a, 65535)
    alpha[:10] = 0
    img = load_image(png_bytes(np.stack([a, a, a, alpha], -1)))
    assert img.meta.bit_depth == 16
    assert np.all(img.pixels[:10] == 0)
    assert any("black" in w for w in img.meta.warnings)


@pytest.mark.parametrize("big_endian", [False, True])
def test_tiff_16bit_gray(big_endian: bool):
    a = ramp(hi=65535, dtype=np.uint16)
    if big_endian:
        im = Image.frombytes("I;16B", (a.shape[1], a.shape[0]), a.astype(">u2").tobytes())
    else:
        im = Image.fromarray(a)
    img = load_image(pil_bytes(im, "TIFF"))
    assert img.meta.format == "TIFF" and img.meta.bit_depth == 16
    np.testing.assert_allclose(img.pixels, minmax(a), atol=1e-6)


def test_tiff_16bit_rgb_via_opencv():
    a = ramp(hi=4095, dtype=np.uint16) * 16
    ok, buf = cv2.imencode(".tiff", np.stack([a, a, a], -1))
    img = load_image(buf.tobytes())
    assert img.meta.format == "TIFF" and img.meta.bit_depth == 16
    assert len(np.unique(img.pixels)) > 1000


def test_multipage_tiff_uses_first_page_with_warning():
    a, b = ramp(), 255 - ramp()
    data = pil_bytes(Image.fromarray(a), "TIFF", save_all=True, append_images=[Image.fromarray(b)])
    img = load_image(data)
    np.testing.assert_allclose(img.pixels, minmax(a), atol=1e-6)
    assert any("2 images" in w for w in img.meta.warnings)


def test_bmp_gray_and_rgb():
    a = ramp()
    for im in (Image.fromarray(a), Image.fromarray(a).convert("RGB")):
        img = load_image(pil_bytes(im, "BMP"))
        assert img.meta.format == "BMP" and img.meta.bit_depth == 8
        np.testing.assert_allclose(img.pixels, minmax(a), atol=1e-6)


def test_rgb_colour_converted_to_luminance_with_warning():
    a = ramp().astype(np.float64)
    rgb = np.stack([a, np.flipud(a), np.full_like(a, 40)], -1).astype(np.uint8)
    img = load_image(pil_bytes(Image.fromarray(rgb), "PNG"))
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(img.pixels, minmax(luma), atol=1e-6)
    assert any("colour" in w for w in img.meta.warnings)


def test_rgba_8bit_alpha_over_black():
    a = ramp() // 2 + 100
    alpha = np.full_like(a, 255)
    alpha[:, :5] = 0
    rgba = np.stack([a, a, a, alpha], -1)
    img = load_image(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert img.meta.photometric == "RGBA"
    assert np.all(img.pixels[:, :5] == 0) and img.pixels[:, 5:].min() > 0


def test_palette_png_to_gray():
    a = ramp()
    pal_img = Image.fromarray(a).convert("RGB").quantize(64)
    img = load_image(pil_bytes(pal_img, "PNG"))
    assert img.meta.photometric == "P"
    expected = np.asarray(pal_img.convert("RGB")).astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(img.pixels, minmax(expected), atol=1e-6)


def test_jpeg_loads_with_lossy_warning():
    a = ramp()
    img = load_image(pil_bytes(Image.fromarray(a), "JPEG", quality=95))
    assert img.meta.format == "JPEG" and img.meta.bit_depth == 8
    assert any("lossy" in w for w in img.meta.warnings)
    assert np.abs(img.pixels - minmax(a)).mean() < 0.02


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_matches_pil(orientation: int):
    im = Image.fromarray(ramp(96, 70))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(im, "JPEG", quality=95, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    img = load_image(data)
    assert img.pixels.shape == expected.shape
    assert (img.meta.width, img.meta.height) == (expected.shape[1], expected.shape[0])
    np.testing.assert_allclose(img.pixels, minmax(expected), atol=1e-6)


def test_to_uint8_and_to_dict():
    x = np.array([[-0.5, 0.0, 0.5, 1.0, 2.0, np.nan]], np.float32)
    assert to_uint8(x).tolist() == [[0, 0, 128, 255, 255, 0]]
    assert to_uint8(x).dtype == np.uint8
    d = load_image(png_bytes(ramp())).meta.to_dict()
    assert json.loads(json.dumps(d))["format"] == "PNG"


# --------------------------------------------------------------------------- bad raster inputs


def test_nonexistent_path(tmp_path: Path):
    expect_error(tmp_path / "missing.png", "missing.png", "not found")


def test_empty_file_and_empty_bytes(tmp_path: Path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    expect_error(p, "empty.png", "empty")
    expect_error(b"", "<bytes>", "empty")
    expect_error(io.BytesIO(b""), "upload.jpg", "empty", name="upload.jpg")


def test_text_file_is_not_an_image(tmp_path: Path):
    p = tmp_path / "notes.png"
    p.write_text("patient notes\nnot an image\n")
    expect_error(p, "notes.png", "text file", "not an image")
    expect_error(b"BMI chart for the clinic, see attached\n" * 3, "text file")


def test_random_binary_is_unrecognised():
    junk = bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))
    expect_error(b"\x01\x02" + junk, "unrecognised", "DICOM")


def test_other_formats_named():
    expect_error(b"%PDF-1.7\n" + b"\x00" * 100, "PDF")


def test_directory_refused(tmp_path: Path):
    expect_error(tmp_path, "folder")


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_png(fraction: float):
    data = HIRES[0].read_bytes()
    expect_error(data[: int(len(data) * fraction)], "truncated", name="cut.png")


def test_truncated_16bit_colour_png():
    a = ramp(hi=60000, dtype=np.uint16)
    data = png_bytes(np.stack([a, a, a], -1))
    expect_error(data[: len(data) // 2], "truncated")


@pytest.mark.parametrize("fraction", [0.3, 0.8])
def test_truncated_jpeg(fraction: float):
    data = pil_bytes(Image.open(HIRES[0]), "JPEG", quality=90)
    expect_error(data[: int(len(data) * fraction)], "cut.jpg", "truncated", name="cut.jpg")


def test_header_only_png():
    expect_error(png_bytes(ramp())[:40], "png")


def test_too_small_side():
    expect_error(png_bytes(ramp(MIN_SIDE - 1, 200)), "200x63", str(MIN_SIDE))
    load_image(png_bytes(ramp(MIN_SIDE, MIN_SIDE)))  # exactly the minimum is fine


def test_blank_image():
    expect_error(png_bytes(np.full((100, 100), 7, np.uint8)), "blank")


def test_file_over_100mb_refused_before_reading(tmp_path: Path):
    p = tmp_path / "huge.png"
    with open(p, "wb") as f:
        f.write(png_bytes(ramp()))
        f.truncate(101 * 10**6)  # sparse: no real disk use
    t = time.perf_counter()
    expect_error(p, "huge.png", "101 MB", f"{MAX_BYTES // 10**6} MB")
    assert time.perf_counter() - t < 0.5


class _Upload(io.BytesIO):
    """Stands in for Streamlit's UploadedFile, which knows its size before reading."""

    size = 150 * 10**6


def test_upload_over_100mb_refused_by_size_attribute():
    expect_error(_Upload(b"\x89PNG"), "big.png", "150 MB", name="big.png")


def test_open_file_over_100mb_refused_before_reading(tmp_path: Path):
    p = tmp_path / "huge.dcm"
    with open(p, "wb") as f:
        f.truncate(120 * 10**6)
    with open(p, "rb") as f:
        t = time.perf_counter()
        expect_error(f, "huge.dcm", "120 MB")
        assert time.perf_counter() - t < 0.5
        assert f.tell() == 0  # nothing was read


def test_open_binary_file_object(tmp_path: Path):
    p = tmp_path / "hand.png"
    p.write_bytes(png_bytes(ramp()))
    with open(p, "rb") as f:
        img = load_image(f)
    assert img.meta.source == str(p)
    with open(p, "r", encoding="latin-1") as f:
        expect_error(f, "binary mode")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(side: int, *, full_stream: bool) -> bytes:
    """PNG whose header claims side x side 8-bit gray; all-zero data deflates to almost nothing."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + zeros
    if full_stream:
        idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    else:
        idat = comp.compress(row) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb_10k() -> bytes:
    return bomb_png(10_000, full_stream=True)  # 100 megapixels, ~100 kB on disk


# Malformed on purpose: the libraries' own complaints about such files are expected here; what the
# test checks is the loader's answer (one ImageError, or a warning in the image's metadata).
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_refused_before_decoding(bomb_10k: bytes, tmp_path: Path):
    assert len(bomb_10k) < 1_000_000
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb_10k)
    t = time.perf_counter()
    msg = expect_error(p, "bomb.png", "10000x10000", "megapixels")
    assert time.perf_counter() - t < 0.5, "bomb was decoded, not refused from its header"
    assert "60 megapixels" in msg


def test_huge_bomb_beyond_pil_limit():
    expect_error(bomb_png(30_000, full_stream=False), "megapixels")


def test_tiff_header_bomb():
    # Valid little TIFF, then patch ImageWidth/ImageLength tags to claim 20000 x 20000.
    data = bytearray(pil_bytes(Image.fromarray(ramp()), "TIFF"))
    im = Image.open(io.BytesIO(bytes(data)))
    ifd = struct.unpack_from("<I", data, 4)[0]
    n = struct.unpack_from("<H", data, ifd)[0]
    for i in range(n):
        off = ifd + 2 + 12 * i
        tag, typ = struct.unpack_from("<HH", data, off)
        if tag in (256, 257):
            fmt = "<H" if typ == 3 else "<I"
            struct.pack_into(fmt, data, off + 8, 20_000)
    assert im.size == (80, 96)
    expect_error(bytes(data), "megapixels")


# --------------------------------------------------------------------------- DICOM


DEMOGRAPHICS = dict(
    PatientSex="F",
    PatientBirthDate="20150304",
    StudyDate="20250610",
    PatientAge="010Y",
    PixelSpacing=[0.143, 0.15],
)


def test_dicom_monochrome2_rescale_and_metadata(tmp_path: Path):
    raw = dicom_ramp()
    ds = make_dicom(raw, RescaleSlope="2", RescaleIntercept="-1024", **DEMOGRAPHICS)
    p = tmp_path / "hand.dcm"
    ds.save_as(p, enforce_file_format=True)
    img = load_image(p)
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)
    m = img.meta
    assert (m.format, m.bit_depth, m.photometric, m.inverted_by_loader) == ("DICOM", 12, "MONOCHROME2", False)
    assert (m.width, m.height) == (90, 100)
    assert m.sex == "F"
    assert m.birth_date == dt.date(2015, 3, 4) and m.study_date == dt.date(2025, 6, 10)
    assert m.patient_age_months == 120.0
    assert m.pixel_spacing_mm == pytest.approx((0.143, 0.15))
    d = json.loads(json.dumps(m.to_dict()))
    assert d["birth_date"] == "2015-03-04" and d["study_date"] == "2025-06-10"


def test_dicom_acquisition_date_fallback_and_age_units():
    ds = make_dicom(dicom_ramp(), PatientSex="M", AcquisitionDate="20240101", PatientAge="006M")
    m = load_image(dicom_bytes(ds, enforce_file_format=True)).meta
    assert m.sex == "M" and m.study_date == dt.date(2024, 1, 1) and m.patient_age_months == 6.0
    ds.PatientAge = "052W"
    assert load_image(dicom_bytes(ds)).meta.patient_age_months == pytest.approx(52 * 7 / (365.25 / 12))


# Malformed on purpose: the libraries' own complaints about such files are expected here; what the
# test checks is the loader's answer (one ImageError, or a warning in the image's metadata).
@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
def test_dicom_bad_metadata_becomes_warnings():
    ds = make_dicom(dicom_ramp(), PatientSex="O", PatientAge="ten years")
    ds.add_new(0x00100030, "DA", "2015-13-45")  # invalid PatientBirthDate
    img = load_image(dicom_bytes(ds))
    assert img.meta.sex is None and img.meta.birth_date is None and img.meta.patient_age_months is None
    text = " ".join(img.meta.warnings)
    assert "PatientBirthDate" in text and "PatientAge" in text


def test_dicom_window_applied_then_minmax():
    raw = dicom_ramp(hi=4095)
    # A window that clips part of the range (not most of the subject: see the clipping tests below).
    ds = make_dicom(raw, WindowCenter="2048", WindowWidth="3000")
    img = load_image(dicom_bytes(ds))
    lo, hi = 2048 - 1500, 2048 + 1500
    assert np.all(img.pixels[raw < lo] == 0) and np.all(img.pixels[raw > hi] == 1)
    mid = (raw > lo + 10) & (raw < hi - 10)
    np.testing.assert_allclose(img.pixels[mid], (raw[mid] - (lo - 0.5)) / 2999, atol=2e-3)
    assert not any("window" in w for w in img.meta.warnings)


def test_dicom_monochrome1_inverted():
    raw = dicom_ramp(hi=4095)
    ds = make_dicom(raw, photometric="MONOCHROME1", bits_stored=12)
    img = load_image(dicom_bytes(ds), name="m1.dcm")
    assert img.meta.inverted_by_loader and img.meta.photometric == "MONOCHROME1"
    np.testing.assert_allclose(img.pixels, minmax((2**12 - 1) - raw.astype(np.int64)), atol=1e-6)
    assert img.pixels[0, 0] == 1.0  # lowest stored value is white in MONOCHROME1


def test_dicom_monochrome1_inverted_after_window():
    raw = dicom_ramp(hi=4095)
    ds = make_dicom(raw, photometric="MONOCHROME1", WindowCenter="2048", WindowWidth="3000")
    img = load_image(dicom_bytes(ds))
    as_m2 = load_image(dicom_bytes(make_dicom(raw, WindowCenter="2048", WindowWidth="3000")))
    np.testing.assert_allclose(img.pixels, 1.0 - as_m2.pixels, atol=1e-6)
    assert np.all(img.pixels[raw > 3600] == 0)  # above the window: black after inversion


def test_dicom_16bit_signed_with_intercept():
    raw = (dicom_ramp(hi=30000).astype(np.int32) - 15000).astype(np.int16)
    ds = make_dicom(raw, bits_stored=16, signed=True, RescaleSlope="1", RescaleIntercept="100")
    img = load_image(dicom_bytes(ds))
    assert img.meta.bit_depth == 16
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)


def test_dicom_8bit():
    raw = ramp()
    img = load_image(dicom_bytes(make_dicom(raw)))
    assert img.meta.bit_depth == 8
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)


def test_dicom_without_preamble():
    raw = dicom_ramp()
    full = dicom_bytes(make_dicom(raw, PatientSex="F"), enforce_file_format=True)
    assert full[128:132] == b"DICM"
    img = load_image(full[132:], name="nopreamble")  # file meta group first, no preamble
    assert img.meta.format == "DICOM" and img.meta.sex == "F"
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)


def test_dicom_implicit_vr_without_file_meta():
    raw = dicom_ramp()
    ds = make_dicom(raw, PatientSex="M")
    del ds.file_meta
    data = dicom_bytes(ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert data[:2] == b"\x08\x00"  # starts straight with a group-0008 element
    img = load_image(data)
    assert img.meta.sex == "M"
    assert img.meta.format == "DICOM"
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)


def test_dicom_multiframe_first_frame_with_warning():
    frames = np.stack([dicom_ramp(), 4095 - dicom_ramp(), dicom_ramp() // 2])
    img = load_image(dicom_bytes(make_dicom(frames)))
    np.testing.assert_allclose(img.pixels, minmax(frames[0]), atol=1e-6)
    assert any("3 frames" in w for w in img.meta.warnings)


def test_dicom_rle_compressed_decodes_natively():
    raw = dicom_ramp()
    ds = make_dicom(raw)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    img = load_image(dicom_bytes(ds))
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)


def test_dicom_jpeg2000_lossless_decodes():
    pytest.importorskip("openjpeg")
    from pydicom.uid import JPEG2000Lossless

    raw = dicom_ramp()
    ds = make_dicom(raw)
    ds.compress(JPEG2000Lossless)
    img = load_image(dicom_bytes(ds))
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)


def _jpeg_baseline_dicom(raw8: np.ndarray) -> bytes:
    from pydicom.encaps import encapsulate

    ds = make_dicom(raw8)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([pil_bytes(Image.fromarray(raw8), "JPEG", quality=95)])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    return dicom_bytes(ds)


def test_dicom_jpeg_baseline_decodes_with_lossy_warning():
    from pydicom.pixels import get_decoder

    if not get_decoder(JPEGBaseline8Bit).is_available:
        pytest.skip("no JPEG decoder plugin installed")
    raw = ramp()
    img = load_image(_jpeg_baseline_dicom(raw))
    assert np.abs(img.pixels - minmax(raw)).mean() < 0.02
    assert any("lossy" in w for w in img.meta.warnings)


def test_dicom_compressed_without_decoder_names_package(monkeypatch):
    class NoDecoder:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: NoDecoder())
    expect_error(_jpeg_baseline_dicom(ramp()), "JPEG Baseline", "install", "pylibjpeg-libjpeg", name="j.dcm")


def test_dicom_colour_refused():
    rgb = np.stack([ramp()] * 3, -1)
    expect_error(dicom_bytes(make_dicom(rgb, photometric="RGB")), "x.dcm", "colour DICOM (RGB)", "grayscale", name="x.dcm")
    ybr = make_dicom(rgb, photometric="YBR_FULL")
    expect_error(dicom_bytes(ybr), "colour DICOM (YBR_FULL)")


def test_dicom_without_pixels():
    ds = make_dicom(None, PatientSex="F")
    expect_error(dicom_bytes(ds, enforce_file_format=True), "no pixel data")


def test_dicom_bomb_refused_before_decoding():
    ds = make_dicom(np.zeros((2, 2), np.uint16))
    ds.Rows, ds.Columns = 20_000, 20_000  # 400 megapixels claimed, 8 bytes present
    t = time.perf_counter()
    expect_error(dicom_bytes(ds), "20000x20000", "megapixels")
    assert time.perf_counter() - t < 0.5


def test_dicom_too_small():
    expect_error(dicom_bytes(make_dicom(dicom_ramp(50, 200))), "200x50", str(MIN_SIDE))


def test_dicom_truncated_pixel_data():
    data = dicom_bytes(make_dicom(dicom_ramp()), enforce_file_format=True)
    expect_error(data[: len(data) - 5000], "truncated", name="cut.dcm")


def test_dicom_blank():
    expect_error(dicom_bytes(make_dicom(np.full((80, 80), 100, np.uint16))), "blank")


def test_dicom_padding_excluded_from_range_and_black():
    raw = dicom_ramp(hi=1000) + 1000
    raw[:, :10] = 4095  # shutter padding, far brighter than the anatomy
    ds = make_dicom(raw, photometric="MONOCHROME1", PixelPaddingValue=4095)
    img = load_image(dicom_bytes(ds))
    body = raw[:, 10:]
    np.testing.assert_allclose(img.pixels[:, 10:], 1.0 - minmax(body), atol=1e-6)
    assert np.all(img.pixels[:, :10] == 0)
    assert any("padding" in w for w in img.meta.warnings)
    ds.PixelPaddingValue, ds.PixelPaddingRangeLimit = 4095, 1000  # range pads everything
    expect_error(dicom_bytes(ds), "blank", "padding")


def test_dicom_window_that_blanks_everything_falls_back_to_minmax():
    raw = dicom_ramp(hi=1000)
    img = load_image(dicom_bytes(make_dicom(raw, WindowCenter="30000", WindowWidth="10")))
    np.testing.assert_allclose(img.pixels, minmax(raw), atol=1e-6)
    assert any("window" in w for w in img.meta.warnings)


# --------------------------------------------------------------------------- robustness


def test_unexpected_internal_errors_are_wrapped(monkeypatch):
    def boom(*a, **k):
        raise MemoryError

    monkeypatch.setattr(bio, "_normalise", boom)
    expect_error(png_bytes(ramp()), "memory")

    def boom2(*a, **k):
        raise cv2.error("OpenCV(5.0) error:\n multi\nline")

    monkeypatch.setattr(bio, "_normalise", boom2)
    expect_error(png_bytes(ramp()), "could not read")


# Malformed on purpose: the libraries' own complaints about such files are expected here; what the
# test checks is the loader's answer (one ImageError, or a warning in the image's metadata).
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fuzzed_headers_only_raise_image_error():
    rng = np.random.default_rng(1)
    seeds = [
        png_bytes(ramp()),
        pil_bytes(Image.fromarray(ramp()), "JPEG"),
        pil_bytes(Image.fromarray(ramp()), "TIFF"),
        pil_bytes(Image.fromarray(ramp()), "BMP"),
        dicom_bytes(make_dicom(dicom_ramp(), **DEMOGRAPHICS), enforce_file_format=True),
    ]
    for seed in seeds:
        for _ in range(40):
            b = bytearray(seed)
            for pos in rng.integers(0, min(len(b), 400), 4):
                b[pos] = int(rng.integers(0, 256))
            try:
                img = load_image(bytes(b))
            except ImageError as e:
                assert "\n" not in str(e)
            else:
                assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
                assert 0.0 <= img.pixels.min() and img.pixels.max() <= 1.0


def test_dicom_patient_id_and_accession_number_for_the_report():
    ds = make_dicom(dicom_ramp(), PatientID="  MRN 0042\n", AccessionNumber="ACC-7", **DEMOGRAPHICS)
    m = load_image(dicom_bytes(ds, enforce_file_format=True)).meta
    assert (m.patient_id, m.accession_number) == ("MRN 0042", "ACC-7")
    assert json.loads(json.dumps(m.to_dict()))["patient_id"] == "MRN 0042"
    bare = load_image(dicom_bytes(make_dicom(dicom_ramp()), enforce_file_format=True)).meta
    assert bare.patient_id is None and bare.accession_number is None


# --------------------------------------------------------------------------- DICOM sanity (issue 10)


def _hand_like(h: int = 120, w: int = 100, hi: int = 4095) -> np.ndarray:
    """Dark background with a bright, textured 'hand' block (stored values spread over 1500–4095)."""
    rng = np.random.default_rng(0)
    a = rng.integers(50, 200, (h, w)).astype(np.uint16)
    yy, xx = np.mgrid[0:h, 0:w]
    a[20:100, 25:75] = (1500 + (hi - 1500) * ((yy[20:100, 25:75] + xx[20:100, 25:75]) % 37) / 36).astype(np.uint16)
    return a


def test_dicom_bits_stored_understated_is_read_whole_and_said():
    raw = _hand_like()
    truth = load_image(dicom_bytes(make_dicom(raw, bits_stored=12)))
    wrong = make_dicom(raw, bits_stored=8)  # 12-bit data, header says 8: pydicom alone wraps it
    img = load_image(dicom_bytes(wrong), name="bits.dcm")
    np.testing.assert_allclose(img.pixels, truth.pixels, atol=1e-6)
    assert any("BitsStored says 8" in w and "12 bits" in w for w in img.meta.warnings)
    assert not any("BitsStored" in w for w in truth.meta.warnings)


def test_dicom_bits_stored_understated_signed_is_refused():
    raw = _hand_like().astype(np.int16)
    expect_error(dicom_bytes(make_dicom(raw, bits_stored=8, signed=True)), "BitsStored", name="s.dcm")


def test_dicom_high_bit_overlay_stays_masked():
    raw = _hand_like(hi=4000)
    with_overlay = raw | (np.uint16(1) << 15) * ((np.arange(raw.size).reshape(raw.shape) % 50) == 0)
    ds = make_dicom(with_overlay.astype(np.uint16), bits_stored=12)
    ds.add_new((0x6000, 0x0102), "US", 15)  # OverlayBitPosition: the overlay lives in bit 15
    img = load_image(dicom_bytes(ds))
    np.testing.assert_allclose(img.pixels, load_image(dicom_bytes(make_dicom(raw, bits_stored=12))).pixels, atol=1e-6)
    assert any("overlay" in w for w in img.meta.warnings)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_dicom_window_saturating_the_subject_is_ignored_and_said(photometric):
    raw = _hand_like()
    if photometric == "MONOCHROME1":
        raw = (4095 - raw).astype(np.uint16)  # bright subject as displayed = low stored values
    centre = "700" if photometric == "MONOCHROME2" else "3400"  # narrow window far from the subject's middle
    ds = make_dicom(raw, photometric=photometric, WindowCenter=centre, WindowWidth="400")
    img = load_image(dicom_bytes(ds))
    full = load_image(dicom_bytes(make_dicom(raw, photometric=photometric)))
    np.testing.assert_allclose(img.pixels, full.pixels, atol=1e-6)
    assert any("window saturates" in w for w in img.meta.warnings)


def test_dicom_window_that_keeps_the_subject_is_applied():
    raw = _hand_like()
    ds = make_dicom(raw, WindowCenter="2800", WindowWidth="2800")  # covers the subject, clips the background
    img = load_image(dicom_bytes(ds))
    assert not any("window" in w for w in img.meta.warnings)
    assert np.all(img.pixels[raw < 1400] == 0)  # the window (not min-max) was applied


def test_integer_images_normalise_through_a_table_bit_for_bit():
    """8/16-bit grey (PNG, TIFF) skips the float64 copy: the table gives the same float32 values exactly."""
    from boneage.io import _normalise

    rng = np.random.default_rng(7)
    for dtype, top in ((np.uint8, 256), (np.uint16, 4096), (np.uint16, 65536), (np.dtype(">u2"), 65536)):
        a = rng.integers(5, top, (123, 97)).astype(dtype)
        fast, slow = _normalise(a, "x"), _normalise(a.astype(np.float64), "x")
        assert fast.dtype == np.float32 and np.array_equal(fast.view(np.uint32), slow.view(np.uint32))
    with pytest.raises(ImageError, match="blank"):
        _normalise(np.full((10, 10), 9, np.uint8), "x")


# --------------------------------------------------------------------------- PNG rows inflated by libdeflate


def _noisy(shape, hi: int = 255, dtype=np.uint8, seed: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * hi).astype(dtype)


def _split_idat(data: bytes, size: int = 4096) -> bytes:
    """The same PNG with its image data in IDAT chunks of ``size`` bytes (as many encoders write)."""
    p, chunks, z = 8, [], b""
    while p < len(data):
        n = struct.unpack(">I", data[p : p + 4])[0]
        cid = data[p + 4 : p + 8]
        if cid == b"IDAT":
            z += data[p + 8 : p + 8 + n]
        else:
            if cid == b"IEND":
                for i in range(0, len(z), size):
                    part = b"IDAT" + z[i : i + size]
                    chunks.append(struct.pack(">I", len(part) - 4) + part + struct.pack(">I", zlib.crc32(part)))
            chunks.append(data[p : p + 12 + n])
        p += 12 + n
    return data[:8] + b"".join(chunks)


def _stored_png_cases() -> dict[str, bytes]:
    g = _noisy((150, 130))
    rgb = np.stack([g, np.roll(g, 7, 1), g // 2], -1)
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "cv2 8-bit grey": png_bytes(g),
        "PIL 8-bit grey": pil_bytes(Image.fromarray(g), "PNG"),
        "16-bit grey": pil_bytes(Image.fromarray(_noisy((150, 130), 65535, np.uint16)), "PNG"),
        "16-bit RGB (OpenCV path)": png_bytes(np.stack([_noisy((150, 130), 65535, np.uint16)] * 3, -1)),
        "8-bit RGB": pil_bytes(Image.fromarray(rgb), "PNG"),
        "RGBA": pil_bytes(Image.fromarray(np.dstack([rgb, g]), "RGBA"), "PNG"),
        "grey + alpha": pil_bytes(Image.fromarray(np.stack([g, 255 - g], -1), "LA"), "PNG"),
        "palette + tRNS": pil_bytes(Image.fromarray(rgb).convert("P"), "PNG", transparency=3),
        "1-bit": pil_bytes(Image.fromarray(g > 128), "PNG"),
        "odd width 4-bit": pil_bytes(Image.fromarray(g[:, :127] // 16).convert("P"), "PNG", bits=4),
        "many IDAT chunks": _split_idat(pil_bytes(Image.fromarray(g), "PNG")),
        "EXIF orientation 6": pil_bytes(Image.fromarray(g), "PNG", exif=exif),
        "hires fixture": HIRES[0].read_bytes(),
    }


def _outcome(data: bytes):
    try:
        img = load_image(data)
        return img.pixels, img.meta.to_dict()
    except ImageError as exc:
        return str(exc)


def _pil_alone(monkeypatch):
    """Switch the libdeflate paths off: PIL decodes every PNG, as before 2026-12-05."""
    monkeypatch.setattr(bio, "_png_with_rows_stored", lambda png, im: im)
    monkeypatch.setattr(bio, "_png_grey_in_halves", lambda png, im: None)


GREY_CASES = ("cv2 8-bit grey", "PIL 8-bit grey", "16-bit grey", "many IDAT chunks", "hires fixture")


@pytest.mark.parametrize("case", list(_stored_png_cases()))
def test_png_rows_inflated_by_libdeflate_read_bit_for_bit_as_before(case: str, monkeypatch):
    pytest.importorskip("deflate")
    data = _stored_png_cases()[case]
    taken = []
    stored, halves = bio._png_with_rows_stored, bio._png_grey_in_halves

    def spy_stored(png, im):
        out = stored(png, im)
        if out is not im:
            taken.append("stored")
        return out

    def spy_halves(png, im):
        out = halves(png, im)
        if out is not None:
            taken.append("halves")
        return out

    monkeypatch.setattr(bio, "_png_with_rows_stored", spy_stored)
    monkeypatch.setattr(bio, "_png_grey_in_halves", spy_halves)
    fast = _outcome(data)
    # Plain grey: two halves on two threads; 16-bit colour: OpenCV (nothing to inflate for PIL);
    # the rest (colour, alpha, palette, EXIF): stored rows for PIL.
    want = ["halves"] if case in GREY_CASES else [] if "OpenCV" in case else ["stored"]
    assert taken == want
    _pil_alone(monkeypatch)
    slow = _outcome(data)
    assert not isinstance(fast, str) and not isinstance(slow, str)
    assert np.array_equal(fast[0], slow[0]) and fast[1] == slow[1]


def test_grey_png_halves_split_at_a_row_that_does_not_read_the_one_above(monkeypatch):
    """The split row is filtered None or Sub; a PNG without one is decoded in one piece; both read as PIL."""
    pytest.importorskip("deflate")
    g = _noisy((300, 90))
    paeth = pil_bytes(Image.fromarray(g), "PNG")  # PIL: mostly Paeth, some None rows
    png = bio._png_inflated(paeth)
    filters = np.frombuffer(png.rows, np.uint8)[:: png.stride]
    assert (filters == 4).any() and (filters[1:] <= 1).any()
    with Image.open(io.BytesIO(paeth)) as im:
        np.testing.assert_array_equal(bio._png_grey_in_halves(bio._png_inflated(paeth), im), g)
    # Every row Up (2): no row to split at, so one piece; the same samples.
    rows = bytearray(png.rows)
    raw = np.frombuffer(png.rows, np.uint8).reshape(300, 91)
    up = np.zeros_like(raw)
    up[:, 0] = 2
    up[0, 1:] = g[0]
    up[1:, 1:] = (g[1:].astype(np.int16) - g[:-1]) % 256
    rows[:] = up.tobytes()
    ihdr = paeth[8:33]
    only_up = bio._stored_png([ihdr], memoryview(bytes(rows)), [b"\x00\x00\x00\x00IEND\xaeB`\x82"])
    submitted = []
    monkeypatch.setattr(bio, "_helper_thread", lambda: submitted.append(1))
    with Image.open(io.BytesIO(only_up)) as im:
        np.testing.assert_array_equal(bio._png_grey_in_halves(bio._png_inflated(only_up), im), g)
    assert not submitted


def test_png_rows_stored_only_where_safe(monkeypatch):
    pytest.importorskip("deflate")
    data = png_bytes(_noisy((120, 100)))
    with Image.open(io.BytesIO(data)) as im:
        assert bio._png_with_rows_stored(bio._png_inflated(data), im) is not im
        assert bio._png_with_rows_stored(None, im) is im  # nothing inflated: PIL alone
        interlaced = data[:28] + b"\x01" + data[29:]
        assert bio._png_inflated(interlaced) is None  # Adam7 rows are laid out otherwise
        monkeypatch.setattr(bio, "PNG_STORED_MAX_BYTES", 1000)  # memory bound: large images stay with PIL
        assert bio._png_inflated(data) is None
        monkeypatch.undo()
        monkeypatch.setitem(__import__("sys").modules, "deflate", None)  # the package missing: PIL alone
        assert bio._png_inflated(data) is None


@pytest.mark.parametrize("bad_row", [0, 150, 299])
def test_a_bad_filter_byte_reads_as_pil_alone_says(bad_row: int, monkeypatch):
    """A stream that inflates but names filter 7 on one row: the two-half path steps aside and the
    loader says what PIL says of the whole file (never an exception of its own)."""
    pytest.importorskip("deflate")
    g = _noisy((300, 90))
    png = bio._png_inflated(png_bytes(g))
    rows = bytearray(png.rows)
    rows[bad_row * png.stride] = 7
    data = bio._stored_png(png.before, memoryview(bytes(rows)), png.after)
    with Image.open(io.BytesIO(data)) as im:
        assert bio._png_grey_in_halves(bio._png_inflated(data), im) is None
    fast = _outcome(data)
    _pil_alone(monkeypatch)
    slow = _outcome(data)
    assert type(fast) is type(slow)
    assert fast == slow if isinstance(fast, str) else np.array_equal(fast[0], slow[0])


@pytest.mark.parametrize("damage", ["cut", "flipped byte", "cut inside the last chunk"])
def test_damaged_png_reads_the_same_with_or_without_libdeflate(damage: str, monkeypatch):
    """Where libdeflate refuses the stream, PIL decides as before: the same one-line error, or for a
    flipped byte whatever PIL made of it."""
    data = bytearray(png_bytes(_noisy((200, 160))))
    if damage == "cut":
        data = data[: len(data) // 2]
    elif damage == "cut inside the last chunk":
        data = data[:-16]
    else:
        data[len(data) // 2] ^= 0xFF
    data = bytes(data)
    fast = _outcome(data)
    _pil_alone(monkeypatch)
    slow = _outcome(data)
    assert type(fast) is type(slow)
    if isinstance(fast, str):
        assert fast == slow
    else:
        assert np.array_equal(fast[0], slow[0]) and fast[1] == slow[1]
    if damage == "cut":
        assert isinstance(fast, str) and "truncated" in fast
