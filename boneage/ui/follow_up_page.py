"""Follow-up page helpers: several radiographs (and earlier results) of one child -> visits.

The page reads each radiograph through the same cached ``ui.predict`` as the Predict page, turns
every reading and every earlier JSON result into a :class:`boneage.followup.Visit`, and hands them
to :func:`boneage.followup.follow_up`. Uploads come in no meaningful order, so the visits are put in
date order here (and the page says so); what cannot be placed (no study date, a date before birth,
an unreadable result file) is listed with its one-line reason and the other visits still count.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from ..clinical import ClinicalInputError
from ..followup import Visit, parse_results
from .state import Source, digest, load, predict

EARLIEST_DATE = dt.date(1990, 1, 1)


@dataclass
class Visits:
    """What the uploads gave: visits with their sexes, the readings made now, and the refusals."""

    visits: list[tuple[Visit, str]] = field(default_factory=list)
    readings: dict[str, object] = field(default_factory=dict)  # visit label -> Prediction
    problems: list[str] = field(default_factory=list)


def earlier_results(files) -> Visits:
    """Visits from uploaded JSON results (the Predict page's download or ``boneage predict --json``)."""
    out = Visits()
    for f in files or []:
        try:
            text = f.getvalue().decode("utf-8")
            out.visits += parse_results(text, f.name)
        except UnicodeDecodeError:
            out.problems.append(f"{f.name}: not a text file")
        except ClinicalInputError as e:
            out.problems.append(str(e))
    return out


def radiograph_sources(files) -> list[Source]:
    return [Source(f.getvalue(), f.name, digest(f.getvalue())) for f in files or []]


def dicom_defaults(sources: list[Source]) -> tuple[str | None, dt.date | None]:
    """Sex and birth date from the first DICOM that carries them."""
    sex = birth = None
    for src in sources:
        try:
            meta = load(src).meta
        except Exception:  # noqa: BLE001 - an unreadable file is reported when it is read
            continue
        sex = sex or meta.sex
        birth = birth or meta.birth_date
    return sex, birth


def study_dates(sources: list[Source]) -> dict[str, dt.date | None]:
    """One date input per radiograph, pre-filled from its DICOM study date."""
    dates = {}
    today = dt.date.today()
    for src in sources:
        try:
            default = load(src).meta.study_date
        except Exception:  # noqa: BLE001 - reported below by read_visits
            default = None
        dates[src.digest] = st.date_input(f"Study date: {src.name}", value=default, min_value=EARLIEST_DATE,
                                          max_value=today, key=f"fu_study_{src.digest[:12]}")
    return dates


def read_visits(sources: list[Source], sex: str, birth: dt.date | None,
                dates: dict[str, dt.date | None]) -> Visits:
    """Read every radiograph (cached) and place it as a visit, or say why it cannot be placed."""
    from ..io import ImageError
    from ..predict import PredictionError

    out = Visits()
    for src in sources:
        study = dates.get(src.digest)
        if birth is None or study is None:
            out.problems.append(f"{src.name}: give the {'birth date' if birth is None else 'study date'} "
                                "to place it on the follow-up")
            continue
        try:
            pred = predict(src, sex, birth_date=birth, study_date=study)
        except (ImageError, PredictionError, ClinicalInputError) as e:
            msg = str(e)
            out.problems.append(msg if msg.startswith(src.name) else f"{src.name}: {msg}")
            continue
        c = pred.clinical
        out.visits.append((Visit(c.chronological_age_months, pred.bone_age_months, study, pred.uncertainty_months,
                                 src.name), pred.sex))
        out.readings[src.name] = pred
    return out


def follow_up_files(fu, latest, src) -> dict:
    """The Follow-up page's downloads: the follow-up JSON, and the latest visit's PDF report with every visit
    on its chart when that visit is a radiograph read here (``latest`` its prediction, ``src`` its source)."""
    from .downloads import File
    from .results import follow_up_pdf

    files = {"json": File("Download follow-up JSON", "boneage_follow_up.json", "application/json",
                          lambda: json.dumps(fu.to_dict(), indent=2))}
    if latest is not None and src is not None:
        key = f"{src.digest}:{json.dumps(fu.to_dict(), sort_keys=True, default=str)}"
        files["pdf"] = File("Download PDF report (latest visit)", f"{Path(src.name).stem or 'boneage'}_follow_up_report.pdf",
                            "application/pdf", lambda: follow_up_pdf(key, latest, src.name, fu),
                            ":material/picture_as_pdf:")
    return files
