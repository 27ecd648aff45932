"""Reading separate from interpreting: which clinical inputs win, and tags never cost the bone age.

Unit tests of the precedence rule (boneage.clinical_inputs); the CLI, API and app are checked on
the same cases in test_predict.py, test_serve.py and test_app.py.
"""
from __future__ import annotations

import datetime as dt

import pytest

from boneage.clinical import ClinicalInputError
from boneage.clinical_inputs import ClinicalInputs, resolve, tag_inputs
from boneage.io import ImageMeta
from boneage.vocab import format_age

TODAY = dt.date(2025, 6, 1)


def tags(**kw) -> ImageMeta:
    return ImageMeta(**{"source": "t.dcm", "format": "DICOM", "width": 800, "height": 1000, "bit_depth": 16,
                        "photometric": "MONOCHROME2", **kw})


def test_typed_wins_over_tags_with_a_warning():
    meta = tags(sex="M", birth_date=dt.date(2015, 1, 1), study_date=dt.date(2025, 1, 1))  # 120 months
    got, warnings = resolve(ClinicalInputs(sex="F", chronological_age_months=100.0), meta, today=TODAY)
    assert got.sex == "F" and got.chronological_age_months == 100.0
    assert got.birth_date is None and got.study_date is None  # the typed age is not mixed with tag dates
    assert any("sex given as F, the DICOM tag says M" in w for w in warnings)
    assert any(f"given as {format_age(100)}, the DICOM tags give {format_age(120)}; the given age used" in w
               for w in warnings), warnings


def test_typed_age_that_agrees_gives_no_warning():
    meta = tags(birth_date=dt.date(2015, 1, 1), study_date=dt.date(2025, 1, 1))
    got, warnings = resolve(ClinicalInputs(sex="F", chronological_age_months=120.4), meta, today=TODAY)
    assert got.chronological_age_months == 120.4 and warnings == []


def test_tags_fill_what_was_not_typed_unless_told_not_to():
    meta = tags(sex="M", birth_date=dt.date(2015, 1, 1), study_date=dt.date(2025, 1, 1))
    got, _ = resolve(ClinicalInputs(), meta, today=TODAY)
    assert (got.sex, got.birth_date, got.study_date) == ("M", dt.date(2015, 1, 1), dt.date(2025, 1, 1))
    got, _ = resolve(ClinicalInputs(sex="M"), meta, fill_from_tags=False, today=TODAY)
    assert got.birth_date is None and got.chronological_age_months is None and not got.wants_interpretation()
    got, _ = resolve(ClinicalInputs(), tags(patient_age_months=96.0), today=TODAY)
    assert got.chronological_age_months == 96.0


@pytest.mark.parametrize("kw, warning", [
    (dict(birth_date=dt.date(2030, 1, 1), study_date=dt.date(2025, 1, 1)), "birth date 2030-01-01 is in the future"),
    (dict(birth_date=dt.date(2015, 1, 1), study_date=dt.date(2026, 1, 1)), "study date 2026-01-01 is in the future"),
    (dict(birth_date=dt.date(2020, 1, 1), study_date=dt.date(2015, 1, 1)), "before the birth date"),
    (dict(birth_date=dt.date(1950, 1, 1), study_date=dt.date(2025, 1, 1)), "beyond 20 years"),
    (dict(patient_age_months=999 * 12.0), "PatientAge (999 years) is not a child's age"),
])
def test_implausible_tags_are_ignored_with_a_warning(kw, warning):
    got, warnings = resolve(ClinicalInputs(sex="F"), tags(**kw), today=TODAY)
    assert any(warning in w for w in warnings), warnings
    assert got.chronological_age_months is None and (got.birth_date is None or got.study_date is None)
    t = tag_inputs(tags(**kw), today=TODAY)
    assert t.age_months is None


def test_old_but_plausible_dates_are_kept():
    got, warnings = resolve(ClinicalInputs(sex="F"), tags(birth_date=dt.date(1985, 3, 1), study_date=dt.date(1995, 3, 1)),
                            today=TODAY)
    assert warnings == [] and got.birth_date == dt.date(1985, 3, 1)


def test_bad_typed_dates_are_still_errors():
    with pytest.raises(ClinicalInputError, match="before birth date"):
        resolve(ClinicalInputs(sex="F", birth_date=dt.date(2020, 1, 1), study_date=dt.date(2019, 1, 1)), None,
                today=TODAY)


# ------------------------------------------------------------------ the same rule through the CLI and the API

from boneage.paths import FIXTURES_DIR, MODELS_DIR  # noqa: E402
from conftest import dicom_from  # noqa: E402

SAMPLE = FIXTURES_DIR / "hires" / "1437.png"
DATED = dict(PatientSex="M", PatientBirthDate="20140115", StudyDate="20250301")  # 133.5 months
BAD_TAGS = [
    (dict(PatientBirthDate="20141345", StudyDate="20250301"), "is not a valid date"),
    (dict(PatientBirthDate="20200101", StudyDate="20150301"), "before the birth date"),
    (dict(PatientBirthDate="20990101", StudyDate="20250301"), "in the future"),
    (dict(PatientAge="999Y"), "is not a child's age"),
]


@pytest.fixture(scope="module")
def shipped():
    if not (MODELS_DIR / "model.keras").is_file():
        pytest.skip("no shipped model")
    return MODELS_DIR


@pytest.fixture(scope="module")
def dicoms(tmp_path_factory):
    d = tmp_path_factory.mktemp("dicoms")
    out = {"dated": d / "dated.dcm"}
    out["dated"].write_bytes(dicom_from(SAMPLE, **DATED))
    for i, (tags, _) in enumerate(BAD_TAGS):
        out[i] = d / f"bad{i}.dcm"
        out[i].write_bytes(dicom_from(SAMPLE, PatientSex="F", **tags))
    return out


def _cli_json(capsys, *args) -> tuple[int, dict | None, str]:
    import json

    from boneage.cli import main

    rc = main(["predict", *map(str, args), "--json", "--tta", "1"])
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    return rc, (json.loads(lines[-1]) if lines else None), cap.err


def test_cli_typed_age_wins_over_dicom_dates(shipped, dicoms, capsys):
    rc, d, err = _cli_json(capsys, dicoms["dated"], "--age-months", "96", "--model", shipped)
    assert rc == 0, err
    assert d["bone_age_months"] > 0 and d["chronological_age_months"] == 96.0 and d["sex"] == "M"
    assert any("given age used" in w for w in d["warnings"]), d["warnings"]
    rc, d, err = _cli_json(capsys, dicoms["dated"], "--sex", "F", "--model", shipped)  # tags fill the age
    assert rc == 0 and d["sex"] == "F" and d["chronological_age_months"] == pytest.approx(133.5, abs=0.1)
    assert any("sex given as F, the DICOM tag says M" in w for w in d["warnings"])


@pytest.mark.parametrize("case", range(len(BAD_TAGS)))
def test_cli_bad_tags_still_give_the_bone_age(shipped, dicoms, capsys, case):
    rc, d, err = _cli_json(capsys, dicoms[case], "--model", shipped)
    assert rc == 0, err
    assert d["bone_age_months"] > 0 and "status" not in d
    assert any(BAD_TAGS[case][1] in w for w in d["warnings"]), d["warnings"]


@pytest.fixture(scope="module")
def client(shipped):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from boneage.predict import Predictor
    from boneage.serve import ServeConfig, build_app

    with TestClient(build_app(Predictor.load(shipped), ServeConfig(workers=1, tta=1))) as c:
        yield c


def _api(client, path, **fields):
    r = client.post("/v1/predict", files={"file": (path.name, path.read_bytes(), "application/dicom")},
                    data={k: str(v) for k, v in fields.items()})
    assert r.status_code == 200, r.text
    return r.json()


def test_api_typed_age_wins_and_bad_tags_still_give_the_bone_age(client, dicoms):
    d = _api(client, dicoms["dated"], age_months=96)
    assert d["chronological_age_months"] == 96.0 and any("given age used" in w for w in d["warnings"])
    for i, (_, warning) in enumerate(BAD_TAGS):
        d = _api(client, dicoms[i])
        assert d["bone_age_months"] > 0 and any(warning in w for w in d["warnings"]), d["warnings"]
