"""Images that are *not* hand radiographs, for calibrating and testing the acceptance check.

No radiographs of other body parts can be downloaded here, so the set is built from what is at
hand, as broadly as possible and never tuned to a handful:

* ``dicom_ct_mr``: pydicom's bundled CT / MR / other test slices (crops, flips, rotations);
* ``photo_colour`` / ``photo_gray``: scikit-image's sample photographs (people, animals, objects,
  microscopy, astronomy, a retina; crops, rotations) in colour and as gray PNGs;
* ``text``: rendered pages and labels, dark on light and light on dark;
* ``noise``, ``gradient``, ``blank``, ``shapes``, ``texture``: synthetic images;
* ``chest``, ``knee``, ``long_bone``, ``skull``, ``pelvis``, ``foot``, ``spine``: radiograph-like
  renderings of other body parts drawn here (bone brighter than soft tissue, dark background,
  blur and noise like a film), with random geometry.

Every item is encoded as a file (PNG, JPEG or DICOM bytes), so it goes through the same loader
as a user's upload. ``make(kind, i)`` is deterministic: the same (kind, i) is the same image.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

KINDS = ("dicom_ct_mr", "photo_colour", "photo_gray", "text", "noise", "gradient", "blank", "shapes", "texture",
         "chest", "knee", "long_bone", "skull", "pelvis", "foot", "spine")
RENDERED = ("chest", "knee", "long_bone", "skull", "pelvis", "foot", "spine")


@dataclass(frozen=True)
class Negative:
    kind: str
    name: str
    data: bytes


# ----------------------------------------------------------------------------------------- encoding


def _png(img: np.ndarray) -> bytes:
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", a)
    return buf.tobytes()


def _jpeg(img_rgb_u8: np.ndarray, quality: int = 90) -> bytes:
    a = cv2.cvtColor(img_rgb_u8, cv2.COLOR_RGB2BGR) if img_rgb_u8.ndim == 3 else img_rgb_u8
    ok, buf = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


def _to_u8(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    lo, hi = float(x.min()), float(x.max())
    return np.clip((x - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- film look


def _film(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, noise, a little exposure gradient and gamma, like a scanned radiograph."""
    h, w = canvas.shape
    k = int(rng.integers(1, 4)) * 2 + 1
    x = cv2.GaussianBlur(canvas.astype(np.float32), (k, k), 0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    grad = (np.cos(ang) * xx / w + np.sin(ang) * yy / h) * rng.uniform(0, 0.15)
    x = x + grad + rng.normal(0, rng.uniform(0.005, 0.03), x.shape).astype(np.float32)
    x = np.clip(x, 0, 1) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.1:  # some come inverted (MONOCHROME1 read raw, negative film)
        x = 1 - x
    return x


def _canvas(rng: np.random.Generator, aspect=(1.0, 1.4), side=(400, 1100)) -> np.ndarray:
    h = int(rng.integers(*side))
    w = int(h / rng.uniform(*aspect))
    return np.full((h, w), rng.uniform(0.0, 0.12), np.float32)


def _bone(c: np.ndarray, p0, p1, width: float, value: float, head: float = 1.4) -> None:
    """A long bone: a shaft with wider ends (epiphyses), cortex brighter than the medulla."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    cv2.line(c, tuple(int(v) for v in p0), tuple(int(v) for v in p1), value, int(max(2, width)), cv2.LINE_AA)
    cv2.line(c, tuple(int(v) for v in p0), tuple(int(v) for v in p1), value * 0.8, int(max(1, width * 0.45)), cv2.LINE_AA)
    for p in (p0, p1):
        cv2.ellipse(c, (int(p[0]), int(p[1])), (int(width * head / 2 + 1), int(width * head / 2.6 + 1)),
                    math.degrees(math.atan2(*(p1 - p0)[::-1])) + 90, 0, 360, value, -1, cv2.LINE_AA)


def render_chest(rng):
    c = _canvas(rng, aspect=(0.8, 1.25))
    h, w = c.shape
    cx = w / 2 + rng.normal(0, w * 0.03)
    cv2.ellipse(c, (int(cx), int(h * 0.55)), (int(w * rng.uniform(0.38, 0.48)), int(h * 0.55)), 0, 0, 360, 0.45, -1)
    for s in (-1, 1):  # lungs
        cv2.ellipse(c, (int(cx + s * w * 0.18), int(h * 0.5)), (int(w * 0.14), int(h * 0.3)), s * 8, 0, 360, 0.18, -1)
    cv2.ellipse(c, (int(cx + w * 0.05), int(h * 0.62)), (int(w * 0.12), int(h * 0.12)), 0, 0, 360, 0.5, -1)  # heart
    for i in range(int(rng.integers(8, 12))):  # ribs
        y = h * (0.25 + i * 0.05)
        for s in (-1, 1):
            cv2.ellipse(c, (int(cx), int(y)), (int(w * 0.33), int(h * 0.06)), 0, 180 if s < 0 else 270, 270 if s < 0 else 360,
                        0.7, max(2, int(w * 0.012)), cv2.LINE_AA)
    cv2.rectangle(c, (int(cx - w * 0.025), int(h * 0.12)), (int(cx + w * 0.025), h), 0.8, -1)  # spine
    for s in (-1, 1):  # clavicles
        cv2.line(c, (int(cx), int(h * 0.2)), (int(cx + s * w * 0.3), int(h * 0.17)), 0.8, max(3, int(w * 0.02)), cv2.LINE_AA)
    return _film(c, rng)


def render_knee(rng):
    c = _canvas(rng, aspect=(0.5, 0.9))
    h, w = c.shape
    cx = w / 2 + rng.normal(0, w * 0.05)
    cv2.ellipse(c, (int(cx), int(h / 2)), (int(w * rng.uniform(0.25, 0.4)), int(h * 0.6)), 0, 0, 360, 0.35, -1)
    bw = w * rng.uniform(0.18, 0.28)
    _bone(c, (cx, -10), (cx, h * 0.45), bw, 0.8, head=1.9)  # femur with condyles
    _bone(c, (cx, h * 0.53), (cx, h + 10), bw * 0.9, 0.8, head=1.8)  # tibia
    _bone(c, (cx + bw * 0.9, h * 0.58), (cx + bw * 0.8, h + 10), bw * 0.3, 0.75)  # fibula
    if rng.random() < 0.6:
        cv2.circle(c, (int(cx - bw * 0.2), int(h * 0.42)), int(bw * 0.35), 0.85, -1)  # patella
    c = _rotate(c, rng.uniform(-25, 25))
    return _film(c, rng)


def render_long_bone(rng):
    c = _canvas(rng, aspect=(0.4, 0.8))
    h, w = c.shape
    n = int(rng.integers(1, 3))
    cx = w / 2
    cv2.ellipse(c, (int(cx), int(h / 2)), (int(w * rng.uniform(0.2, 0.35)), int(h * 0.6)), 0, 0, 360, 0.35, -1)
    for i in range(n):
        x = cx + (i - (n - 1) / 2) * w * 0.15
        _bone(c, (x, h * rng.uniform(0.02, 0.15)), (x + rng.normal(0, w * 0.03), h * rng.uniform(0.85, 0.98)),
              w * rng.uniform(0.06, 0.12), 0.85)
    return _film(_rotate(c, rng.uniform(-40, 40)), rng)


def render_skull(rng):
    c = _canvas(rng, aspect=(0.85, 1.2))
    h, w = c.shape
    ax = (int(w * rng.uniform(0.33, 0.42)), int(h * rng.uniform(0.36, 0.45)))
    cv2.ellipse(c, (w // 2, h // 2), ax, 0, 0, 360, 0.5, -1)
    cv2.ellipse(c, (w // 2, h // 2), ax, 0, 0, 360, 0.9, max(4, int(w * 0.03)), cv2.LINE_AA)
    cv2.ellipse(c, (w // 2, int(h * 0.75)), (int(ax[0] * 0.6), int(ax[1] * 0.3)), 0, 0, 180, 0.85, max(4, int(w * 0.03)))
    for s in (-1, 1):
        cv2.circle(c, (int(w / 2 + s * ax[0] * 0.4), int(h * 0.5)), int(ax[0] * 0.18), 0.3, -1)  # orbits
    return _film(c, rng)


def render_pelvis(rng):
    c = _canvas(rng, aspect=(0.7, 1.0))
    h, w = c.shape
    cv2.ellipse(c, (w // 2, h // 2), (int(w * 0.47), int(h * 0.45)), 0, 0, 360, 0.4, -1)
    for s in (-1, 1):
        cv2.ellipse(c, (int(w / 2 + s * w * 0.22), int(h * 0.35)), (int(w * 0.2), int(h * 0.2)), s * 20, 0, 360, 0.75, -1)
        cv2.circle(c, (int(w / 2 + s * w * 0.3), int(h * 0.62)), int(w * 0.07), 0.85, -1)  # femoral heads
        _bone(c, (w / 2 + s * w * 0.33, h * 0.66), (w / 2 + s * w * 0.38, h + 20), w * 0.1, 0.8)
    cv2.rectangle(c, (int(w * 0.45), 0), (int(w * 0.55), int(h * 0.55)), 0.8, -1)  # sacrum
    return _film(c, rng)


def render_foot(rng):
    """A foot seen from above: short toes joined to a long, solid midfoot (not a hand's long fingers)."""
    c = _canvas(rng, aspect=(0.45, 0.7))
    h, w = c.shape
    cv2.ellipse(c, (w // 2, int(h * 0.55)), (int(w * 0.3), int(h * 0.42)), 0, 0, 360, 0.35, -1)
    for i in range(5):
        x = w * (0.3 + i * 0.1)
        _bone(c, (x, h * 0.2), (w * 0.5 + (x - w * 0.5) * 0.6, h * 0.5), w * 0.05, 0.8)  # metatarsals
        _bone(c, (x, h * 0.2), (x + rng.normal(0, 3), h * (0.1 + 0.02 * abs(i - 1))), w * 0.045, 0.8)  # toes
    cv2.ellipse(c, (w // 2, int(h * 0.62)), (int(w * 0.22), int(h * 0.12)), 0, 0, 360, 0.8, -1)  # tarsals
    cv2.ellipse(c, (int(w * 0.55), int(h * 0.85)), (int(w * 0.15), int(h * 0.1)), 0, 0, 360, 0.85, -1)  # calcaneus
    return _film(_rotate(c, rng.uniform(-30, 30)), rng)


def render_spine(rng):
    c = _canvas(rng, aspect=(0.4, 0.7))
    h, w = c.shape
    cv2.rectangle(c, (int(w * 0.15), 0), (int(w * 0.85), h), 0.35, -1)
    n = int(rng.integers(5, 9))
    for i in range(n):
        y0 = h * (0.03 + i / n)
        cv2.rectangle(c, (int(w * 0.35), int(y0)), (int(w * 0.65), int(y0 + h / n * 0.75)), 0.8, -1)
        cv2.line(c, (int(w * 0.25), int(y0 + h / n * 0.4)), (int(w * 0.75), int(y0 + h / n * 0.4)), 0.7, max(2, int(w * 0.02)))
    return _film(_rotate(c, rng.uniform(-20, 20)), rng)


def _rotate(c: np.ndarray, deg: float) -> np.ndarray:
    h, w = c.shape
    M = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(c, M, (w, h), borderValue=float(np.median(c[:4, :4])))


# ----------------------------------------------------------------------------------------- synthetic


def _size(rng):
    return int(rng.integers(128, 900)), int(rng.integers(128, 900))


def synth_noise(rng):
    h, w = _size(rng)
    kind = int(rng.integers(0, 5))
    if kind == 0:
        x = rng.normal(0.5, rng.uniform(0.05, 0.3), (h, w))
    elif kind == 1:
        x = rng.random((h, w))
    elif kind == 2:
        x = (rng.random((h, w)) < rng.uniform(0.02, 0.5)).astype(float)
    elif kind == 3:  # blurred noise: clouds
        k = int(rng.integers(3, 40)) * 2 + 1
        x = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (k, k), 0)
    else:  # speckle on a smooth field
        x = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (31, 31), 0) * rng.exponential(1, (h, w))
    return _to_u8(x)


def synth_gradient(rng):
    h, w = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * math.pi)
        x = np.cos(a) * xx / w + np.sin(a) * yy / h
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x = -np.hypot(xx - cx, yy - cy)
    x = _to_u8(x).astype(np.float32)
    return np.clip(x * rng.uniform(0.3, 1) + rng.normal(0, 1, x.shape), 0, 255).astype(np.uint8)


def synth_blank(rng):
    h, w = _size(rng)
    x = np.full((h, w), rng.uniform(0, 255), np.float32) + rng.normal(0, rng.uniform(0.3, 2.0), (h, w))
    if rng.random() < 0.5:  # a tiny mark on it
        cv2.circle(x, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(2, 8)), 255, -1)
    return np.clip(x, 0, 255).astype(np.uint8)


def synth_shapes(rng):
    h, w = _size(rng)
    c = np.full((h, w), rng.uniform(0, 0.2), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        v = rng.uniform(0.4, 1.0)
        t = int(rng.integers(0, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if t == 0:
            cv2.ellipse(c, (cx, cy), (int(rng.integers(10, w // 2 + 11)), int(rng.integers(10, h // 2 + 11))),
                        rng.uniform(0, 180), 0, 360, v, -1, cv2.LINE_AA)
        elif t == 1:
            cv2.rectangle(c, (cx, cy), (cx + int(rng.integers(10, w)), cy + int(rng.integers(10, h))), v, -1)
        else:
            pts = np.stack([rng.integers(0, w, 6), rng.integers(0, h, 6)], 1).astype(np.int32)
            cv2.fillPoly(c, [cv2.convexHull(pts)], v)
    k = int(rng.integers(0, 10)) * 2 + 1
    return _to_u8(cv2.GaussianBlur(c, (k, k), 0) + rng.normal(0, 0.01, c.shape).astype(np.float32))


def synth_texture(rng):
    h, w = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = int(rng.integers(0, 4))
    f = rng.uniform(0.01, 0.2)
    if t == 0:
        a = rng.uniform(0, math.pi)
        x = np.sin(2 * math.pi * f * (np.cos(a) * xx + np.sin(a) * yy))
    elif t == 1:
        s = int(rng.integers(4, 64))
        x = ((xx // s + yy // s) % 2).astype(np.float32)
    elif t == 2:
        x = np.sin(2 * math.pi * f * xx) * np.sin(2 * math.pi * f * rng.uniform(0.5, 2) * yy)
    else:
        cx, cy = w / 2, h / 2
        x = np.sin(2 * math.pi * f * np.hypot(xx - cx, yy - cy))
    return _to_u8(x + rng.normal(0, 0.05, x.shape))


def synth_text(rng):
    h, w = _size(rng)
    h, w = max(h, 200), max(w, 200)
    bg, fg = (255, 0) if rng.random() < 0.6 else (0, 255)
    c = np.full((h, w), bg, np.uint8)
    words = ("bone age report patient name date left hand PA view radiograph R L 2026 mm kg cm normal "
             "findings impression growth plate wrist carpal clinical history signed").split()
    y = int(rng.integers(20, 40))
    scale = rng.uniform(0.4, 1.6)
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX]))
    while y < h - 10:
        line = " ".join(rng.choice(words, int(rng.integers(2, 12))))
        cv2.putText(c, line, (int(rng.integers(5, 30)), y), font, scale, fg, max(1, int(scale * 1.5)), cv2.LINE_AA)
        y += int(30 * scale + rng.integers(5, 30))
        if rng.random() < 0.1:
            break
    return c


# ----------------------------------------------------------------------------------------- real samples


def _skimage_photos() -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """scikit-image's bundled sample images (colour, gray); empty lists when it is not installed."""
    try:
        import skimage.data as d
    except ImportError:
        return [], []
    colour, gray = [], []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "colorwheel", "immunohistochemistry", "retina",
                 "hubble_deep_field", "logo", "motorcycle", "chessboard_rgb_placeholder"):
        f = getattr(d, name, None)
        try:
            im = f() if f else None
        except Exception:  # noqa: BLE001 - some samples need a download; skip those
            im = None
        if isinstance(im, tuple):
            im = im[0]
        if im is not None and im.ndim == 3:
            colour.append((name, np.asarray(im)[..., :3]))
    for name in ("camera", "moon", "coins", "page", "text", "horse", "cell", "gravel", "brick", "grass", "clock",
                 "shepp_logan_phantom", "microaneurysms", "checkerboard", "binary_blobs"):
        f = getattr(d, name, None)
        try:
            im = f() if f else None
        except Exception:  # noqa: BLE001
            im = None
        if im is not None:
            im = np.asarray(im)
            gray.append((name, _to_u8(im.astype(np.float32)) if im.dtype != np.uint8 else im))
    try:
        faces = d.lfw_subset()
        for i in range(0, len(faces), 10):
            gray.append((f"face{i}", _to_u8(cv2.resize(faces[i], (200, 200)))))
    except Exception:  # noqa: BLE001
        pass
    return colour, gray


def _pydicom_slices() -> list[tuple[str, bytes]]:
    """pydicom's bundled grayscale CT/MR/other test files that our loader can read."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return []
    out = []
    for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_padded.dcm", "MR_small_bigendian.dcm", "liver_1frame.dcm",
                 "JPEG2000.dcm", "JPGExtended.dcm", "JPEGLSNearLossless_16.dcm", "examples_overlay.dcm",
                 "emri_small.dcm", "rtdose_1frame.dcm", "MR2_J2KI.dcm", "RG1_UNCI.dcm", "RG3_UNCI.dcm", "US1_UNCI.dcm",
                 "693_J2KI.dcm", "image_dfl.dcm", "MR_small_RLE.dcm"):
        try:
            p = get_testdata_file(name, download=False)
        except Exception:  # noqa: BLE001
            p = None
        if p and Path(p).is_file():
            import pydicom

            ds = pydicom.dcmread(p, stop_before_pixels=True)
            if min(int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) >= 64:  # smaller ones the loader refuses
                out.append((name, Path(p).read_bytes()))
    return out


def _dicom_variant(data: bytes, rng) -> bytes:
    """The same slice cropped / flipped / rotated, re-encoded as uncompressed DICOM."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(io.BytesIO(data))
    a = np.asarray(ds.pixel_array)
    if a.ndim == 3:
        a = a[0]
    h, w = a.shape
    y0, x0 = int(rng.integers(0, max(1, h // 4))), int(rng.integers(0, max(1, w // 4)))
    a = a[y0 : y0 + int(h * rng.uniform(0.7, 1.0)), x0 : x0 + int(w * rng.uniform(0.7, 1.0))]
    a = np.rot90(a, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        a = a[:, ::-1]
    a = np.ascontiguousarray(a).astype(np.uint16 if a.min() >= 0 else np.int16)
    if min(a.shape) < 64:
        a = cv2.resize(a.astype(np.float32), (max(64, a.shape[1] * 2), max(64, a.shape[0] * 2))).astype(a.dtype)
    for tag in ("NumberOfFrames", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        if tag in ds:
            delattr(ds, tag)
    ds.Rows, ds.Columns = a.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if a.dtype == np.int16 else 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = a.tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buf.getvalue()


def _photo_variant(im: np.ndarray, rng) -> np.ndarray:
    h, w = im.shape[:2]
    s = rng.uniform(0.5, 1.0)
    ch, cw = max(48, int(h * s)), max(48, int(w * s))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = np.ascontiguousarray(np.rot90(im[y0 : y0 + ch, x0 : x0 + cw], int(rng.integers(0, 4))))
    if min(out.shape[:2]) < 96:
        f = 96 / min(out.shape[:2])
        out = cv2.resize(out, (int(out.shape[1] * f) + 1, int(out.shape[0] * f) + 1))
    return out


_CACHE: dict = {}


def make(kind: str, i: int) -> Negative:
    """The ``i``-th negative of ``kind`` (deterministic)."""
    rng = np.random.default_rng([KINDS.index(kind), i, 1010])
    name = f"{kind}-{i:03d}"
    if kind in RENDERED:
        img = globals()[f"render_{kind}"](rng)
        return Negative(kind, name, _png(img) if rng.random() < 0.7 else _jpeg(_to_u8(img)))
    if kind == "dicom_ct_mr":
        if "dicom" not in _CACHE:
            _CACHE["dicom"] = _pydicom_slices()
        slices = _CACHE["dicom"]
        if not slices:
            raise LookupError("pydicom's test files are not available")
        base_name, data = slices[i % len(slices)]
        return Negative(kind, f"{name}-{base_name}", data if i < len(slices) else _dicom_variant(data, rng))
    if kind in ("photo_colour", "photo_gray"):
        if "photos" not in _CACHE:
            _CACHE["photos"] = _skimage_photos()
        colour, gray = _CACHE["photos"]
        if kind == "photo_colour":
            if not colour:
                raise LookupError("scikit-image's sample photographs are not installed")
            base_name, im = colour[i % len(colour)]
            v = _photo_variant(im, rng)
            return Negative(kind, f"{name}-{base_name}", _png(v) if rng.random() < 0.5 else _jpeg(v, 85))
        pool = gray + [(n, cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)) for n, c in colour]
        if not pool:
            raise LookupError("scikit-image's sample photographs are not installed")
        base_name, im = pool[i % len(pool)]
        return Negative(kind, f"{name}-{base_name}", _png(_photo_variant(im, rng)))
    img = globals()[f"synth_{kind}"](rng)
    return Negative(kind, name, _png(img))


def generate(per_kind: int = 40, kinds: tuple[str, ...] = KINDS):
    """Yield ``per_kind`` negatives of every kind that can be built here, index by index across the
    kinds (so any prefix covers every kind evenly); kinds needing a missing package are skipped."""
    missing: set[str] = set()
    for i in range(per_kind):
        for kind in kinds:
            if kind in missing:
                continue
            try:
                yield make(kind, i)
            except LookupError:
                missing.add(kind)
