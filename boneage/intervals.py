"""Calibrated 90 % intervals for a bone-age reading (split-conformal, conditioned).

The old "± 1 SD" was one number for every image (the validation residual SD ⊕ TTA spread), so
it was too wide for a clear 16-year-old's film and too narrow where the model errs most. Here the
interval comes from the model's own validation residuals through the full prediction path (with
the bundle's TTA count, ``boneage.bundle.TTASpec``), by split-conformal calibration (Vovk et al.; Lei et al. 2018, JASA 113:1094):

* **conditioned** on what changes the error: residuals are grouped by *predicted* age band and
  sex (Mondrian conformal), and scaled by ``√(σ_g² + TTA SD²)``, so an image whose TTA copies
  disagree gets a wider interval;
* **asymmetric**: the lower and upper ends are the group's 5 % and 95 % conformal quantiles of
  the signed scaled residual (the model regresses to the mean: it over-reads young children and
  under-reads adolescents, so one ± would miss on one side);
* **verified** on ids not used to calibrate: K-fold cross-fitting (fit on K − 1 folds, measure
  coverage on the held-out fold), reported overall, per true age band and per sex in the card.

The table lives in the model bundle folder (``intervals.json``); ``scripts/calibrate_intervals.py``
writes it from a ``boneage evaluate`` CSV of the validation ids.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INTERVALS_FILE = "intervals.json"
LEVEL = 0.90
# Predicted-age bands (months) of the groups: narrow enough to follow the error's change with
# age, wide enough that each band × sex group holds ≥ 100 validation images.
BAND_EDGES = (0.0, 72.0, 120.0, 156.0, 180.0, 229.0)
MAX_MONTHS = 228.0


def band_of(months: float) -> int:
    return int(np.clip(np.searchsorted(BAND_EDGES, months, side="right") - 1, 0, len(BAND_EDGES) - 2))


def band_name(i: int) -> str:
    lo, hi = BAND_EDGES[i], BAND_EDGES[i + 1]
    return f"{lo / 12:g}-{min(hi, 228) / 12:g} y"


@dataclass(frozen=True)
class Group:
    sigma: float  # RMS residual of the group (months)
    q_low: float  # conformal quantiles of the signed scaled residual (true − predicted) / scale
    q_high: float
    n: int


@dataclass
class IntervalTable:
    """Per (predicted age band, sex) group: scale and conformal quantiles."""

    groups: dict[str, Group]
    level: float = LEVEL
    info: dict = field(default_factory=dict)

    @staticmethod
    def key(band: int, sex: str) -> str:
        return f"{band}:{sex}"

    def interval(self, predicted_months: float, sex: str, tta_sd_months: float) -> tuple[float, float]:
        """The ``level`` interval for one reading, clipped to the model's range (0–228 months)."""
        g = self.groups.get(self.key(band_of(predicted_months), sex))
        if g is None:  # a group too small to calibrate: the pooled one for that sex
            g = self.groups[self.key(-1, sex)]
        s = math.sqrt(g.sigma**2 + tta_sd_months**2)
        lo, hi = predicted_months + g.q_low * s, predicted_months + g.q_high * s
        return float(np.clip(lo, 0.0, MAX_MONTHS)), float(np.clip(hi, 0.0, MAX_MONTHS))

    @classmethod
    def fit(cls, predicted: np.ndarray, true: np.ndarray, sex: np.ndarray, tta_sd: np.ndarray,
            level: float = LEVEL, min_group: int = 30) -> "IntervalTable":
        pred, y, sd = (np.asarray(a, float) for a in (predicted, true, tta_sd))
        sex = np.asarray(sex).astype(str)
        bands = np.array([band_of(p) for p in pred])
        groups: dict[str, Group] = {}
        for sx in ("M", "F"):
            for b in [-1, *range(len(BAND_EDGES) - 1)]:
                sel = (sex == sx) & ((bands == b) if b >= 0 else True)
                if sel.sum() < min_group:
                    continue
                r = y[sel] - pred[sel]
                sigma = float(np.sqrt(np.mean(r**2)))
                z = np.sort(r / np.sqrt(sigma**2 + sd[sel] ** 2))
                groups[cls.key(b, sx)] = Group(sigma, *_conformal_quantiles(z, level), n=int(sel.sum()))
        return cls(groups, level)

    def covers(self, predicted, true, sex, tta_sd) -> np.ndarray:
        lo_hi = np.array([self.interval(p, s, t) for p, s, t in zip(predicted, sex, tta_sd)])
        y = np.asarray(true, float)
        return (y >= lo_hi[:, 0]) & (y <= lo_hi[:, 1])

    def widths(self, predicted, sex, tta_sd) -> np.ndarray:
        lo_hi = np.array([self.interval(p, s, t) for p, s, t in zip(predicted, sex, tta_sd)])
        return lo_hi[:, 1] - lo_hi[:, 0]

    # -- the one place the bundle's interval table is read and written
    @classmethod
    def load(cls, folder: str | Path) -> "IntervalTable | None":
        f = Path(folder) / INTERVALS_FILE
        if not f.is_file():
            return None
        d = json.loads(f.read_text())
        return cls({k: Group(**v) for k, v in d["groups"].items()}, float(d["level"]), d)

    def save(self, folder: str | Path) -> None:
        d = dict(self.info)
        d.update({"level": self.level, "band_edges_months": list(BAND_EDGES),
                  "groups": {k: vars(g) for k, g in self.groups.items()}})
        (Path(folder) / INTERVALS_FILE).write_text(json.dumps(d, indent=2) + "\n")


def _conformal_quantiles(z: np.ndarray, level: float) -> tuple[float, float]:
    """Split-conformal lower/upper quantiles of sorted scores: the ⌊(n+1)α/2⌋-th and
    ⌈(n+1)(1−α/2)⌉-th order statistics (finite-sample valid, each side α/2)."""
    n, a = len(z), (1 - level) / 2
    lo_k = max(1, int(math.floor((n + 1) * a)))
    hi_k = min(n, int(math.ceil((n + 1) * (1 - a))))
    return float(z[lo_k - 1]), float(z[hi_k - 1])


def fold_of(image_id: str, k: int) -> int:
    return int.from_bytes(hashlib.sha256(f"interval-fold-{image_id}".encode()).digest()[:4], "big") % k


def cross_fit(ids, predicted, true, sex, tta_sd, k: int = 5, level: float = LEVEL) -> dict:
    """Coverage and width measured on ids never used to calibrate (K-fold cross-fitting)."""
    ids = np.asarray(ids).astype(str)
    pred, y, sd = (np.asarray(a, float) for a in (predicted, true, tta_sd))
    sex = np.asarray(sex).astype(str)
    folds = np.array([fold_of(i, k) for i in ids])
    cover, width = np.zeros(len(ids), bool), np.zeros(len(ids))
    for f in range(k):
        te = folds == f
        t = IntervalTable.fit(pred[~te], y[~te], sex[~te], sd[~te], level)
        cover[te] = t.covers(pred[te], y[te], sex[te], sd[te])
        width[te] = t.widths(pred[te], sex[te], sd[te])
    out = {"n": int(len(ids)), "folds": k, "coverage": round(float(cover.mean()), 4),
           "mean_width_months": round(float(width.mean()), 2), "by_true_age_band": {}, "by_sex": {}}
    true_band = np.array([band_of(v) for v in y])
    for b in range(len(BAND_EDGES) - 1):
        sel = true_band == b
        if sel.any():
            out["by_true_age_band"][band_name(b)] = {"n": int(sel.sum()), "coverage": round(float(cover[sel].mean()), 4),
                                                     "mean_width_months": round(float(width[sel].mean()), 2)}
    for sx in ("M", "F"):
        sel = sex == sx
        out["by_sex"][sx] = {"n": int(sel.sum()), "coverage": round(float(cover[sel].mean()), 4),
                             "mean_width_months": round(float(width[sel].mean()), 2)}
    return out


__all__ = ["IntervalTable", "cross_fit", "band_of", "band_name", "LEVEL", "INTERVALS_FILE"]
