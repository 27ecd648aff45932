"""boneage.pipeline: every stage on its own, the whole pipeline on synthetic images and on the
committed fixtures (tests/fixtures/hires: 8 segmented left hands; tests/fixtures/thumbs: 64 raw
100×100 thumbnails), and the property tests of foundation issue #2 (rotation, mirroring,
inversion, ROI order).

Full-size runs cost ~0.1 s each on this CPU, so results are cached per module.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache

import cv2
import numpy as np
import pytest

from boneage import pipeline as P
from boneage.io import load_image
from boneage.paths import FIXTURES_DIR
from boneage.pipeline import PipelineParams, run_pipeline

HIRES_PATHS = sorted((FIXTURES_DIR / "hires").glob("*.png"))


def wrap180(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def residual_tilt(mask: np.ndarray) -> float:
    """Angle (deg) between 'straight up' and centroid → middle-finger tip (the study's rule)."""
    tip, c = P.fingertip(mask), P.centroid(mask)
    return math.degrees(math.atan2(tip[0] - c[0], c[1] - tip[1]))


def synthetic_hand(h: int = 1000, w: int = 800, *, marker: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A left hand, PA view, fingers up, abducted thumb on the image's right; float32 in [0, 1].

    Returns (image, hand mask uint8). ``marker`` adds a bright "L" blob in the top-left corner,
    brighter than the hand and well apart from it (as laterality markers are).
    """
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 0.08, np.float32)
    sx, sy = w / 800, h / 1000

    def pt(x, y):
        return int(round(x * sx)), int(round(y * sy))

    m = np.zeros((h, w), np.uint8)
    cv2.rectangle(m, pt(310, 760), pt(490, 1000), 255, -1)  # forearm
    cv2.ellipse(m, pt(400, 590), (int(150 * sx), int(190 * sy)), 0, 0, 360, 255, -1)  # palm
    t = max(3, int(44 * sx))
    for x0, ytop in ((290, 300), (350, 200), (410, 150), (470, 210)):  # little, ring, middle, index
        cv2.line(m, pt(x0 + (400 - x0) * 0.15, 480), pt(x0, ytop), 255, t)
    cv2.line(m, pt(520, 640), pt(650, 440), 255, t)  # thumb
    img[m > 0] = 0.55
    if marker:
        cv2.rectangle(img, pt(60, 60), pt(80, 160), 1.0, -1)
        cv2.rectangle(img, pt(60, 140), pt(130, 160), 1.0, -1)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1), m


# The default frame (H, W): the study's 800×1000 at half scale since pipeline version 5.
FRAME_HW = (PipelineParams().frame_height, PipelineParams().frame_width)


def marker_box(h: int = 1000, w: int = 800) -> tuple[slice, slice]:
    """Rows, cols of synthetic_hand's "L" marker in an h×w image (60..160 × 60..130 at 1000×800)."""
    sx, sy = w / 800, h / 1000
    return slice(int(round(60 * sy)), int(round(160 * sy)) + 1), slice(int(round(60 * sx)), int(round(130 * sx)) + 1)


@lru_cache(maxsize=None)
def load(path) -> np.ndarray:
    return load_image(path).pixels


@lru_cache(maxsize=None)
def result(path) -> P.PipelineResult:
    """Cached, slimmed to the stages the later checks read (a full result holds ~20 MB of images)."""
    res = run_pipeline(load(path))
    res.stage_shapes = {k: v.shape for k, v in res.stages.items()}
    res.stages = {k: res.stages[k] for k in ("canonical", "aligned_mask", "model_input")}
    return res


def rotate_same_canvas(img: np.ndarray, angle: float) -> np.ndarray:
    h, w = img.shape
    M = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def check_rois(res: P.PipelineResult) -> list[str]:
    """What is wrong with the ROI boxes (empty when they are inside the image and in anatomical order)."""
    problems = []
    h, w = res.stages["canonical"].shape[:2]
    if set(res.rois) != set(P.ROI_NAMES):
        return [f"ROIs {sorted(res.rois)}"]
    for name, (x, y, bw, bh) in res.rois.items():
        if not (0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h):
            problems.append(f"{name} {(x, y, bw, bh)} outside {w}×{h}")
    mf, th, ca, wr = (res.rois[k] for k in ("middle_finger", "thumb", "carpals", "wrist"))
    if not mf[1] < ca[1]:
        problems.append(f"middle finger (y={mf[1]}) not above carpals (y={ca[1]})")
    if not ca[1] <= wr[1]:
        problems.append(f"carpals (y={ca[1]}) not above/at wrist (y={wr[1]})")
    if not th[0] + th[2] / 2 > mf[0] + mf[2] / 2:
        problems.append("thumb not on the right of the middle finger (canonical left hand)")
    return problems


# ============================================================================================
# Stage functions on their own
# ============================================================================================


def test_to_float01_dtypes():
    u8 = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_allclose(P.to_float01(u8), [[0, 128 / 255, 1]], atol=1e-6)
    u16 = np.array([[0, 65535]], np.uint16)
    np.testing.assert_allclose(P.to_float01(u16), [[0, 1]])
    f = np.array([[-5.0, 0.0, 15.0]])
    np.testing.assert_allclose(P.to_float01(f), [[0, 0.25, 1]])
    rgb = np.repeat(np.linspace(0, 255, 20).astype(np.uint8).reshape(4, 5, 1), 3, axis=2)
    out = P.to_float01(rgb)
    assert out.shape == (4, 5) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1 and np.all(np.diff(out.ravel()) >= 0)


def test_loader_output_is_read_as_is_and_anything_else_is_checked():
    """A LoadedImage from the loader is not checked and copied again (≈ 7 ms of a 2000×2500
    prediction) and gives the same result as its pixels; a hand-made one is checked."""
    from boneage.io import ImageError, ImageMeta, LoadedImage

    loaded = load_image(FIXTURES_DIR / "hires" / "1437.png")
    assert loaded.checked
    a, b = run_pipeline(loaded), run_pipeline(loaded.pixels)
    assert a.stages["input"] is loaded.pixels and b.stages["input"] is not loaded.pixels
    assert np.array_equal(a.model_input, b.model_input) and a.rotation_deg == b.rotation_deg
    bad = loaded.pixels.copy()
    bad[5, 5] = np.nan
    forged = LoadedImage(bad, ImageMeta("x", "array", 1, 1, 32, None))
    assert not forged.checked
    with pytest.raises(ImageError, match="NaN"):
        run_pipeline(forged)


def test_is_squashed_thumbnail():
    p = PipelineParams()
    assert P.is_squashed_thumbnail(np.zeros((100, 100)), p)
    assert not P.is_squashed_thumbnail(np.zeros((100, 120)), p)
    assert not P.is_squashed_thumbnail(np.zeros((1000, 1000)), p)


def test_resize_to_frame_letterbox_keeps_aspect():
    wide = np.ones((200, 400), np.float32)  # 2:1, frame 800×1000 → 800×400 content, bands above/below
    out = P.resize_to_frame(wide, 800, 1000)
    assert out.shape == (1000, 800) and out.dtype == np.float32
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    cols = np.flatnonzero(out.max(axis=0) > 0.5)
    assert len(cols) == 800
    assert abs(len(rows) - 400) <= 2
    assert abs(rows[0] - (1000 - 1 - rows[-1])) <= 1  # centred
    assert out[:250].max() == 0 and out[-250:].max() == 0  # black letterbox


def test_resize_to_frame_stretch_fills_frame():
    sq = np.ones((100, 100), np.float32)
    out = P.resize_to_frame(sq, 800, 1000, stretch=True)
    assert out.shape == (1000, 800)
    assert out.min() > 0.99  # no letterbox
    g = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (100, 1))
    out = P.resize_to_frame(g, 800, 1000, stretch=True)
    assert 0 <= out.min() and out.max() <= 1  # cubic overshoot clipped


def test_minmax_normalise_range():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.3, 0.6, (50, 40)).astype(np.float32)
    y = P.minmax_normalise(x)
    assert y.min() == pytest.approx(0.0, abs=1e-7) and y.max() == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.argsort(x.ravel(), kind="stable") == np.argsort(y.ravel(), kind="stable"))  # monotone
    np.testing.assert_array_equal(P.minmax_normalise(np.full((5, 5), 0.7)), 0)  # constant: no NaN
    assert P.minmax_normalise(np.array([[-3.0, 1.0]])).tolist() == [[0.0, 1.0]]


def test_looks_inverted():
    img, _ = synthetic_hand()
    assert not P.looks_inverted(img)
    assert P.looks_inverted(1.0 - img)


@pytest.mark.parametrize("path", HIRES_PATHS[:4], ids=lambda p: p.stem)
def test_large_input_polarity_judged_on_its_reduced_copy_gives_the_full_size_verdict(path):
    """A 2000×2500 input is judged on its frame-sized copy (25 ms less): the same verdict as the
    full-size judgement, for the radiograph and its inverted copy, and a normal image's model
    input is unchanged by the flip logic (the inverted copy keeps the full-size re-framing)."""
    img = cv2.resize(load_image(path).pixels, (2000, 2500), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    for x in (img, 1.0 - img):
        full_verdict = P.looks_inverted(P.minmax_normalise(x))
        assert run_pipeline(x).inverted == full_verdict
    assert not run_pipeline(img).inverted and run_pipeline(1.0 - img).inverted
    small = P.fit_to_frame(img, 800, 1000)
    assert small.shape == (1000, 800)  # 2000×2500 has the frame's aspect: no bars
    np.testing.assert_array_equal(P.resize_to_frame(img, 800, 1000), P.letterbox(small, 800, 1000))


def test_film_on_grey_surround_is_not_inverted():
    """A scanned film on a grey light-box surround: the ring is brighter than the centre, but bone
    is brighter still, so the image must not be flipped (the old test flipped such films)."""
    from boneage.io import load_image

    hand = P.minmax_normalise(load_image(HIRES_PATHS[0]).pixels.astype(np.float32))
    small = cv2.resize(hand, (hand.shape[1] // 2, hand.shape[0] // 2), interpolation=cv2.INTER_AREA)
    film = np.full_like(hand, 0.05)  # the film's own dark background around a smaller hand
    y0, x0 = hand.shape[0] // 4, hand.shape[1] // 4
    film[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = np.maximum(small, 0.05)
    pad = hand.shape[0] // 6
    film = cv2.copyMakeBorder(film, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.45)
    h, w = film.shape
    ring_only = np.median(np.concatenate([film[: h // 16].ravel(), film[:, : w // 16].ravel()]))
    centre = np.median(film[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4])
    assert ring_only > centre + 0.05  # what fooled the ring-vs-centre test alone
    assert not P.looks_inverted(film)
    assert not run_pipeline(film).inverted
    assert P.looks_inverted(1.0 - hand)  # a plain inverted radiograph is still caught


def test_denoise_methods():
    rng = np.random.default_rng(2)
    clean = np.full((64, 64), 100, np.uint8)
    noisy = clean.copy()
    idx = rng.integers(0, 64, (2, 200))
    noisy[idx[0], idx[1]] = 255  # salt
    med = P.denoise(noisy, "median", 5)
    assert mad(med, clean) < 0.2 * mad(noisy, clean)
    grainy = np.clip(100 + rng.normal(0, 10, (64, 64)), 0, 255).astype(np.uint8)
    gau = P.denoise(grainy, "gaussian", 5)
    assert gau.shape == grainy.shape and gau.dtype == np.uint8 and gau.std() < 0.5 * grainy.std()
    none = P.denoise(noisy, "none")
    np.testing.assert_array_equal(none, noisy)
    assert none is not noisy
    np.testing.assert_array_equal(P.denoise(noisy, "median", 1), noisy)
    with pytest.raises(ValueError):
        P.denoise(noisy, "bilateral")


def test_clahe_parameters_change_output():
    img, _ = synthetic_hand(400, 320)
    u8 = np.round(img * 0.3 * 255 + 60).astype(np.uint8)  # low contrast
    base = P.clahe(u8, 1.0, 3)
    assert base.shape == u8.shape and base.dtype == np.uint8
    stronger = P.clahe(u8, 4.0, 3)
    assert not np.array_equal(base, stronger)
    assert stronger.std() > base.std()  # a higher clip limit allows more contrast
    assert not np.array_equal(base, P.clahe(u8, 1.0, 8))  # tile grid matters
    # the pipeline passes its params through
    a = run_pipeline(img, PipelineParams(clahe_clip=1.0))
    b = run_pipeline(img, PipelineParams(clahe_clip=3.0, clahe_tiles=6))
    assert not np.array_equal(a.stages["clahe"], b.stages["clahe"])


def test_threshold_mean_ignores_bottom_and_right():
    img = np.zeros((100, 100), np.uint8)
    img[:, 50:] = 100  # region mean 50 over rows 0..89, cols 0..94 (≈47)
    img[:90, 40:50] = 60  # above the study's threshold, below one that counts a bright band
    banded = img.copy()
    banded[90:, :] = 255  # bottom 10 %: a label
    banded[:, 95:] = 255  # right 5 %: a marker
    t_region = banded[:90, :95].mean()
    assert 60 > t_region  # sanity: the 60s are foreground for the study's threshold
    assert np.r_[banded.ravel()].mean() > 60  # … and background if the bands were counted
    out = P.threshold_mean(banded)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    np.testing.assert_array_equal(out, np.where(banded > t_region, 255, 0))
    assert out[:90, 40:50].min() == 255
    everything = P.threshold_mean(banded, ignore_bottom=0.0, ignore_right=0.0)
    assert everything[:90, 40:50].max() == 0  # the test can tell the difference


def test_threshold_otsu_and_unknown():
    img = np.zeros((50, 50), np.uint8)
    img[10:40, 10:40] = 200
    out = P.threshold_mean(img, method="otsu")
    assert out[25, 25] == 255 and out[0, 0] == 0
    with pytest.raises(ValueError):
        P.threshold_mean(img, method="median")


def test_largest_contour_mask_keeps_biggest_blob():
    b = np.zeros((200, 200), np.uint8)
    cv2.rectangle(b, (20, 20), (120, 150), 255, -1)  # big
    cv2.rectangle(b, (150, 20), (180, 60), 255, -1)  # small
    cv2.rectangle(b, (60, 60), (80, 80), 0, -1)  # a hole in the big one: filled in the mask
    mask, c = P.largest_contour_mask(b)
    assert c is not None and mask.dtype == np.uint8
    assert mask[100, 50] == 255 and mask[70, 70] == 255
    assert mask[40, 165] == 0
    assert abs(np.count_nonzero(mask) - 101 * 131) < 0.03 * 101 * 131
    empty, none = P.largest_contour_mask(np.zeros((50, 50), np.uint8))
    assert none is None and not empty.any()


def test_hand_plausibility():
    _, m = synthetic_hand()
    mask, c = P.largest_contour_mask(m)
    assert P.hand_plausibility(mask, c) is None
    assert P.hand_plausibility(np.zeros_like(m), None)
    tiny = np.zeros_like(m)
    cv2.circle(tiny, (400, 500), 40, 255, -1)
    mask, c = P.largest_contour_mask(tiny)
    assert "only" in P.hand_plausibility(mask, c)
    full = np.full_like(m, 255)
    mask, c = P.largest_contour_mask(full)
    assert P.hand_plausibility(mask, c)


def test_centroid_simple_shapes():
    m = np.zeros((100, 200), np.uint8)
    m[20:41, 50:151] = 255
    assert P.centroid(m) == pytest.approx((100.0, 30.0))
    assert P.centroid(np.zeros((100, 200), np.uint8)) == (100.0, 50.0)  # empty: image centre


def test_fingertip_simple_shapes():
    m = np.zeros((300, 200), np.uint8)
    m[120:280, 40:160] = 255  # palm
    m[30:120, 90:111] = 255  # one upright finger, x 90..110
    x, y = P.fingertip(m)
    assert y == 30 and x == pytest.approx(100.0)
    tri = np.zeros((200, 200), np.uint8)
    cv2.fillPoly(tri, [np.array([[60, 190], [140, 190], [100, 10]])], 255)
    x, y = P.fingertip(tri)
    assert abs(x - 100) <= 1 and 9 <= y <= 12
    assert P.fingertip(np.zeros((10, 20), np.uint8)) == (10.0, 0.0)


def test_tilt_deg_known_angles():
    c = (100.0, 100.0)
    assert P.tilt_deg((100.0, 50.0), c) == pytest.approx(0.0)
    assert abs(P.tilt_deg((100.0, 150.0), c)) == pytest.approx(180.0)
    # Tip up and to the right at 45°: cv2's positive (counter-clockwise) rotation by 45° brings
    # it straight up (check: getRotationMatrix2D(…, 45, 1) maps (+1, −1) onto (0, −√2)).
    M = cv2.getRotationMatrix2D(c, 45.0, 1.0)
    assert M[:, :2] @ np.array([1.0, -1.0]) == pytest.approx([0.0, -math.sqrt(2)])
    assert P.tilt_deg((150.0, 50.0), c) == pytest.approx(45.0)
    assert P.tilt_deg((50.0, 50.0), c) == pytest.approx(-45.0)


def test_tilt_deg_rotation_puts_tip_above_centroid():
    """The docstring's contract: rotating by tilt_deg (CCW, as cv2) stands the tip above the centroid."""
    m = np.zeros((400, 400), np.uint8)
    cv2.line(m, (200, 260), (300, 100), 255, 20)  # a finger leaning right
    tip, c = P.fingertip(m), P.centroid(m)
    r = P.rotate(m, P.tilt_deg(tip, c), c, nearest=True)
    assert abs(residual_tilt(r)) < 3.0, f"still {residual_tilt(r):.1f}° off vertical (was {residual_tilt(m):.1f}°)"


def test_rotate_expands_canvas():
    img = np.zeros((100, 60), np.float32)
    img[10:20, 10:50] = 1.0
    r = P.rotate(img, 90.0, (30.0, 50.0))
    assert abs(r.shape[0] - 60) <= 1 and abs(r.shape[1] - 100) <= 1
    assert r.sum() == pytest.approx(img.sum(), rel=0.02)  # nothing cut off
    r30 = P.rotate(img, 30.0, (30.0, 50.0))
    assert r30.shape[0] > 100 and r30.shape[1] > 60
    assert r30.sum() == pytest.approx(img.sum(), rel=0.03)


@pytest.mark.parametrize("angle", [30.0, 90.0, 150.0, -120.0, 180.0])
def test_principal_axis_undoes_any_rotation(angle):
    _, m = synthetic_hand()
    base = P.principal_axis_deg(m)
    assert abs(base) < 5  # upright already
    r = P.rotate(m, angle, P.centroid(m), nearest=True)
    assert abs(wrap180(P.principal_axis_deg(r) + angle - base)) < 5


def test_finger_valleys_on_synthetic_hand():
    _, m = synthetic_hand()
    v = P.finger_valleys(m)
    assert len(v) >= 4  # 3 between the fingers + the thumb web
    for x, y, depth, start, end in v:
        assert m[y, x] == 255 and depth > 0


def test_detect_laterality_synthetic():
    _, m = synthetic_hand()
    assert P.detect_laterality(m) == "left"
    assert P.detect_laterality(np.ascontiguousarray(m[:, ::-1])) == "right"
    assert P.detect_laterality(np.zeros_like(m)) == "unknown"


def test_extract_rois_synthetic_hand():
    _, m = synthetic_hand()
    rois, notes = P.extract_rois(m)
    assert set(rois) == set(P.ROI_NAMES)
    res = P.PipelineResult(stages={"canonical": m}, params=PipelineParams(), rois=rois)
    assert check_rois(res) == []
    x, y, w, h = rois["middle_finger"]
    assert x <= 410 <= x + w and y <= 160  # the middle finger is the one at x≈410 reaching y=150
    crops = res.roi_crops()
    assert all(c.size > 0 for c in crops.values())
    assert P.extract_rois(np.zeros_like(m)) == ({}, ["no hand contour for ROI extraction"])


def test_draw_rois_and_model_crop():
    img, m = synthetic_hand()
    u8 = np.round(img * 255).astype(np.uint8)
    rois, _ = P.extract_rois(m)
    drawn = P.draw_rois(u8, rois)
    assert drawn.shape == (*u8.shape, 3) and drawn.dtype == np.uint8
    assert not np.array_equal(drawn[..., 0], u8)
    p = PipelineParams()
    crop, box = P.model_crop(u8, m, p)
    assert crop.shape == (p.model_height, p.model_width) and crop.dtype == np.uint8
    bx, by, bw, bh = box
    x, y, w, h = cv2.boundingRect(m)
    assert bx <= x and by <= y and bx + bw >= x + w and by + bh >= y + h  # the hand is inside
    assert bh / bw == pytest.approx(p.model_height / p.model_width, rel=0.02)
    whole, wbox = P.model_crop(u8, None, p)
    assert whole.shape == crop.shape and wbox[2] >= 800 and wbox[3] >= 1000


def test_params_roundtrip():
    p = PipelineParams(clahe_clip=2.0, threshold="otsu")
    d = p.to_dict()
    assert PipelineParams.from_dict({**d, "unknown_key": 1}) == p
    assert PipelineParams.from_dict(None) == PipelineParams()
    # The study's settings, its 800×1000 frame at half scale (pipeline version 5).
    assert (p.frame_width, p.frame_height, PipelineParams().clahe_clip, PipelineParams().clahe_tiles) == (400, 500, 1.0, 3)


# ============================================================================================
# Whole pipeline on synthetic images
# ============================================================================================


def test_synthetic_hand_with_marker():
    img, hand = synthetic_hand(*FRAME_HW, marker=True)  # at the frame's size: stages align with it pixel for pixel
    box = marker_box(*FRAME_HW)
    assert img[box].max() > img[hand > 0].max()  # the marker is the brightest thing
    res = run_pipeline(img)
    assert list(res.stages) == list(P.STAGES)
    assert res.hand_found and not res.failed_stages
    assert res.laterality == "left" and not res.mirrored and not res.inverted
    assert res.stages["threshold"][box].max() == 255  # the marker passes the threshold…
    assert res.stages["mask"][box].max() == 0  # …but is not part of the hand mask
    overlap = np.count_nonzero((res.stages["mask"] > 0) & (hand > 0)) / np.count_nonzero(hand)
    assert overlap > 0.95
    assert abs(res.rotation_deg) < 5
    assert check_rois(res) == []
    assert res.model_input.shape == (160, 128)
    json.dumps(res.summary())  # JSON-friendly


def test_stage_images_have_the_documented_shapes():
    img, _ = synthetic_hand(700, 560)
    res = run_pipeline(img)
    s = res.stages
    assert s["input"].shape == (700, 560)
    for k in ("resized", "normalised", "polarity"):
        assert s[k].shape == FRAME_HW and s[k].dtype == np.float32
    assert s["normalised"].min() == 0.0 and s["normalised"].max() == pytest.approx(1.0)
    for k in ("denoised", "clahe", "threshold", "mask"):
        assert s[k].shape == FRAME_HW and s[k].dtype == np.uint8
    for k in ("threshold", "mask", "aligned_mask"):
        assert set(np.unique(s[k])) <= {0, 255}
    assert s["rois"].ndim == 3 and s["rois"].shape[:2] == s["canonical"].shape
    assert s["model_input"].shape == (160, 128) and s["model_input"].dtype == np.uint8
    assert 0.0 <= res.model_input.min() and res.model_input.max() <= 1.0
    assert res.to_canonical(np.ones((5, 4))).shape == s["canonical"].shape


@pytest.mark.parametrize(
    "name, image",
    [
        ("blank", np.zeros((1000, 800), np.float32)),
        ("white", np.ones((1000, 800), np.float32)),
        ("noise", np.random.default_rng(3).random((1000, 800)).astype(np.float32)),
        ("noise-u8", np.random.default_rng(4).integers(0, 256, (1200, 900), dtype=np.uint8)),
    ],
)
def test_no_hand_fails_mask_stage_and_falls_back(name, image):
    res = run_pipeline(image)
    assert not res.hand_found
    assert "mask" in res.failed_stages and res.failed_stages["mask"]
    assert any("hand not found" in w for w in res.warnings)
    assert res.laterality == "unknown" and res.rois == {}
    assert res.model_input.shape == (160, 128) and res.model_input.dtype == np.float32
    assert list(res.stages) == list(P.STAGES)
    json.dumps(res.summary())


def test_noise_thumbnail_is_not_a_hand():
    """A 100×100 noise image (thumbnail-sized, so stretched) is still noise, not a plausible hand."""
    found = [run_pipeline(np.random.default_rng(s).random((100, 100)).astype(np.float32)).hand_found for s in range(3)]
    assert not any(found), f"hand_found on noise thumbnails: {found}"


@pytest.mark.parametrize("angle", [10.0, -10.0, 25.0, -25.0])
def test_synthetic_rotation_is_undone(angle):
    img, _ = synthetic_hand()
    up = run_pipeline(img)
    res = run_pipeline(rotate_same_canvas(img, angle))
    assert abs(wrap180(res.rotation_deg + angle - up.rotation_deg)) < 5
    assert abs(residual_tilt(res.stages["aligned_mask"])) < 5


def test_synthetic_right_hand_is_mirrored():
    img, _ = synthetic_hand()
    left = run_pipeline(img)
    right = run_pipeline(np.ascontiguousarray(img[:, ::-1]))
    assert right.laterality == "right" and right.mirrored
    assert any("mirrored" in w for w in right.warnings)
    assert check_rois(right) == []  # ROIs in canonical (left-hand) orientation
    assert mad(right.model_input, left.model_input) < 0.02


def test_synthetic_inverted_is_recognised():
    img, _ = synthetic_hand()
    normal = run_pipeline(img)
    inv = run_pipeline(1.0 - img)
    assert inv.inverted and not normal.inverted
    assert any("inverted" in w for w in inv.warnings)
    assert mad(inv.model_input, normal.model_input) < 0.02
    off = run_pipeline(1.0 - img, PipelineParams(fix_polarity=False))
    assert not off.inverted


def test_switches_turn_stages_off():
    img, _ = synthetic_hand()
    r = run_pipeline(rotate_same_canvas(img[:, ::-1].copy(), 20.0), PipelineParams(align=False, fix_laterality=False))
    assert r.rotation_deg == 0.0 and not r.mirrored
    assert r.laterality == "right"  # still measured, just not corrected


def test_16bit_input_matches_8bit():
    img, _ = synthetic_hand()
    a = run_pipeline(np.round(img * 255).astype(np.uint8))
    b = run_pipeline(np.round(img * 65535).astype(np.uint16))
    assert mad(a.model_input, b.model_input) < 0.01


@pytest.mark.parametrize(
    "image",
    [np.random.default_rng(5).random((8, 8)), np.random.default_rng(6).random((100, 1000)),
     np.tile(np.linspace(0, 1, 800), (1000, 1)), np.zeros((100, 100), np.uint8)],
    ids=["tiny", "wide", "gradient", "blank-thumb"],
)
def test_odd_images_never_raise(image):
    res = run_pipeline(image)
    assert res.model_input.shape == (160, 128)
    if not res.hand_found:
        assert "mask" in res.failed_stages and res.warnings


# ============================================================================================
# Committed fixtures: hires (segmented left hands) and thumbs (raw thumbnails)
# ============================================================================================


@pytest.mark.parametrize("path", HIRES_PATHS, ids=lambda p: p.stem)
def test_hires_fixture_stages(path):
    res = result(path)
    assert list(res.stage_shapes) == list(P.STAGES)
    assert res.stage_shapes["resized"] == FRAME_HW
    assert res.hand_found and not res.failed_stages, res.failed_stages
    assert not res.squashed_thumbnail and not res.inverted
    assert 0.2 < res.hand_area_fraction < 0.6
    assert check_rois(res) == []
    assert all(c.size > 0 for c in res.roi_crops().values())
    assert res.stages["model_input"].shape == (160, 128)


@pytest.mark.parametrize("path", HIRES_PATHS, ids=lambda p: p.stem)
@pytest.mark.parametrize("angle", [10.0, -10.0, 25.0, -25.0, 90.0])
def test_hires_rotation_property(path, angle):
    """Rotated by ±10/±25 (same canvas) or 90° (expanded canvas): re-aligned within 5° of the original."""
    img, base = load(path), result(path)
    if angle == 90.0:
        h, w = img.shape
        rotated = P.rotate(img, angle, (w / 2.0, h / 2.0))
    else:
        rotated = rotate_same_canvas(img, angle)
    res = run_pipeline(rotated)
    assert res.hand_found
    err = wrap180(res.rotation_deg + angle - base.rotation_deg)
    assert abs(err) <= 5.0, f"re-aligned {err:+.1f}° away (rotation {res.rotation_deg:+.1f}, original {base.rotation_deg:+.1f})"


@pytest.mark.parametrize("path", HIRES_PATHS, ids=lambda p: p.stem)
def test_hires_aligned_finger_points_straight_up(path):
    """After alignment the study's middle-finger tip (first mask row) stands above the centroid."""
    tilt = residual_tilt(result(path).stages["aligned_mask"])
    assert abs(tilt) < 3.0, f"aligned image's fingertip is {tilt:+.1f}° off vertical"


def test_hires_laterality_and_mirroring(hires_paths):
    """Fixtures are left hands; the detector is heuristic (38/40 on the full set)."""
    lefts = [p for p in hires_paths if result(p).laterality == "left"]
    assert len(lefts) >= 6, f"only {len(lefts)} of {len(hires_paths)} detected left"
    assert not any(result(p).mirrored for p in lefts)
    bad = []
    for p in lefts:
        flipped = run_pipeline(np.ascontiguousarray(load(p)[:, ::-1]))
        if not (flipped.laterality == "right" and flipped.mirrored):
            bad.append(f"{p.stem}: flipped → {flipped.laterality}, mirrored={flipped.mirrored}")
        elif mad(flipped.model_input, result(p).model_input) > 0.02:
            bad.append(f"{p.stem}: mirrored model input differs by {mad(flipped.model_input, result(p).model_input):.3f}")
        elif check_rois(flipped):
            bad.append(f"{p.stem}: {check_rois(flipped)}")
    assert not bad, bad


@pytest.mark.parametrize("path", HIRES_PATHS, ids=lambda p: p.stem)
def test_hires_inverted_is_recognised(path):
    """1 − image → inverted, and the model sees (nearly) the same input as for the original."""
    base = result(path)
    inv = run_pipeline(1.0 - load(path))
    assert inv.inverted
    assert inv.laterality == base.laterality
    d = mad(inv.model_input, base.model_input)
    assert d < 0.02, f"model input differs by {d:.3f} (rotation {inv.rotation_deg:+.1f} vs {base.rotation_deg:+.1f})"


def test_thumbs_fixture_stages(thumb_paths):
    results = {p.stem: result(p) for p in thumb_paths}
    found = [k for k, r in results.items() if r.hand_found]
    assert len(found) >= 56, f"hand found in {len(found)}/{len(results)} thumbnails (measured 59/64)"
    assert all(r.squashed_thumbnail and r.stage_shapes["resized"] == FRAME_HW for r in results.values())
    assert not [k for k, r in results.items() if r.inverted], "raw thumbnails flagged inverted"
    for k, r in results.items():
        assert r.model_input.shape == (160, 128)
        if not r.hand_found:
            assert "mask" in r.failed_stages and r.warnings
    bad = {k: check_rois(results[k]) for k in found if check_rois(results[k])}
    assert not bad, bad


def test_thumbs_mirroring_and_inversion(thumb_paths):
    """Thumbnails too: flipped ones swap laterality; 1 − image is mostly recognised as inverted."""
    flips, inverted, inv_bad = [], 0, []
    for p in thumb_paths[::2]:  # 32 of 64, to keep the run short
        base, img = result(p), load(p)
        if base.laterality in ("left", "right"):
            f = run_pipeline(np.ascontiguousarray(img[:, ::-1]))
            want = "right" if base.laterality == "left" else "left"
            if f.laterality != want or f.mirrored != (want == "right"):
                flips.append(f"{p.stem}: {base.laterality} → flipped {f.laterality}")
        inv = run_pipeline(1.0 - img)
        if inv.inverted:
            inverted += 1
            if mad(inv.model_input, base.model_input) > 0.02:
                inv_bad.append(p.stem)
    assert not flips, flips
    n = len(thumb_paths[::2])
    assert inverted >= 0.85 * n, f"only {inverted}/{n} inverted thumbnails recognised"
    assert not inv_bad, f"inverted thumbnails whose model input differs: {inv_bad}"
