"""The seed study's preprocessing pipeline, stage by stage.

Every stage is a small pure function on numpy images; :func:`run_pipeline` chains them and keeps
each intermediate image by name, so the app can show them and training, evaluation and prediction
all prepare images through *this one function* (no copies).

Order: resize to the study frame → min-max normalise → polarity check (inverted images) → denoise
→ CLAHE → threshold at the mean → largest contour = hand mask → rotation alignment (middle-finger
tip above the centroid) → laterality (right hand mirrored to the canonical left) → ROIs from the
convex hull's defects → model input (masked, cropped, resized).

Coordinates: images are (H, W); boxes are ``(x, y, w, h)`` in pixels of the aligned image;
angles are degrees, counter-clockwise positive, as in ``cv2.getRotationMatrix2D``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .localise import candidates as mask_candidates
from .localise import detach_thin, hand_shape, largest_filled, side_runs

if TYPE_CHECKING:
    from .io import LoadedImage

# Stage names, in the order they are produced (``NN_<name>.png`` in the CLI).
STAGES = (
    "input",
    "resized",
    "normalised",
    "polarity",
    "denoised",
    "clahe",
    "threshold",
    "mask",
    "aligned",
    "aligned_mask",
    "canonical",
    "rois",
    "model_input",
)
# What each stage does, in a sentence (the app's Pipeline page and ``boneage pipeline``'s stages.json).
STAGE_NOTES = {
    "input": "As loaded: grayscale, intensities scaled to 0–1 (16-bit kept until here).",
    "resized": "Fitted into the frame (the study's 800×1000 at half scale; thumbnails stretched back to the hand's aspect).",
    "normalised": "Min–max normalised so exposure differences do not reach the model.",
    "polarity": "Inverted films (bone dark) are flipped back.",
    "denoised": "Noise suppressed before contrast enhancement.",
    "clahe": "CLAHE: local contrast enhancement (clip limit, tile grid).",
    "threshold": "Foreground threshold (mean or Otsu).",
    "mask": "Hand mask: the largest region, filled — or, when that is not clearly a hand (a film, a frame, a gradient), the most hand-shaped of the other candidates.",
    "aligned": "Rotated so the middle finger points straight up.",
    "aligned_mask": "The mask after alignment (and mirroring).",
    "canonical": "Standard view: a left hand, fingers up.",
    "rois": "Regions of interest: middle finger, thumb, carpals, wrist.",
    "model_input": "What the network sees: the hand on black, cropped and resized.",
}
# The allowed values of PipelineParams.denoise / .threshold (the page's widgets and the CLI's choices).
DENOISE_METHODS = ("median", "gaussian", "none")
THRESHOLD_METHODS = ("mean", "otsu")
ROI_NAMES = ("middle_finger", "thumb", "carpals", "wrist")
# Bump when a change alters the model input: it keys the training caches (boneage.data).
PIPELINE_VERSION = 5  # 4: hand chosen among candidate masks (boneage.localise), wrist-side prior in alignment
# 5: the frame at half the study's scale (400×500) and the thin-line cut on a 400-pixel grid


@dataclass(frozen=True)
class PipelineParams:
    """Pipeline settings. Defaults are the study's but for the frame's scale; the model bundle stores its own.

    The frame keeps the study's 800×1000 shape (its mean aspect ratio ≈ 1.266) at half the scale:
    the network reads a 160×128 crop of it, so the larger frame bought no detail the model sees,
    and it cost most of the pipeline's time. Measured 2026-11-29 with the shipped networks (not
    retrained): the pipeline on a 2000×2500 PNG 62–68 → 22 ms; ``boneage evaluate`` on the
    validation ids 8.680 → 8.635 months on the 1,692 both versions accept (each with its own
    acceptance check), end-band bias +7.5/−7.9 → +6.6/−6.5; the 10 raw films turn within 0.3°
    of their 800×1000 turn; the 84 film composites all pass (tests/test_localise.py).
    """

    frame_width: int = 400  # the study's 800×1000 frame at half scale (see above)
    frame_height: int = 500
    thumbnail_max_side: int = 256  # square inputs this small are RSNA-style squashed thumbnails
    denoise: str = "median"  # median | gaussian | none
    denoise_ksize: int = 5
    clahe_clip: float = 1.0  # study: clipLimit 1
    clahe_tiles: int = 3  # study: tileGridSize 3×3
    threshold: str = "mean"  # mean (study) | otsu
    ignore_bottom: float = 0.10  # study: bottom 10 % left out of the threshold statistic
    ignore_right: float = 0.05  # study: right 5 % left out
    fix_polarity: bool = True
    fix_laterality: bool = True
    align: bool = True
    model_width: int = 128
    model_height: int = 160
    model_margin: float = 0.04  # fraction of the hand box added on each side of the model crop

    def __post_init__(self) -> None:
        """Every field checked here, so the CLI, the app, a model bundle's meta.json and the Python
        API get the same one-line :class:`boneage.checks.ParameterError` (``clahe_tiles=0`` used to
        kill the process with SIGFPE inside OpenCV; a negative clip limit was accepted)."""
        from .checks import check_bool, check_choice, check_float, check_int

        f = object.__setattr__  # frozen: store the normalised values (2.0 -> 2, numpy scalars -> Python)
        f(self, "frame_width", check_int(self.frame_width, "frame_width", lo=64, hi=4096))
        f(self, "frame_height", check_int(self.frame_height, "frame_height", lo=64, hi=4096))
        f(self, "thumbnail_max_side", check_int(self.thumbnail_max_side, "thumbnail_max_side", lo=0, hi=4096))
        f(self, "denoise", check_choice(self.denoise, "denoise", DENOISE_METHODS, flag="--denoise"))
        f(self, "denoise_ksize", check_int(self.denoise_ksize, "denoise_ksize", lo=1, hi=31))
        f(self, "clahe_clip", check_float(self.clahe_clip, "clahe_clip", lo=0.0, lo_open=True, hi=100.0, flag="--clahe-clip"))
        f(self, "clahe_tiles", check_int(self.clahe_tiles, "clahe_tiles", lo=1, hi=64, flag="--clahe-tiles"))
        f(self, "threshold", check_choice(self.threshold, "threshold", THRESHOLD_METHODS, flag="--threshold"))
        f(self, "ignore_bottom", check_float(self.ignore_bottom, "ignore_bottom", lo=0.0, hi=0.9))
        f(self, "ignore_right", check_float(self.ignore_right, "ignore_right", lo=0.0, hi=0.9))
        for name in ("fix_polarity", "fix_laterality", "align"):
            f(self, name, check_bool(getattr(self, name), name))
        f(self, "model_width", check_int(self.model_width, "model_width", lo=32, hi=1024))
        f(self, "model_height", check_int(self.model_height, "model_height", lo=32, hi=1024))
        f(self, "model_margin", check_float(self.model_margin, "model_margin", lo=0.0, hi=1.0))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "PipelineParams":
        from .checks import ParameterError

        if d is not None and not isinstance(d, dict):
            raise ParameterError(f"pipeline parameters must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})

    @classmethod
    def coerce(cls, p: "PipelineParams | dict | None") -> "PipelineParams":
        """PipelineParams from itself, a dict of fields or None (the defaults); else ParameterError."""
        from .checks import ParameterError

        if p is None or isinstance(p, dict):
            return cls.from_dict(p)
        if isinstance(p, cls):
            return p
        raise ParameterError(f"params must be PipelineParams or a dict of its fields, got {type(p).__name__}")


@dataclass
class PipelineResult:
    """Every intermediate image (by stage name, in order) plus what the stages measured."""

    stages: dict[str, np.ndarray]
    params: PipelineParams
    rotation_deg: float = 0.0
    laterality: str = "left"  # as acquired: left | right | unknown
    mirrored: bool = False
    inverted: bool = False
    squashed_thumbnail: bool = False
    hand_found: bool = False
    hand_area_fraction: float = 0.0
    fingertip_xy: tuple[float, float] | None = None
    centroid_xy: tuple[float, float] | None = None
    rois: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failed_stages: dict[str, str] = field(default_factory=dict)  # stage -> why
    model_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # model crop in the canonical image
    mask_method: str = "largest region"  # which candidate became the hand (boneage.localise)

    def to_canonical(self, grid: np.ndarray) -> np.ndarray:
        """Resample a map on the model input's grid (e.g. attention) onto the canonical image."""
        h, w = self.stages["canonical"].shape[:2]
        bx, by, bw, bh = self.model_box
        big = cv2.resize(grid.astype(np.float32), (max(1, bw), max(1, bh)), interpolation=cv2.INTER_CUBIC)
        out = np.zeros((h, w), np.float32)
        x0, y0 = max(0, bx), max(0, by)
        x1, y1 = min(w, bx + bw), min(h, by + bh)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = big[y0 - by : y1 - by, x0 - bx : x1 - bx]
        return out

    @property
    def model_input(self) -> np.ndarray:
        """float32 (model_height, model_width) in [0, 1]: what the network sees."""
        return self.stages["model_input"].astype(np.float32) / 255.0

    @property
    def aligned(self) -> np.ndarray:
        return self.stages["canonical"]

    def roi_crops(self) -> dict[str, np.ndarray]:
        img = self.stages["canonical"]
        return {k: img[y : y + h, x : x + w] for k, (x, y, w, h) in self.rois.items()}

    def summary(self) -> dict:
        """JSON-friendly measurements (the CLI's stages.json)."""
        return {
            "rotation_deg": round(self.rotation_deg, 2),
            "laterality": self.laterality,
            "mirrored": self.mirrored,
            "inverted": self.inverted,
            "squashed_thumbnail": self.squashed_thumbnail,
            "hand_found": self.hand_found,
            "hand_area_fraction": round(self.hand_area_fraction, 4),
            "fingertip_xy": _round_pair(self.fingertip_xy),
            "centroid_xy": _round_pair(self.centroid_xy),
            "rois": {k: [int(v) for v in b] for k, b in self.rois.items()},
            "warnings": list(self.warnings),
            "failed_stages": dict(self.failed_stages),
            "model_box": [int(v) for v in self.model_box],
            "mask_method": self.mask_method,
            "stages": list(self.stages),
            "params": self.params.to_dict(),
        }


def _round_pair(p):
    return None if p is None else [round(float(p[0]), 1), round(float(p[1]), 1)]


# --------------------------------------------------------------------------------------------
# Stages: small pure functions
# --------------------------------------------------------------------------------------------


def to_float01(image: np.ndarray) -> np.ndarray:
    """Any numeric gray image → float32 in [0, 1] (no precision loss for 16-bit)."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2) if img.shape[2] >= 3 else img[..., 0]
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    img = np.asarray(img, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())  # NaN anywhere makes these NaN
    if 0.0 <= lo and hi <= 1.0:
        # The loader's output (finite, already in [0, 1]): returned as is, without nan_to_num's
        # four full-size passes (≈ 15 ms of a 2000×2500 prediction). Identical result.
        return img.copy() if img is image else img
    img = img.astype(np.float32)
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    if lo >= 0.0 and hi <= 1.0:
        return np.nan_to_num(img)
    return minmax_normalise(img)


def is_squashed_thumbnail(image: np.ndarray, params: PipelineParams) -> bool:
    """RSNA thumbnails were squashed to squares; stretching them back restores the hand's aspect."""
    h, w = image.shape[:2]
    return h == w and h <= params.thumbnail_max_side


def fit_to_frame(image: np.ndarray, width: int, height: int, *, stretch: bool = False) -> np.ndarray:
    """The image scaled to fit inside the study frame, keeping its aspect (no letterbox bars yet).

    ``stretch`` fills the frame instead; used for squashed thumbnails, whose true aspect is the
    frame's (≈1.27), so both kinds of input end up with the same geometry.
    """
    h, w = image.shape[:2]
    if stretch:
        interp = cv2.INTER_AREA if w * h > width * height else cv2.INTER_CUBIC
        return np.clip(cv2.resize(image, (width, height), interpolation=interp), 0, 1)
    scale = min(width / w, height / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(image, (nw, nh), interpolation=interp), 0, 1)


def letterbox(small: np.ndarray, width: int, height: int) -> np.ndarray:
    """``small`` (from :func:`fit_to_frame`) centred in the width×height frame, on black."""
    nh, nw = small.shape[:2]
    if (nh, nw) == (height, width):
        return small.astype(np.float32, copy=False)
    out = np.zeros((height, width), dtype=np.float32)
    y0, x0 = (height - nh) // 2, (width - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


def resize_to_frame(image: np.ndarray, width: int, height: int, *, stretch: bool = False) -> np.ndarray:
    """Fit into the study frame keeping the aspect ratio (letterboxed on black); see :func:`fit_to_frame`."""
    return letterbox(fit_to_frame(image, width, height, stretch=stretch), width, height)


def minmax_normalise(image: np.ndarray) -> np.ndarray:
    """Stretch to the full [0, 1] range, so exposure differences do not reach the model."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    if hi - lo < 1e-8:
        return np.zeros_like(img)
    if lo == 0.0 and hi == 1.0:  # already stretched (the loader's output): (x - 0) / 1 == x exactly
        return img.copy() if img is image else img
    return (img - lo) / (hi - lo)


def looks_inverted(image: np.ndarray) -> bool:
    """Inverted polarity (bone dark, background bright, e.g. MONOCHROME1 read raw).

    In a normal radiograph the border ring is background and darker than the centre, where the
    hand is. Medians ignore a bright marker or a collimator band along one side. A scanned film
    on a grey surround also has a ring brighter than the centre, but there bone is far brighter
    still; in a truly inverted image the ring is background, as bright as anything in the middle.
    On the 11,322 RSNA thumbnails this second test cut false alarms from 63 to 20 while still
    catching 89 % of the same thumbnails inverted on purpose (90 % before).
    """
    h, w = image.shape
    b = max(2, int(0.06 * min(h, w)))
    ring = float(np.median(np.concatenate([image[:b].ravel(), image[-b:].ravel(), image[:, :b].ravel(), image[:, -b:].ravel()])))
    # One partition pass for both statistics: this runs on the full-resolution input.
    centre_median, centre_p98 = np.percentile(image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4], (50, 98))
    return ring > float(centre_median) + 0.05 and ring >= float(centre_p98) - 0.2


def denoise(image_u8: np.ndarray, method: str = "median", ksize: int = 5) -> np.ndarray:
    """Suppress quantum noise and film grain before CLAHE amplifies it."""
    k = max(1, int(ksize) | 1)
    if method == "none" or k == 1:
        return image_u8.copy()
    if method == "gaussian":
        return cv2.GaussianBlur(image_u8, (k, k), 0)
    if method == "median":
        return cv2.medianBlur(image_u8, k)
    raise ValueError(f"unknown denoise method {method!r} ({', '.join(DENOISE_METHODS)})")


def clahe(image_u8: np.ndarray, clip: float = 1.0, tiles: int = 3) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (study: clipLimit 1, 3×3 tiles)."""
    op = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(tiles), int(tiles)))
    return op.apply(image_u8)


def threshold_mean(
    image_u8: np.ndarray, *, method: str = "mean", ignore_bottom: float = 0.10, ignore_right: float = 0.05
) -> np.ndarray:
    """Binary foreground. The study thresholds at the mean intensity, leaving the bottom 10 % and
    the right 5 % out of the statistic (where labels and markers sit)."""
    h, w = image_u8.shape
    region = image_u8[: max(1, int(h * (1 - ignore_bottom))), : max(1, int(w * (1 - ignore_right)))]
    if method == "otsu":
        t, _ = cv2.threshold(region, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    elif method == "mean":
        t = float(region.mean())
    else:
        raise ValueError(f"unknown threshold method {method!r} ({', '.join(THRESHOLD_METHODS)})")
    return ((image_u8 > t) * 255).astype(np.uint8)


def largest_contour_mask(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep the largest external contour, filled: the hand. Markers and text are separate blobs."""
    h, w = binary.shape
    k = max(3, int(round(min(h, w) / 200)) | 1)
    opened = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return largest_filled(opened)


def hand_plausibility(mask: np.ndarray, contour: np.ndarray | None, binary: np.ndarray | None = None) -> str | None:
    """Why the mask is not a plausible hand, or None when it is.

    A hand is one large blob: when the largest region holds under half of the thresholded
    foreground, the image is noise or clutter, not a radiograph of a hand.
    """
    if contour is None:
        return "no foreground found"
    h, w = mask.shape
    frac = float(np.count_nonzero(mask)) / (h * w)
    if binary is not None:
        fg = np.count_nonzero(binary)
        share = float(np.count_nonzero((mask > 0) & (binary > 0))) / fg if fg else 0.0
        if share < 0.5:
            return f"largest region holds only {share:.0%} of the foreground (no single hand-shaped region)"
    if frac < 0.05:
        return f"largest region covers only {frac:.0%} of the image"
    if frac > 0.85:
        return f"foreground covers {frac:.0%} of the image (background not separated)"
    x, y, bw, bh = cv2.boundingRect(contour)
    if max(bw, bh) < 0.35 * max(h, w):
        return "largest region is too small to be a hand"
    return None


def centroid(mask: np.ndarray) -> tuple[float, float]:
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] == 0:
        h, w = mask.shape
        return (w / 2.0, h / 2.0)
    return _moments_centroid(m)


def _moments_centroid(m: dict) -> tuple[float, float]:
    """The centroid from ``cv2.moments`` already taken (``m00`` > 0): a pass over the frame saved."""
    return (m["m10"] / m["m00"], m["m01"] / m["m00"])


def fingertip(mask: np.ndarray) -> tuple[float, float]:
    """Middle-finger tip as in the study: the median x of the first (top-most) mask row."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        h, w = mask.shape
        return (w / 2.0, 0.0)
    y = int(rows[0])
    # A few rows down, so a one-pixel nib does not decide the tip on its own.
    band = mask[y : y + max(1, mask.shape[0] // 200)]
    xs = np.flatnonzero(band.any(axis=0))
    return (float(np.median(xs)), float(y))


def tilt_deg(tip: tuple[float, float], c: tuple[float, float]) -> float:
    """Angle (CCW positive) to rotate by so the tip stands straight above the centroid."""
    dx, dy = tip[0] - c[0], c[1] - tip[1]  # dy > 0 when the tip is above
    # A tip up and to the right needs a counter-clockwise (positive) turn.
    return math.degrees(math.atan2(dx, dy))


def _solidity(mask: np.ndarray) -> float:
    cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not cs:
        return 1.0
    pts = np.vstack(cs)
    hull = cv2.convexHull(pts)
    ha = cv2.contourArea(hull)
    return float(np.count_nonzero(mask)) / ha if ha > 0 else 1.0


def principal_axis_deg(mask: np.ndarray) -> float:
    """Coarse turn (CCW) that stands the hand's long axis upright with the fingers at the top.

    The long axis comes from the mask's second moments and rotates with the hand, so it is
    consistent for any input rotation (the study's top-row rule alone is not: at 90° the top row
    is the side of a finger). Of the two ends, the fingers' end is the less solid one (gaps
    between the digits).
    """
    m = cv2.moments(mask, binaryImage=True)
    if m["m00"] == 0:
        return 0.0
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    theta = 0.5 * math.atan2(2 * mu11, mu20 - mu02)  # long axis angle from +x, image coords (y down)
    # Angle that maps the long axis onto the vertical.
    turn = math.degrees(theta) + 90.0
    turn = _wrap180(turn)
    if turn > 90:
        turn -= 180
    elif turn < -90:
        turn += 180
    c = _moments_centroid(m)  # = centroid(mask)
    r = rotate(mask, turn, c, nearest=True)
    rows = np.flatnonzero(r.any(axis=1))
    if rows.size < 8:
        return turn
    top, bottom = rows[0], rows[-1]
    q = max(2, (bottom - top) // 4)
    top_sol = _solidity(r[top : top + q].copy())
    bot_sol = _solidity(r[bottom - q : bottom + 1].copy())
    if top_sol > bot_sol:  # fingers are at the bottom
        turn = _wrap180(turn + 180.0)
    return turn


def rotate(image: np.ndarray, angle_deg: float, center: tuple[float, float], *, nearest: bool = False) -> np.ndarray:
    """Rotate CCW by angle about ``center`` on an expanded canvas, so nothing is cut off."""
    h, w = image.shape[:2]
    M = cv2.getRotationMatrix2D(center, angle_deg, 1.0)
    cos, sin = abs(M[0, 0]), abs(M[0, 1])
    nw, nh = int(math.ceil(h * sin + w * cos)), int(math.ceil(h * cos + w * sin))
    M[0, 2] += nw / 2.0 - center[0]
    M[1, 2] += nh / 2.0 - center[1]
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, M, (nw, nh), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_angle(mask: np.ndarray, *, max_step: float = 30.0, c0: tuple[float, float] | None = None
                ) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """Total CCW rotation that puts the middle finger straight up.

    A coarse turn from the long axis, then the study's rule once: the tip (first mask row's
    median x) straight above the centroid (image moments), the angle from ``atan2``. ``c0``:
    the mask's centroid when the caller has it (a moments pass over the frame saved).
    """
    c0 = centroid(mask) if c0 is None else c0
    core = detach_thin(mask)[0]  # a film edge joined to the hand must not turn its axis or be its "tip"
    if np.count_nonzero(core) < 0.8 * np.count_nonzero(mask):
        core = mask
    coarse = wrist_down(core, principal_axis_deg(core))
    m = rotate(core, coarse, c0, nearest=True) if coarse else core
    tip, c = fingertip(m), centroid(m)
    step = tilt_deg(tip, c)
    if abs(step) > max_step:  # the top row is not the middle finger; keep the coarse turn
        step = 0.0
    angle = _wrap180(coarse + step)
    if abs(angle) > max_step and wrist_side(core) == (0.0, 1.0):
        # The forearm leaves through the bottom edge: the hand was placed fingers up, as nearly
        # every film is, yet the long axis says otherwise (a hand with spread digits and a short
        # forearm: 5 of 400 RSNA thumbnails turned 33–40°). The study's rule on the mask as it
        # lies, trusted up to 45°.
        tip0, cen0 = fingertip(core), centroid(core)
        direct = tilt_deg(tip0, cen0)
        if abs(direct) <= 45.0 and abs(direct) < abs(angle):
            return direct, tip0, cen0
    return angle, tip, c


def wrist_down(mask: np.ndarray, turn: float) -> float:
    """``turn``, or ``turn`` + 180° when it would put the forearm at the top.

    The forearm leaves the picture through one side; where the mask runs along exactly one image
    side (over 10 % of it, and more than twice any other), that side is the wrist's, whichever
    end looks less solid. On 400 random RSNA thumbnails the solidity rule alone turned 20 hands
    upside down whose masks were right.
    """
    side = wrist_side(mask)
    if side is None:
        return turn
    dx, dy = side
    t = math.radians(turn)
    down = -dx * math.sin(t) + dy * math.cos(t)  # the wrist side's direction after the turn (y grows downwards)
    return _wrap180(turn + 180.0) if down < -0.3 else turn


def wrist_side(mask: np.ndarray) -> tuple[float, float] | None:
    """Unit direction ``(dx, dy)`` of the one image side the forearm leaves through, or None."""
    ordered = sorted(side_runs(mask).items(), key=lambda kv: -kv[1])
    side, best = ordered[0]
    if best < 0.10 or ordered[1][1] > 0.5 * best:
        return None
    return side


def _wrap180(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


Valley = tuple  # (far_x, far_y, depth, (start_x, start_y), (end_x, end_y))


def finger_valleys(mask: np.ndarray, min_depth: float = 0.06, max_rel_y: float = 0.8) -> list[Valley]:
    """Convexity defects deeper than ``min_depth`` × hand height: the valleys between digits.

    Each is ``(x, y, depth, start, end)``: the valley's deepest point and the two hull points
    (digit tips) either side of it.
    """
    cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not cs:
        return []
    c = max(cs, key=cv2.contourArea)
    if len(c) < 5:
        return []
    _, y0, _, bh = cv2.boundingRect(c)
    try:
        hull = cv2.convexHull(c, returnPoints=False)
        hull = np.sort(hull.ravel())[:, None]
        defects = cv2.convexityDefects(c, hull)
    except cv2.error:
        return []
    out: list[Valley] = []
    if defects is None:
        return out
    for s, e, f, depth in defects.reshape(-1, 4):
        px, py = c[f][0]
        d = depth / 256.0
        if d > min_depth * bh and py < y0 + max_rel_y * bh:
            out.append((int(px), int(py), float(d), tuple(int(v) for v in c[s][0]), tuple(int(v) for v in c[e][0])))
    return out


def detect_laterality(mask_aligned: np.ndarray, margin: float = 0.02) -> str:
    """'left' or 'right' for a fingers-up PA view (canonical: left hand, thumb on the image's right).

    The abducted thumb reaches further sideways than the little-finger edge: between 40 % and 75 %
    of the hand's height, compare how far the mask extends to each side of the forearm axis and of
    the middle finger. Measured on the 40 full-size RSNA radiographs (all left hands): 38 right.
    """
    # Row by row rather than np.nonzero over the whole mask (≈ 4 ms on the 800×1000 frame):
    # only the forearm rows need their pixels listed; the band needs each row's extent.
    filled = np.flatnonzero(mask_aligned.any(axis=1))
    if filled.size == 0:
        return "unknown"
    top, bottom = int(filled[0]), int(filled[-1])
    hh = max(1, bottom - top)
    low = int(math.floor(bottom - 0.15 * hh)) + 1  # first row with y > bottom - 0.15·hh
    axis_x = float(np.median(np.nonzero(mask_aligned[low : bottom + 1])[1]))
    tip_x, _ = fingertip(mask_aligned)
    b0 = int(math.floor(top + 0.40 * hh)) + 1  # rows with top + 0.40·hh < y < top + 0.75·hh
    b1 = int(math.ceil(top + 0.75 * hh))
    cols = np.flatnonzero(mask_aligned[b0:b1].any(axis=0))  # no rows (b1 ≤ b0): no columns
    if cols.size == 0:
        return "unknown"
    x_min, x_max = int(cols[0]), int(cols[-1])
    right = (x_max - axis_x) + (x_max - tip_x)
    left = (axis_x - x_min) + (tip_x - x_min)
    d = (right - left) / hh
    if abs(d) < margin:
        return "unknown"
    return "left" if d > 0 else "right"


Box = tuple[int, int, int, int]  # (x, y, w, h) in pixels of the aligned image


def extract_rois(mask: np.ndarray) -> tuple[dict[str, Box], list[str]]:
    """ROI boxes from the convex hull and its convexity defects (aligned, canonical left hand).

    The defects are the valleys between digits; the deepest one low on the thumb side is the
    thumb–index web. The wrist is the narrowest row below the palm; the carpal bones sit just
    above it and the distal radius/ulna just below. Read top-down: the hand's outline → its
    valleys → the wrist row → one box per region; a region whose landmarks are missing is placed
    from the hand's proportions, with a note.
    """
    notes: list[str] = []
    h, w = mask.shape
    cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(cs, key=cv2.contourArea) if cs else None
    if contour is None or len(contour) < 5:
        return {}, ["no hand contour for ROI extraction"]
    hand = cv2.boundingRect(contour)
    x0, y0, bw, bh = hand
    rows = mask[y0 : y0 + bh] > 0
    widths = rows.sum(axis=1)
    lefts = np.where(rows.any(axis=1), rows.argmax(axis=1), 0)
    # Convexity defects: finger valleys, the five deepest.
    valleys = [v[:3] for v in finger_valleys(mask, min_depth=0.04, max_rel_y=0.75)]
    valleys.sort(key=lambda v: -v[2])
    valleys = valleys[:5]
    wrist_rel = _wrist_row(widths, bh, notes)
    wy = y0 + wrist_rel
    tip_x, tip_y = fingertip(mask)
    rois: dict[str, Box] = {
        "middle_finger": _middle_finger_box(valleys, tip_x, tip_y, hand, notes),
        "thumb": _thumb_box(valleys, tip_x, hand, wy, notes),
        **_carpal_and_wrist_boxes(int(lefts[wrist_rel]), wy, max(8, int(widths[wrist_rel])), bh, y0),
    }
    return {k: _clip_box(b, w, h) for k, b in rois.items()}, notes


def _wrist_row(widths: np.ndarray, bh: int, notes: list[str]) -> int:
    """The narrowest row in the lower part of the hand (below the thumb web), relative to its top."""
    lo_start, lo_end = int(0.68 * bh), int(0.88 * bh)
    if lo_end - lo_start > 3:
        seg = widths[lo_start:lo_end].astype(float)
        k = max(1, len(seg) // 15)
        seg = np.convolve(seg, np.ones(k) / k, mode="same")
        return lo_start + int(np.argmin(seg[k:-k] if len(seg) > 2 * k + 1 else seg) + (k if len(seg) > 2 * k + 1 else 0))
    notes.append("hand too short to locate the wrist; wrist from proportions")
    return int(0.85 * bh)


def _middle_finger_box(valleys: list, tip_x: float, tip_y: float, hand: Box, notes: list[str]) -> Box:
    """Between the valleys either side of the fingertip's column, from the tip down."""
    x0, y0, bw, bh = hand
    top_valleys = [v for v in valleys if v[1] < y0 + 0.6 * bh]
    left_v = [v for v in top_valleys if v[0] < tip_x]
    right_v = [v for v in top_valleys if v[0] > tip_x]
    if left_v and right_v:
        lv = max(left_v, key=lambda v: v[0])
        rv = min(right_v, key=lambda v: v[0])
        fx0, fx1 = lv[0], rv[0]
        fy1 = max(lv[1], rv[1])
    else:
        notes.append("finger valleys not found; middle-finger ROI from proportions")
        fx0, fx1 = int(tip_x - 0.09 * bw), int(tip_x + 0.09 * bw)
        fy1 = y0 + int(0.4 * bh)
    return (fx0, int(tip_y), max(8, fx1 - fx0), max(8, fy1 - int(tip_y)))


def _thumb_box(valleys: list, tip_x: float, hand: Box, wy: int, notes: list[str]) -> Box:
    """Canonical left hand: the thumb is on the image's right, below the thumb–index web."""
    x0, y0, bw, bh = hand
    thumb_v = [v for v in valleys if v[0] > tip_x and v[1] > y0 + 0.3 * bh]
    if thumb_v:
        tv = max(thumb_v, key=lambda v: v[1])
        tx0, ty0 = tv[0], int(tv[1] - 0.30 * bh)
    else:
        notes.append("thumb web not found; thumb ROI from proportions")
        tx0, ty0 = int(x0 + 0.62 * bw), y0 + int(0.32 * bh)
    tx1 = x0 + bw
    ty1 = min(wy, int(ty0 + 0.38 * bh))
    return (tx0, max(y0, ty0), max(8, tx1 - tx0), max(8, ty1 - max(y0, ty0)))


def _carpal_and_wrist_boxes(wx0: int, wy: int, ww: int, bh: int, y0: int) -> dict[str, Box]:
    """Carpals: the block just above the wrist line; the wrist joint (distal radius/ulna) around and below it."""
    ch = int(0.15 * bh)
    rh = int(0.11 * bh)
    return {"carpals": (wx0, max(y0, wy - ch), ww, ch), "wrist": (wx0, wy - rh // 5, ww, rh)}


def _clip_box(b: tuple[int, int, int, int], w: int, h: int) -> tuple[int, int, int, int]:
    x, y, bw, bh = (int(v) for v in b)
    x, y = min(max(0, x), w - 1), min(max(0, y), h - 1)
    return (x, y, max(1, min(bw, w - x)), max(1, min(bh, h - y)))


def draw_rois(image_u8: np.ndarray, rois: dict[str, tuple[int, int, int, int]]) -> np.ndarray:
    """The aligned image with the ROI boxes drawn, for people to check."""
    colours = {"middle_finger": (255, 180, 0), "thumb": (0, 200, 255), "carpals": (0, 255, 0), "wrist": (255, 0, 255)}
    rgb = cv2.cvtColor(image_u8, cv2.COLOR_GRAY2RGB)
    t = max(1, min(image_u8.shape) // 250)
    for name, (x, y, w, h) in rois.items():
        cv2.rectangle(rgb, (x, y), (x + w, y + h), colours.get(name, (255, 255, 255)), t)
        cv2.putText(rgb, name, (x + 3, y + 14 * t), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * t, colours.get(name, (255, 255, 255)), t)
    return rgb


def model_crop(image_u8: np.ndarray, mask: np.ndarray | None, params: PipelineParams) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """What the network sees: the hand on black, cropped to its box, padded to the model aspect.

    Masking makes raw thumbnails (markers, text, collimator edges) look like the segmented
    full-size radiographs, and the fixed aspect keeps geometry the same for every input size.
    Also returns the crop's box ``(x, y, w, h)`` in the canonical image (padding included, so it
    may reach past the edges): the model's grid maps back onto the image through it.
    """
    img = image_u8
    m = None
    if mask is not None and mask.any():
        k = max(3, int(round(min(mask.shape) / 100)) | 1)
        m = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        x, y, w, h = cv2.boundingRect(m)
    else:
        h, w = img.shape
        x = y = 0
    mx, my = int(params.model_margin * w), int(params.model_margin * h)
    x0, y0 = max(0, x - mx), max(0, y - my)
    x1, y1 = min(img.shape[1], x + w + mx), min(img.shape[0], y + h + my)
    crop = img[y0:y1, x0:x1]
    if m is not None:
        # Re-stretch inside the hand: under-exposed films reach the model as bright as the rest.
        # Only the crop is stretched (the rest is thrown away; the same pixels, ≈ 4 ms less on a
        # full-size radiograph); the percentiles still come from every pixel under the mask.
        mc = m[y0:y1, x0:x1] > 0
        inside = crop[mc]  # the crop holds the whole (dilated) mask's box
        lo, hi = np.percentile(inside, (1, 99)) if inside.size else (0, 255)
        stretched = np.clip((crop.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255)
        crop = np.where(mc, stretched, 0).astype(np.uint8)
    ch, cw = crop.shape
    target = params.model_height / params.model_width
    if ch / max(cw, 1) > target:  # too tall → pad width
        nw = int(round(ch / target))
        pad = nw - cw
        crop = cv2.copyMakeBorder(crop, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_CONSTANT, value=0)
        box = (x0 - pad // 2, y0, crop.shape[1], crop.shape[0])
    else:
        nh = int(round(cw * target))
        pad = nh - ch
        crop = cv2.copyMakeBorder(crop, pad // 2, pad - pad // 2, 0, 0, cv2.BORDER_CONSTANT, value=0)
        box = (x0, y0 - pad // 2, crop.shape[1], crop.shape[0])
    interp = cv2.INTER_AREA if crop.shape[1] > params.model_width else cv2.INTER_CUBIC
    return cv2.resize(crop, (params.model_width, params.model_height), interpolation=interp), box


# --------------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------------


def run_pipeline(image: "np.ndarray | LoadedImage", params: PipelineParams | dict | None = None) -> PipelineResult:
    """Run every stage, keeping each image; never raises on an odd image — it warns and falls back.

    ``image`` is an array, or a :class:`boneage.io.LoadedImage` from the loader, whose pixels are
    used as they are (checked there). Something that is not an image array (1-D, 1×1, object
    dtype, NaN …) is refused with :class:`boneage.io.ImageError` and bad parameters with
    :class:`boneage.checks.ParameterError`, one line each, instead of
    IndexError/ValueError/AttributeError from deep inside a stage.

    Read top-down: frame and polarity → enhance (8 bits: denoise, CLAHE) → hand mask → align →
    canonical left-hand view → ROIs → model input. Each step records its images in
    ``res.stages`` and its measurements and warnings on ``res``.
    """
    from .io import LoadedImage, check_array_shape

    p = PipelineParams.coerce(params)
    if isinstance(image, LoadedImage) and image.checked:
        img = image.pixels  # the loader's output, checked there (the one error boundary); read, never written
    else:
        img = to_float01(check_array_shape(getattr(image, "pixels", image), name="image", min_side=2))
    res = PipelineResult(stages={"input": img}, params=p)
    norm = _frame_and_polarity(img, p, res)
    enh = _enhance(norm, p, res)
    mask = _hand_mask(enh, res)
    aligned, amask = _align(enh, mask, p, res)
    canonical, cmask = _canonical_view(aligned, amask, p, res)
    _regions(canonical, cmask, res)
    res.stages["model_input"], res.model_box = model_crop(canonical, cmask if res.hand_found else None, p)
    return res


def _frame_and_polarity(img: np.ndarray, p: PipelineParams, res: PipelineResult) -> np.ndarray:
    """Into the study frame, min-max normalised, inverted films flipped back."""
    res.squashed_thumbnail = is_squashed_thumbnail(img, p)
    small = fit_to_frame(img, p.frame_width, p.frame_height, stretch=res.squashed_thumbnail)
    framed = letterbox(small, p.frame_width, p.frame_height)
    res.stages["resized"] = framed
    norm = minmax_normalise(framed)
    res.stages["normalised"] = norm
    # Polarity is judged on the image itself, before letterboxing adds black bars to its border,
    # at no more than the frame's resolution: a larger input is judged on its reduced copy. Its
    # medians and 98th percentile differ from the full-size ones by the noise the averaging
    # removes, and the full-size percentiles cost 25 ms of a 2000×2500 prediction (the same
    # verdict on the 40 full-size radiographs, the 10 raw films, the test fixtures and their
    # inverted copies). An inverted image is flipped and framed again, so its bars are black too.
    judged = small if small.size < img.size else img
    if p.fix_polarity and looks_inverted(minmax_normalise(judged)):
        norm = minmax_normalise(resize_to_frame(1.0 - minmax_normalise(img), p.frame_width, p.frame_height,
                                                stretch=res.squashed_thumbnail))
        res.inverted = True
        res.warnings.append("image looked inverted (bone dark on a bright background); polarity was flipped")
    res.stages["polarity"] = norm
    return norm


def _enhance(norm: np.ndarray, p: PipelineParams, res: PipelineResult) -> np.ndarray:
    """From here the pipeline works in 8 bits (the range has been stretched to the full scale)."""
    u8 = np.round(norm * 255).astype(np.uint8)
    den = denoise(u8, p.denoise, p.denoise_ksize)
    res.stages["denoised"] = den
    enh = clahe(den, p.clahe_clip, p.clahe_tiles)
    res.stages["clahe"] = enh
    return enh


def _hand_mask(enh: np.ndarray, res: PipelineResult) -> np.ndarray:
    """Threshold, largest contour; an implausible hand falls back to the whole image, with a warning."""
    p = res.params
    binary = threshold_mean(enh, method=p.threshold, ignore_bottom=p.ignore_bottom, ignore_right=p.ignore_right)
    res.stages["threshold"] = binary
    mask, contour = largest_contour_mask(binary)
    why = hand_plausibility(mask, contour, binary)
    if why or not hand_shape(mask).clearly_a_hand:
        mask, contour, why = _better_mask(enh, binary, (mask, contour), why, res)
    if not why:
        mask, contour = _without_thin_lines(mask, contour, res)
    if why:
        res.failed_stages["mask"] = why
        res.warnings.append(f"hand not found ({why}); using the whole image")
        mask = np.full_like(binary, 255)
    res.hand_found = why is None
    res.hand_area_fraction = float(np.count_nonzero(mask)) / mask.size
    res.stages["mask"] = mask
    return mask


def _better_mask(enh: np.ndarray, binary: np.ndarray, first: tuple, why: str | None, res: PipelineResult):
    """The study's mask is not clearly a hand: rank the candidates (boneage.localise)."""
    best, best_score = None, -np.inf
    for k, (name, m, c) in enumerate(mask_candidates(enh, binary, first)):
        w = why if k == 0 else hand_plausibility(m, c)
        # Another candidate must beat the study's mask by a whole point (the first keeps ties).
        if w is None and (score := hand_shape(m).score - (1.0 if k else 0.0)) > best_score - (1e-6 if k else 0.0):
            best, best_score = (name, m, c), score
    if best is None:
        return first[0], first[1], why
    res.mask_method = best[0]
    return best[1], best[2], None


def _without_thin_lines(mask: np.ndarray, contour, res: PipelineResult):
    """Drop a film edge or frame line joined to the hand when it stretches the hand's box.

    The model crop is the mask's bounding box: a line along the image border made it the whole
    picture, with a small hand inside. Applied only when cutting thin lines keeps ≥ 80 % of the
    mask and shrinks its box below 90 %, so a clean hand keeps exactly the study's mask.
    """
    core, c = detach_thin(mask)
    if c is None:
        return mask, contour
    _, _, bw, bh = cv2.boundingRect(contour)
    _, _, cw, ch = cv2.boundingRect(c)
    if np.count_nonzero(core) >= 0.8 * np.count_nonzero(mask) and cw * ch < 0.9 * bw * bh:
        res.mask_method += ", thin lines cut"
        return core, c
    return mask, contour


def _align(enh: np.ndarray, mask: np.ndarray, p: PipelineParams, res: PipelineResult) -> tuple[np.ndarray, np.ndarray]:
    """Rotate so the middle finger points straight up (image and mask)."""
    c0 = centroid(mask)
    angle = 0.0
    if p.align and res.hand_found:
        angle, tip, c = align_angle(mask, c0=c0)
        res.fingertip_xy, res.centroid_xy = tip, c
        aligned = rotate(enh, angle, c0)
        amask = rotate(mask, angle, c0, nearest=True)
    else:
        if p.align:
            res.failed_stages["aligned"] = "no hand mask to align"
            res.warnings.append("rotation not corrected (no hand found)")
        aligned, amask = enh, mask
    res.rotation_deg = float(angle)
    res.stages["aligned"] = aligned
    return aligned, amask


def _canonical_view(aligned: np.ndarray, amask: np.ndarray, p: PipelineParams,
                    res: PipelineResult) -> tuple[np.ndarray, np.ndarray]:
    """Laterality: canonical is the left hand (thumb on the image's right); a right hand is mirrored."""
    if res.hand_found:
        res.laterality = detect_laterality(amask)
        if res.laterality == "unknown":
            res.warnings.append("could not tell left from right hand; assumed left")
    else:
        res.laterality = "unknown"
    canonical, cmask = aligned, amask
    if p.fix_laterality and res.laterality == "right":
        canonical, cmask = np.ascontiguousarray(aligned[:, ::-1]), np.ascontiguousarray(amask[:, ::-1])
        res.mirrored = True
        res.warnings.append("right hand detected; mirrored to the standard left-hand view")
    res.stages["aligned_mask"] = cmask  # the mask in the canonical (possibly mirrored) frame
    res.stages["canonical"] = canonical
    return canonical, cmask


def _regions(canonical: np.ndarray, cmask: np.ndarray, res: PipelineResult) -> None:
    """ROI boxes on the canonical view (none without a hand), drawn for the ``rois`` stage."""
    if res.hand_found:
        rois, notes = extract_rois(cmask)
        if not rois:
            res.failed_stages["rois"] = "; ".join(notes) or "no ROIs"
        res.rois = rois
        res.warnings.extend(f"ROI: {n}" for n in notes)
    else:
        res.failed_stages["rois"] = "no hand mask"
    res.stages["rois"] = draw_rois(canonical, res.rois)
