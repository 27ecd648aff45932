"""The app's clinical additions (issue #12) through AppTest: parents' heights and the target height,
reasons in place of missing numbers, patient ID / accession, and the Follow-up page."""
from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from test_app import SAMPLE, _dicom_from, app_model, by_label, errors, metrics, no_exception, page, upload  # noqa: F401

from boneage import ui
from boneage.paths import FIXTURES_DIR

OTHER = FIXTURES_DIR / "hires" / "2171.png"


def _predict_page_with(sex: str, years: int, months: int, height: float | None = None):
    at = page("pages/predict.py").run()
    upload(at, "hand.png", SAMPLE.read_bytes())
    by_label(at.radio, "Sex").set_value(sex)
    by_label(at.radio, "Chronological age").set_value(ui.AGE_DIRECT)
    at.run()
    by_label(at.number_input, "Years").set_value(years)
    by_label(at.number_input, "Months").set_value(months)
    if height is not None:
        by_label(at.number_input, "Height (cm, optional)").set_value(height)
    return at.run()


def test_parents_heights_show_the_target_height_and_comparison(app_model):
    at = _predict_page_with("F", 10, 6, 140.0)
    by_label(at.number_input, "Father's height (cm)").set_value(180.0)
    by_label(at.number_input, "Mother's height (cm)").set_value(165.0)
    at.run()
    no_exception(at)
    assert not errors(at)
    m = metrics(at)
    assert m["Target height (mid-parental)"] == "166.0 cm" and m["Target range"] == "157.5–174.5 cm"
    summary = [i.value for i in at.info if i.value.startswith("Bone age")][0]
    assert "Mid-parental target height 166.0 cm" in summary
    assert any("target range" in c.value for c in at.caption)


def test_nonsense_parent_height_is_a_one_line_error_and_the_bone_age_stays(app_model):
    at = _predict_page_with("F", 10, 6)
    by_label(at.number_input, "Father's height (cm)").set_value(175.0)
    by_label(at.number_input, "Mother's height (cm)").set_value(300.0)
    at.run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and "mother's height 300 cm is not plausible" in errs[0] and "\n" not in errs[0]
    assert "Bone age" in metrics(at)


def test_missing_numbers_show_their_reason_not_a_dash(app_model):
    at = _predict_page_with("F", 0, 1)  # a month old (below the SD table), no height
    no_exception(at)
    m = metrics(at)
    assert "—" not in m.values()
    assert m["Z-score"] == "not given" and m["Predicted adult height"] == "not given"
    captions = " ".join(c.value for c in at.caption)
    assert "no Greulich-Pyle SD for girls younger than 3 months" in captions
    assert "give the current height" in captions


def test_patient_id_and_accession_prefilled_from_dicom(app_model):
    at = page("pages/predict.py").run()
    upload(at, "hand.dcm", _dicom_from(SAMPLE, PatientSex="F", PatientBirthDate="20140115", StudyDate="20250301",
                                       PatientID="MRN-77", AccessionNumber="ACC-12"), mime="application/dicom")
    no_exception(at)
    assert by_label(at.text_input, "Patient ID").value == "MRN-77"
    assert by_label(at.text_input, "Accession number").value == "ACC-12"


# ------------------------------------------------------------------ Follow-up page
def _follow_up_page_with_two_dicoms():
    at = page("pages/follow_up.py").run()
    first = _dicom_from(SAMPLE, PatientSex="F", PatientBirthDate="20120301", StudyDate="20210301")
    second = _dicom_from(OTHER, PatientSex="F", PatientBirthDate="20120301", StudyDate="20230901")
    at.file_uploader(key="fu_upload").set_value([("first.dcm", first, "application/dicom"),
                                                 ("second.dcm", second, "application/dicom")])
    return at.run()


def test_follow_up_page_waits_for_uploads(app_model):
    at = page("pages/follow_up.py").run()
    no_exception(at)
    assert any("two or more radiographs" in i.value for i in at.info)


def test_follow_up_page_gives_velocity_chart_and_downloads(app_model):
    at = _follow_up_page_with_two_dicoms()
    no_exception(at)
    assert not errors(at), errors(at)
    m = metrics(at)
    assert m["Visits"] == "2" and m["Over"] == "2 years 6 months"
    assert "±" in m["Velocity (bone-age y per y)"]
    assert any(i.value.startswith("2 visits over 2 years 6 months: bone-age velocity") for i in at.info)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    visits = next(t for t in chart if t.get("name") == "Visits (follow-up)")
    assert visits["x"] == pytest.approx([9.0, 11.5])
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download follow-up JSON" in labels and "Download PDF report (latest visit)" in labels


def test_follow_up_page_earlier_json_and_same_day_error(app_model):
    earlier = {"file": "old.png", "sex": "F", "bone_age_months": 100.0, "chronological_age_months": 108.0,
               "study_date": "2021-03-01", "uncertainty_months": 14.5}
    at = page("pages/follow_up.py").run()
    at.file_uploader(key="fu_upload").set_value(
        [("second.dcm", _dicom_from(OTHER, PatientSex="F", PatientBirthDate="20120301", StudyDate="20230901"),
          "application/dicom")])
    at.file_uploader(key="fu_earlier").set_value([("old.json", json.dumps(earlier).encode(), "application/json")])
    at.run()
    no_exception(at)
    assert not errors(at), errors(at)
    assert metrics(at)["Visits"] == "2"
    # The same study date twice is nonsense: one line, no velocity.
    earlier["study_date"], earlier["chronological_age_months"] = "2023-09-01", 138.0
    at.file_uploader(key="fu_earlier").set_value([("old.json", json.dumps(earlier).encode(), "application/json")])
    at.run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("Follow-up:") and "same day" in errs[0], errs
    assert "Visits" not in metrics(at)


def test_follow_up_page_bad_json_is_named(app_model):
    at = page("pages/follow_up.py").run()
    at.file_uploader(key="fu_earlier").set_value([("old.json", b"{not json", "application/json")])
    at.run()
    no_exception(at)
    errs = errors(at)
    assert errs and "old.json" in errs[0] and "not JSON" in errs[0]
