"""Follow-up of one child over several visits: bone-age velocity.

Clinicians follow a child with a growth or puberty problem over years; the
question is then not only "how far ahead or behind is the bone age?" but "is it
catching up?"  Bone-age velocity answers it: bone-age years gained per calendar
year between visits.  1.0 means the skeleton matures at the pace of the
calendar; a delayed child catching up runs above 1, treatment that slows
maturation (e.g. for precocious puberty) aims below 1.

Why the uncertainty is shown with every velocity: it is the difference of two
readings divided by the time between them, so reading errors are magnified by
short intervals.  With the shipped model's 14.5-month 1-SD error per reading
(`val_residual_sd_months` in models/meta.json) two readings a year apart give a
velocity +/- 1.7 y/y (1 SD, sqrt(2) x 14.5 / 12, independent errors assumed;
errors on one child's films are likely correlated, so this is an upper
estimate); three years apart, +/- 0.57.  Visits a year or two apart say little;
the summary says so rather than print a confident number.

Visits come from radiographs read now (with their study dates) or from earlier
results loaded from their JSON (one `boneage predict --json` line each).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .clinical import (
    MAX_BONE_AGE_MONTHS,
    ClinicalInputError,
    _check_chronological_age,
    format_age,
    normalise_sex,
)

#: Velocity 1 SD above which the summary calls a velocity "too uncertain to
#: read" (y/y).  Our choice: at +/-0.5 a velocity of 1.0 cannot be told from
#: 0 or 2 at 2 SD, i.e. it carries no clinical information.
UNREADABLE_VELOCITY_SD = 0.5


@dataclass(frozen=True)
class Visit:
    """One reading of the child: ages in months, the study date when known."""

    chronological_age_months: float
    bone_age_months: float
    study_date: date | None = None
    uncertainty_months: float | None = None  # 1 SD of the bone age reading
    label: str = ""  # file name or "visit N"

    def to_dict(self) -> dict:
        return {"label": self.label, "study_date": None if self.study_date is None else self.study_date.isoformat(),
                "chronological_age_months": round(self.chronological_age_months, 2),
                "bone_age_months": round(self.bone_age_months, 2),
                "uncertainty_months": None if self.uncertainty_months is None else round(self.uncertainty_months, 2)}


@dataclass(frozen=True)
class Interval:
    """Between two consecutive visits."""

    start: Visit
    end: Visit

    @property
    def months(self) -> float:
        return self.end.chronological_age_months - self.start.chronological_age_months

    @property
    def bone_age_change_months(self) -> float:
        return self.end.bone_age_months - self.start.bone_age_months

    @property
    def velocity(self) -> float:
        """Bone-age years per calendar year."""
        return self.bone_age_change_months / self.months

    @property
    def velocity_sd(self) -> float | None:
        u0, u1 = self.start.uncertainty_months, self.end.uncertainty_months
        if u0 is None or u1 is None:
            return None
        return math.hypot(u0, u1) / self.months

    def to_dict(self) -> dict:
        return {"from": self.start.label, "to": self.end.label, "months": round(self.months, 2),
                "bone_age_change_months": round(self.bone_age_change_months, 2),
                "velocity": round(self.velocity, 3),
                "velocity_sd": None if self.velocity_sd is None else round(self.velocity_sd, 3)}


def _fmt_velocity(v: float, sd: float | None) -> str:
    return f"{v:.2f}" + ("" if sd is None else f" ± {sd:.2f}")


@dataclass(frozen=True)
class FollowUp:
    """All visits of one child, in date order, with the bone-age velocity."""

    sex: str
    visits: tuple[Visit, ...]
    intervals: tuple[Interval, ...]
    velocity: float  # least-squares slope of bone age on chronological age (y/y)
    velocity_sd: float | None  # 1 SD from the readings' uncertainties, when all are known

    @property
    def span_months(self) -> float:
        return self.visits[-1].chronological_age_months - self.visits[0].chronological_age_months

    def summary(self) -> str:
        """Plain sentences: how many visits over how long, the velocity and what it can tell."""
        n = len(self.visits)
        how = "least-squares slope over all visits" if n > 2 else "between the two visits"
        out = [f"{n} visits over {format_age(self.span_months)}: bone-age velocity "
               f"{_fmt_velocity(self.velocity, self.velocity_sd)} bone-age years per calendar year "
               f"({how}; 1.0 keeps pace with the calendar)."]
        sd = self.velocity_sd
        if sd is None:
            out.append("No reading uncertainty was given, so its precision is unknown.")
        elif sd > UNREADABLE_VELOCITY_SD:
            out.append(f"Too uncertain to read (± {sd:.2f} at 1 SD): the readings' own error is large "
                       "against the time between visits; a longer interval would tell more.")
        elif abs(self.velocity - 1.0) > 2 * sd:
            out.append(f"Bone age advanced {'faster' if self.velocity > 1 else 'slower'} than the "
                       "calendar, by more than twice the uncertainty.")
        else:
            out.append("Consistent with bone age keeping pace with the calendar (within twice the "
                       "uncertainty).")
        for i in self.intervals:
            u0, u1 = i.start.uncertainty_months, i.end.uncertainty_months
            tolerance = 0.0 if u0 is None or u1 is None else 2 * math.hypot(u0, u1)
            if i.bone_age_change_months < -tolerance:
                out.append(f"Check the readings: bone age fell by {-i.bone_age_change_months:.1f} months from "
                           f"{i.start.label or 'one visit'} to {i.end.label or 'the next'}, which a skeleton "
                           "does not do (a misread film, or films of different children).")
        return " ".join(out)

    def to_dict(self) -> dict:
        return {"sex": self.sex, "visits": [v.to_dict() for v in self.visits],
                "intervals": [i.to_dict() for i in self.intervals],
                "bone_age_velocity": round(self.velocity, 3),
                "bone_age_velocity_sd": None if self.velocity_sd is None else round(self.velocity_sd, 3),
                "summary": self.summary()}


def _describe(v: Visit, i: int) -> str:
    when = f", {v.study_date.isoformat()}" if v.study_date else ""
    return f"visit {i + 1} ({v.label + ', ' if v.label else ''}age {format_age(v.chronological_age_months)}{when})"


def _check_visit(v: Visit, i: int) -> Visit:
    if not isinstance(v, Visit):
        raise ClinicalInputError(f"visit {i + 1} must be a Visit, got {type(v).__name__}")
    if v.chronological_age_months is None:
        raise ClinicalInputError(f"visit {i + 1}{' (' + v.label + ')' if v.label else ''} has no "
                                 "chronological age: give the birth date or the age")
    _check_chronological_age(v.chronological_age_months)
    ba = v.bone_age_months
    if ba is None or not math.isfinite(ba) or not 0 <= ba <= MAX_BONE_AGE_MONTHS:
        raise ClinicalInputError(f"visit {i + 1}: bone age {ba!r} months is not a bone age (0-240)")
    if v.uncertainty_months is not None and not (math.isfinite(v.uncertainty_months)
                                                 and v.uncertainty_months >= 0):
        raise ClinicalInputError(f"visit {i + 1}: uncertainty {v.uncertainty_months!r} must be >= 0 months")
    return v


def follow_up(visits: Sequence[Visit], sex: str) -> FollowUp:
    """Bone-age velocity from visits given in date order (oldest first).

    Out-of-order or same-day visits are an error, not silently re-sorted: a
    list whose order disagrees with its dates usually means a mixed-up file or
    a wrong birth date, and the velocity would be wrong in sign.
    """
    s = normalise_sex(sex)
    vs = tuple(_check_visit(v, i) for i, v in enumerate(visits))
    if len(vs) < 2:
        raise ClinicalInputError(f"follow-up needs at least two visits, got {len(vs)}")
    for i in range(1, len(vs)):
        a, b = vs[i - 1], vs[i]
        if a.study_date and b.study_date and b.study_date <= a.study_date:
            raise ClinicalInputError(
                f"{_describe(b, i)} is {'on the same day as' if a.study_date == b.study_date else 'before'} "
                f"{_describe(a, i - 1)}: give the visits in date order, oldest first")
        if b.chronological_age_months <= a.chronological_age_months:
            raise ClinicalInputError(
                f"{_describe(b, i)} is not later than {_describe(a, i - 1)}: give the visits in date "
                "order, oldest first")
    x = np.array([v.chronological_age_months for v in vs])
    y = np.array([v.bone_age_months for v in vs])
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean()) / sxx)
    unc = [v.uncertainty_months for v in vs]
    # Var(slope) = sum(dx_i^2 sigma_i^2) / Sxx^2 for independent reading errors.
    sd = None if any(u is None for u in unc) else float(math.sqrt(sum(d * d * u * u for d, u in zip(dx, unc))) / sxx)
    intervals = tuple(Interval(vs[i - 1], vs[i]) for i in range(1, len(vs)))
    return FollowUp(s, vs, intervals, slope, sd)


# ------------------------------------------------------- earlier JSON results
def visit_from_record(record: dict, label: str = "") -> tuple[Visit, str]:
    """(Visit, sex) from one `boneage predict --json` line (or the app's JSON download)."""
    if not isinstance(record, dict):
        raise ClinicalInputError(f"{label or 'earlier result'}: not a JSON object")
    name = label or str(record.get("file") or record.get("source") or "earlier result")
    if record.get("bone_age_months") is None:
        raise ClinicalInputError(f"{name}: no bone_age_months (not a boneage result?)")
    if record.get("chronological_age_months") is None:
        raise ClinicalInputError(f"{name}: no chronological age, so it cannot be placed on the follow-up")
    study = record.get("study_date")
    try:
        study_date = None if study in (None, "") else date.fromisoformat(str(study))
    except ValueError:
        raise ClinicalInputError(f"{name}: study_date {study!r} is not a date (YYYY-MM-DD)") from None
    try:
        visit = Visit(float(record["chronological_age_months"]), float(record["bone_age_months"]),
                      study_date, None if record.get("uncertainty_months") is None
                      else float(record["uncertainty_months"]), name)
        sex = normalise_sex(record.get("sex"))
    except (TypeError, ValueError) as e:
        raise ClinicalInputError(f"{name}: {e}") from None
    return visit, sex


def read_results(path: str | Path) -> list[tuple[Visit, str]]:
    """Visits from a file of earlier results: JSON lines, a JSON object, or a JSON list."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ClinicalInputError(f"{p}: cannot read earlier results ({e.__class__.__name__})") from None
    return parse_results(text, str(p))


def parse_results(text: str, name: str = "earlier results") -> list[tuple[Visit, str]]:
    """Same as `read_results`, from text (the app's uploaded file)."""
    text = text.strip()
    if not text:
        raise ClinicalInputError(f"{name}: empty")
    try:
        data = json.loads(text)
        records: Iterable = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise ClinicalInputError(f"{name}: not JSON or JSON lines (line {e.lineno}: {e.msg})") from None
    out = []
    for i, r in enumerate(records):
        if isinstance(r, dict) and "visits" in r and "bone_age_months" not in r:
            raise ClinicalInputError(f"{name}: a follow-up summary, not single results; load the visits' own JSON")
        out.append(visit_from_record(r))
    if not out:
        raise ClinicalInputError(f"{name}: no results in it")
    return out


def one_child(visits_and_sexes: Sequence[tuple[Visit, str]]) -> str:
    """The common sex of the visits; different sexes are two children, an error."""
    sexes = {s for _, s in visits_and_sexes}
    if len(sexes) > 1:
        raise ClinicalInputError("the visits are not of one child: both sexes appear "
                                 f"({', '.join(f'{v.label}: {s}' for v, s in visits_and_sexes)})")
    if not sexes:
        raise ClinicalInputError("no visits")
    return sexes.pop()
