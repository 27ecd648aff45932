"""Acceptance check: is this a radiograph of a child's hand that the model can read?

Before this check, 78 of 80 images that were not hand radiographs (knee and chest films, colour
photos, blobs, gradients) got a bone age with the same ±15 months as a real hand. A bone age is
only given when every piece of evidence looks like the hand radiographs the model was trained on:

* **image**: colour (radiographs are grey), contrast (blank images), pixel noise, fine edges
  (text, textures) — measured on the loaded picture at a fixed 128×128 size, so thumbnails and
  full-size films are judged alike;
* **pipeline**: the hand mask's shape — found at all, area, solidity (fingers make the outline
  concave), valleys between digits (convexity defects), elongation — from
  :func:`boneage.pipeline.run_pipeline`; shape scores exist only when an outline was found;
* **model**: how far the model's own attention-pooled features lie from those of the training
  radiographs (Mahalanobis distance in the top principal components, plus the part of the
  feature vector outside them), and how much the test-time-augmented copies disagree.

Each score has a one-sided threshold set on real hand radiographs only (a high quantile of the
RSNA thumbnails; see ``scripts/calibrate_acceptance.py``), so the rules are not tuned to the
negatives. Single scores overlap: real thumbnails are heterogeneous (a failed mask, a film edge),
and a skull or spine rendering is unremarkable on any one of them. So a last rule combines them:
each score's tail probability under the real radiographs' distribution as surprise (−log p),
the four largest summed, with its own threshold from the real radiographs. The first rule an image fails gives
the reason, in the order above (the cheapest and plainest reason first). Thresholds, feature statistics and measured rates live in the model
bundle folder (``acceptance.json`` + ``acceptance_features.npz``); measured rates are in
README.md and the model card.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .io import ImageError

ACCEPTANCE_FILE = "acceptance.json"
FEATURES_FILE = "acceptance_features.npz"
IMAGE_SIDE = 128  # image-level scores are measured at this size (INTER_AREA), whatever the input size

# Score name → (level, which side is bad, plain reason). The order is the order rules are tried.
RULES: dict[str, tuple[str, str, str]] = {
    "colourfulness": ("image", "high", "it is a colour image (radiographs are grey)"),
    "contrast": ("image", "low", "the image is nearly blank (too little contrast)"),
    "noise": ("image", "high", "the image is mostly pixel noise"),
    "edge_density": ("image", "high", "too much fine detail for a radiograph (text, a pattern or a photograph)"),
    "hand_found": ("pipeline", "low", "no hand-shaped region was found"),
    "hand_area_fraction": ("pipeline", "both", "the largest region is not the size of a hand"),
    "solidity": ("pipeline", "both", "the outline is not hand-shaped (no separate fingers)"),
    "finger_valleys": ("pipeline", "low", "no gaps between fingers were found"),
    "elongation": ("pipeline", "both", "the outline is not hand-shaped (wrong proportions)"),
    "feature_distance": ("model", "high", "the model's features are far from those of hand radiographs it was trained on"),
    "feature_residual": ("model", "high", "the model's features are unlike those of hand radiographs it was trained on"),
    "tta_sd_months": ("model", "high", "the model's answers disagree when the image is shifted slightly"),
    "atypicality": ("combined", "high", "several measurements are unusual for a hand radiograph"),
}
# Scores whose tail probabilities feed ``atypicality`` (the mean surprise −log p over those present).
TAIL_SCORES = ("contrast", "noise", "edge_density", "hand_area_fraction", "solidity", "finger_valleys",
               "elongation", "feature_distance", "feature_residual", "tta_sd_months")


class NotAcceptedError(ImageError):
    """The image was read but is not accepted as a child's hand radiograph (a subclass of the
    package's input error, so callers that catch ImageError still get one line, never a bone age).

    ``reason`` is the plain sentence; ``scores`` every measured score; ``verdict`` the full result.
    """

    def __init__(self, verdict: "Verdict", label: str | None = None):
        self.verdict = verdict
        self.reason = verdict.reason or "not accepted"
        self.scores = dict(verdict.scores)
        super().__init__(f"{label}: not accepted: {self.reason}" if label else f"not accepted: {self.reason}")


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str | None  # the first failed rule's plain reason; None when accepted
    failed: tuple[str, ...]  # names of every failed rule, in rule order
    scores: dict[str, float]
    overridden: bool = False  # refused, but predicted anyway (accept_unusual)
    checked: bool = True  # False when the model bundle carries no acceptance calibration

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "reason": self.reason, "failed_rules": list(self.failed),
                "scores": {k: round(float(v), 4) for k, v in self.scores.items()}, "overridden": self.overridden}


# ---------------------------------------------------------------------------------------- scores


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness of an (H, W, 3) image on a 0–255 scale.

    Grey images score 0; their scale calls < 15 "not colourful", 33 "moderately colourful".
    """
    a = np.asarray(rgb, np.float64)
    if a.ndim != 3 or a.shape[2] < 3:
        return 0.0
    step = max(1, int(math.sqrt(a.shape[0] * a.shape[1] / 250_000)))  # ≈ 250k pixels are plenty
    a = a[::step, ::step]
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def scores_view(pixels: np.ndarray) -> np.ndarray:
    """The loaded picture at IMAGE_SIDE² (INTER_AREA), what the image-level scores are measured on.

    OpenCV's area resize has a fast path for integer factors only; 2000×2500 → 128² took 13.4 ms
    of a 59 ms pipeline-and-checks (2026-11-30). A large image is first box-averaged by the integer
    factor k that keeps its short side ≥ 4 × IMAGE_SIDE (trimmed to a multiple of k: under k
    pixels, split between the two edges), then area-resized: 2.9 ms. Images under 1024 px on the
    short side (every RSNA thumbnail and full-size radiograph, hence everything the thresholds
    were fitted on) take the direct path unchanged. Measured on the 95 inputs of the calibration's
    kinds whose view changes (5 of the 10 raw films, the 40 full-size radiographs upscaled to 1200
    and 2000 px wide, 10 large negatives of ``boneage.negatives.generate(16)``): contrast moved by
    at most 0.1 %, edge density 1.5 %, noise 4.9 % (relative), and no verdict of the shipped check
    changed (``scripts/scores_view_check.py``).
    """
    x = np.asarray(pixels, np.float32)
    h, w = x.shape[:2]
    k = min(h, w) // (4 * IMAGE_SIDE)
    if k >= 2:
        hk, wk = h // k, w // k
        y0, x0 = (h - hk * k) // 2, (w - wk * k) // 2  # the trim split between both edges
        x = cv2.resize(x[y0 : y0 + hk * k, x0 : x0 + wk * k], (wk, hk), interpolation=cv2.INTER_AREA)
    return cv2.resize(x, (IMAGE_SIDE, IMAGE_SIDE), interpolation=cv2.INTER_AREA)


def image_scores(pixels: np.ndarray, colour: float = 0.0) -> dict[str, float]:
    """Image-level scores of the loaded gray picture ([0, 1]); ``colour`` from the loader."""
    x = scores_view(pixels)
    sd = float(x.std())
    med = cv2.medianBlur(np.ascontiguousarray(x), 3)
    noise = float(np.mean(np.abs(x - med))) / (sd + 1e-6)
    gx, gy = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3)
    edges = float(np.mean(np.hypot(gx, gy) > 0.5))
    return {"colourfulness": float(colour), "contrast": sd, "noise": noise, "edge_density": edges}


def pipeline_scores(res) -> dict[str, float]:
    """Shape of the hand mask in the canonical frame (a :class:`boneage.pipeline.PipelineResult`)."""
    from .pipeline import finger_valleys

    mask = res.stages.get("aligned_mask")
    out = {"hand_found": float(res.hand_found)}
    if not res.hand_found or mask is None or not mask.any():
        # No outline: shape scores would describe the whole-image fallback, not a hand. (≈ 4 % of the
        # RSNA thumbnails have no mask found; they are judged on the image and model evidence.)
        return out
    out["hand_area_fraction"] = float(res.hand_area_fraction)
    cs, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(cs, key=cv2.contourArea)
    hull_area = cv2.contourArea(cv2.convexHull(c))
    out["solidity"] = float(cv2.contourArea(c) / hull_area) if hull_area > 0 else 1.0
    out["finger_valleys"] = float(len(finger_valleys(mask)))
    (_, _), (w, h), _ = cv2.minAreaRect(c)
    out["elongation"] = float(max(w, h) / max(1.0, min(w, h)))
    return out


@dataclass(frozen=True)
class FeatureSpace:
    """Where the training radiographs' pooled features live: mean, top principal axes, variances.

    ``distance`` is the Mahalanobis distance in those axes divided by √k (≈ 1 for a typical
    training image); ``residual`` the norm of the part outside them relative to its training RMS.
    """

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows
    variances: np.ndarray  # (k,)
    residual_rms: float

    @classmethod
    def fit(cls, feats: np.ndarray, k: int = 64) -> "FeatureSpace":
        f = np.asarray(feats, np.float64)
        mu = f.mean(axis=0)
        _, s, vt = np.linalg.svd(f - mu, full_matrices=False)
        k = min(k, vt.shape[0])
        var = s[:k] ** 2 / max(1, len(f) - 1)
        comps = vt[:k]
        resid = (f - mu) - ((f - mu) @ comps.T) @ comps
        rms = float(np.sqrt(np.mean(np.sum(resid**2, axis=1))))
        return cls(mu.astype(np.float32), comps.astype(np.float32), var.astype(np.float32), rms)

    def scores(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.atleast_2d(np.asarray(feats, np.float64)) - self.mean
        proj = f @ self.components.T.astype(np.float64)
        dist = np.sqrt(np.sum(proj**2 / self.variances, axis=1) / len(self.variances))
        resid = np.linalg.norm(f - proj @ self.components.astype(np.float64), axis=1) / max(self.residual_rms, 1e-9)
        return dist, resid

    def save(self, path: Path) -> None:
        np.savez_compressed(path, mean=self.mean, components=self.components.astype(np.float16),
                            variances=self.variances, residual_rms=np.float32(self.residual_rms))

    @classmethod
    def load(cls, path: Path) -> "FeatureSpace":
        with np.load(path) as z:
            return cls(z["mean"].astype(np.float32), z["components"].astype(np.float32),
                       z["variances"].astype(np.float32), float(z["residual_rms"]))


def model_scores(pooled: np.ndarray, tta_sd_months: float, space: FeatureSpace | None) -> dict[str, float]:
    out = {"tta_sd_months": float(tta_sd_months)}
    if space is not None:
        d, r = space.scores(pooled)
        out["feature_distance"], out["feature_residual"] = float(d[0]), float(r[0])
    return out


# ---------------------------------------------------------------------------------------- the check


@dataclass
class AcceptanceCheck:
    """Calibrated thresholds (``{score: {"low": x} | {"high": y}}``) and the feature space."""

    thresholds: dict[str, dict[str, float]]
    space: FeatureSpace | None = None
    info: dict = field(default_factory=dict)  # provenance and measured rates (acceptance.json)
    # score -> {"side": "high" | "low" | "both", "grid": 101 quantiles of the real radiographs' values}
    tails: dict[str, dict] = field(default_factory=dict)

    def atypicality(self, scores: dict[str, float]) -> float | None:
        """Sum of the ``TOP_SURPRISES`` largest surprises −log p among the scores present (p: the
        score's tail probability among real radiographs). A mean would dilute two or three strong
        signs in the scores that look normal; one sign alone is what single rules are for."""
        s = sorted((_surprise(scores[k], self.tails[k]) for k in TAIL_SCORES if k in scores and k in self.tails),
                   reverse=True)
        return float(sum(s[:TOP_SURPRISES])) if s else None

    def judge(self, scores: dict[str, float],
              levels: tuple[str, ...] = ("image", "pipeline", "model", "combined")) -> Verdict:
        """Apply every rule of the given levels whose score is present; the first failure is the reason."""
        scores = dict(scores)
        if "combined" in levels and self.tails:
            a = self.atypicality(scores)
            if a is not None:
                scores["atypicality"] = a
        failed = []
        for name, (level, _, _) in RULES.items():
            if level not in levels or name not in scores or name not in self.thresholds:
                continue
            t, v = self.thresholds[name], scores[name]
            if ("low" in t and v < t["low"]) or ("high" in t and v > t["high"]):
                failed.append(name)
        reason = _reason(failed[0], scores[failed[0]], self.thresholds[failed[0]]) if failed else None
        if failed and failed[0] == "atypicality":
            worst = sorted((k for k in TAIL_SCORES if k in scores and k in self.tails),
                           key=lambda k: -_surprise(scores[k], self.tails[k]))[:3]
            reason += "; most unusual: " + ", ".join(k.replace("_", " ") for k in worst)
        return Verdict(accepted=not failed, reason=reason, failed=tuple(failed), scores=dict(scores))

    # -- the one place the bundle's acceptance files are read and written
    @classmethod
    def load(cls, folder: str | Path) -> "AcceptanceCheck | None":
        """The check stored beside a model, or None when that bundle was never calibrated."""
        folder = Path(folder)
        f = folder / ACCEPTANCE_FILE
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        space_file = folder / d.get("feature_space_file", FEATURES_FILE)
        space = FeatureSpace.load(space_file) if space_file.is_file() else None
        return cls(thresholds=d["thresholds"], space=space, info=d, tails=d.get("tails", {}))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        d = dict(self.info)
        d["thresholds"] = self.thresholds
        d["tails"] = self.tails
        if self.space is not None:
            d["feature_space_file"] = FEATURES_FILE
            self.space.save(folder / FEATURES_FILE)
        (folder / ACCEPTANCE_FILE).write_text(json.dumps(d, indent=2) + "\n")


TOP_SURPRISES = 4  # atypicality sums this many of the largest surprises
TAIL_FLOOR = 1e-3  # tail probabilities are floored here: a grid of real values cannot resolve rarer ones


def tail_grid(values: np.ndarray, side: str, n: int = 101) -> dict:
    """What :meth:`AcceptanceCheck.atypicality` needs of one score's distribution among real radiographs."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return {"side": side, "grid": [float(x) for x in np.quantile(v, np.linspace(0, 1, n))]}


def _surprise(value: float, tail: dict) -> float:
    grid = np.asarray(tail["grid"], float)
    probs = np.linspace(0, 1, len(grid))
    # Ties (integer scores such as finger_valleys) take the middle of their run of equal quantiles.
    lo, hi = np.searchsorted(grid, value, side="left"), np.searchsorted(grid, value, side="right")
    if hi > lo:
        f = float(probs[lo:hi].mean())
    else:
        f = float(np.interp(value, grid, probs))
    p = {"high": 1 - f, "low": f}.get(tail["side"], 2 * min(f, 1 - f))
    return float(-math.log(max(p, TAIL_FLOOR)))


def _reason(name: str, value: float, t: dict[str, float]) -> str:
    text = RULES[name][2]
    if name == "hand_found":
        return text
    bound = f"≥ {t['low']:.3g}" if "low" in t and value < t["low"] else f"≤ {t['high']:.3g}"
    return f"{text} ({name.replace('_', ' ')} {value:.3g}; hand radiographs {bound})"


def unchecked(scores: dict[str, float] | None = None) -> Verdict:
    """The verdict when the bundle has no acceptance calibration: accepted, marked unchecked."""
    return Verdict(accepted=True, reason=None, failed=(), scores=dict(scores or {}), checked=False)


__all__ = ["AcceptanceCheck", "FeatureSpace", "NotAcceptedError", "Verdict", "RULES", "TAIL_SCORES", "tail_grid", "image_scores",
           "pipeline_scores", "model_scores", "colourfulness", "unchecked"]
