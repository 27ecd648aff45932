"""boneage.followup: bone-age velocity over several visits of one child."""
from __future__ import annotations

import json
import math
from datetime import date

import pytest

from boneage.clinical import ClinicalInputError, interpret
from boneage.followup import (
    UNREADABLE_VELOCITY_SD,
    Visit,
    follow_up,
    one_child,
    parse_results,
    read_results,
    visit_from_record,
)


def test_two_visits_velocity_is_bone_age_change_over_time():
    f = follow_up([Visit(120, 110, label="a"), Visit(144, 140, label="b")], "F")
    assert f.velocity == pytest.approx(30 / 24)
    assert f.intervals[0].velocity == pytest.approx(1.25)
    assert f.intervals[0].months == 24 and f.intervals[0].bone_age_change_months == 30
    assert f.velocity_sd is None and "precision is unknown" in f.summary()
    assert "2 visits over 2 years 0 months" in f.summary() and "1.25" in f.summary()


def test_three_visits_velocity_is_the_least_squares_slope():
    vs = [Visit(100, 90, uncertainty_months=6), Visit(112, 104, uncertainty_months=6),
          Visit(136, 130, uncertainty_months=6)]
    f = follow_up(vs, "M")
    x, y = [100, 112, 136], [90, 104, 130]
    mx, my = sum(x) / 3, sum(y) / 3
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    assert f.velocity == pytest.approx(slope)
    sxx = sum((a - mx) ** 2 for a in x)
    assert f.velocity_sd == pytest.approx(6 / math.sqrt(sxx))  # equal sigmas: sigma / sqrt(Sxx)
    assert [i.velocity for i in f.intervals] == pytest.approx([14 / 12, 26 / 24])
    assert len(f.to_dict()["visits"]) == 3 and json.loads(json.dumps(f.to_dict()))


def test_two_visit_uncertainty_is_quadrature_over_interval():
    f = follow_up([Visit(120, 120, uncertainty_months=3), Visit(156, 170, uncertainty_months=4)], "M")
    assert f.velocity_sd == pytest.approx(5 / 36)
    assert f.intervals[0].velocity_sd == pytest.approx(5 / 36)
    assert f.velocity == pytest.approx(50 / 36)  # 1.39, more than 2 x 0.14 above 1
    assert "faster than the calendar" in f.summary()
    slow = follow_up([Visit(120, 120, uncertainty_months=3), Visit(156, 140, uncertainty_months=4)], "M")
    assert "slower than the calendar" in slow.summary()


def test_summary_refuses_to_read_a_velocity_drowned_in_reading_error():
    # The shipped model's ~14.5-month SD, one year apart: +/- 1.7 y/y.
    f = follow_up([Visit(120, 118, uncertainty_months=14.5), Visit(132, 133, uncertainty_months=14.5)], "F")
    assert f.velocity_sd == pytest.approx(math.sqrt(2) * 14.5 / 12)
    assert f.velocity_sd > UNREADABLE_VELOCITY_SD and "Too uncertain to read" in f.summary()


def test_keeping_pace_within_uncertainty():
    f = follow_up([Visit(60, 60, uncertainty_months=2), Visit(120, 121, uncertainty_months=2)], "M")
    assert "keeping pace" in f.summary()


@pytest.mark.parametrize("visits, match", [
    ([Visit(120, 110)], "at least two visits"),
    ([Visit(144, 140, label="b"), Visit(120, 110, label="a")], "visit 2 .*a.* is not later than visit 1"),
    ([Visit(120, 110, date(2021, 5, 1)), Visit(132, 120, date(2020, 5, 1))], "is before visit 1"),
    ([Visit(120, 110, date(2021, 5, 1)), Visit(132, 120, date(2021, 5, 1))], "same day"),
    ([Visit(120, 110), Visit(120, 112)], "not later"),
    ([Visit(None, 110), Visit(120, 112)], "no chronological age"),
    ([Visit(-5, 110), Visit(120, 112)], "cannot be negative"),
    ([Visit(100, 300), Visit(120, 112)], "not a bone age"),
    ([Visit(100, 100, uncertainty_months=-1), Visit(120, 112)], "uncertainty"),
])
def test_nonsense_visits_get_one_line_errors(visits, match):
    with pytest.raises(ClinicalInputError, match=match) as e:
        follow_up(visits, "F")
    assert "\n" not in str(e.value)


# ------------------------------------------------------------ earlier results
def _record(ba, ca, study, sex="F", **kw):
    r = interpret(ba, sex, chronological_age_months=ca).to_dict()
    r.update({"file": f"x{ba}.png", "uncertainty_months": 14.5, "study_date": study}, **kw)
    return r


def test_earlier_results_from_json_lines_list_and_object(tmp_path):
    lines = "\n".join(json.dumps(_record(b, c, s)) for b, c, s in
                      ((110, 120, "2020-01-10"), (130, 132, "2021-01-10")))
    p = tmp_path / "earlier.jsonl"
    p.write_text(lines + "\n")
    got = read_results(p)
    assert [v.bone_age_months for v, _ in got] == [110, 130]
    assert got[0][0].study_date == date(2020, 1, 10) and got[0][0].label == "x110.png"
    assert one_child(got) == "F"
    assert len(parse_results(json.dumps([_record(110, 120, None)]))) == 1
    assert len(parse_results(json.dumps(_record(110, 120, None)))) == 1
    f = follow_up([v for v, _ in got], "F")
    assert f.velocity == pytest.approx(20 / 12)


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("{not json", "not JSON"),
    (json.dumps({"chronological_age_months": 100}), "no bone_age_months"),
    (json.dumps({"bone_age_months": 100, "sex": "F"}), "no chronological age"),
    (json.dumps({"bone_age_months": 100, "chronological_age_months": 90, "sex": "X"}), "sex"),
    (json.dumps({"bone_age_months": 100, "chronological_age_months": 90, "sex": "F", "study_date": "May"}),
     "not a date"),
    (json.dumps({"visits": [], "sex": "F"}), "follow-up summary"),
    ("[]", "no results"),
])
def test_bad_earlier_results_are_one_line_errors(text, match):
    with pytest.raises(ClinicalInputError, match=match) as e:
        parse_results(text, "old.json")
    assert "\n" not in str(e.value)


def test_visits_of_both_sexes_are_two_children():
    a = visit_from_record(_record(110, 120, None))
    b = visit_from_record(_record(130, 132, None, sex="M"))
    with pytest.raises(ClinicalInputError, match="not of one child"):
        one_child([a, b])


def test_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(ClinicalInputError, match="cannot read"):
        read_results(tmp_path / "nope.jsonl")


def test_a_falling_bone_age_is_flagged_as_a_reading_problem():
    f = follow_up([Visit(120, 137, uncertainty_months=5, label="a"), Visit(149, 25, uncertainty_months=5, label="b")],
                  "F")
    assert "Check the readings: bone age fell by 112.0 months from a to b" in f.summary()
    small = follow_up([Visit(120, 137, uncertainty_months=5), Visit(132, 134, uncertainty_months=5)], "F")
    assert "Check the readings" not in small.summary()  # within the readings' error
