"""boneage.clinical against reference values from the published tables.

Greulich & Pyle 1959 (Brush Foundation SD of skeletal age) and Bayley & Pinneau
1952 (percentage of mature height); worked B-P examples are entries of the
printed predicted-height tables (inches), which equal height / percentage.
"""
from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pytest

from boneage.clinical import (
    BP_TABLES,
    ClinicalInputError,
    ClinicalInterpretation,
    bayley_pinneau,
    bp_table,
    bp_table_choice,
    chronological_age_months,
    gp_reference,
    gp_sd,
    interpret,
    mid_parental_height,
    normalise_sex,
)

TODAY = date(2026, 11, 27)
INCH = 2.54


# ------------------------------------------------------------------ G-P tables
@pytest.mark.parametrize("sex, age, sd", [
    ("M", 3, 0.69), ("M", 12, 1.97), ("M", 60, 8.79), ("M", 120, 9.79), ("M", 156, 10.44),
    ("M", 204, 13.05),
    ("F", 3, 0.72), ("F", 54, 10.73), ("F", 120, 11.73), ("F", 144, 10.24), ("F", 180, 9.23),
    ("F", 192, 7.31),
])
def test_gp_sd_reproduces_table_entries(sex, age, sd):
    assert gp_sd(age, sex) == pytest.approx(sd, abs=1e-12)


@pytest.mark.parametrize("sex, age, expected", [
    ("M", 51, (6.66 + 8.36) / 2),     # 4 y .. 4.5 y
    ("M", 198, (12.86 + 13.05) / 2),  # 16 y .. 17 y
    ("F", 126, (11.73 + 11.94) / 2),  # 10 y .. 11 y
    ("F", 15, (1.77 + 3.49) / 2),     # 12 mo .. 18 mo
])
def test_gp_sd_interpolates_linearly_at_midpoints(sex, age, expected):
    assert gp_sd(age, sex) == pytest.approx(expected, abs=1e-12)


def test_gp_reference_shape_and_entries():
    boys, girls = gp_reference("M"), gp_reference("F")
    assert list(boys.columns) == ["ages_months", "mean_months", "sd_months"]
    assert len(boys) == 24 and len(girls) == 23  # boys to 17 y, girls to 16 y
    assert boys["ages_months"].iloc[0] == 3 and boys["ages_months"].iloc[-1] == 204
    assert girls["ages_months"].iloc[-1] == 192
    row = boys.set_index("ages_months").loc[72]
    assert (row["mean_months"], row["sd_months"]) == (75.46, 9.17)
    row = girls.set_index("ages_months").loc[120]
    assert (row["mean_months"], row["sd_months"]) == (125.66, 11.73)
    for ref in (boys, girls):
        assert np.all(np.diff(ref["ages_months"]) > 0)
        assert np.all(np.diff(ref["mean_months"]) > 0)
        assert np.all(ref["sd_months"] > 0)
        # The mean is near, but not, the identity: up to 6.5 months apart (girls, 6 y).
        assert 5.0 < np.max(np.abs(boys["mean_months"] - boys["ages_months"])) < 6.5
        assert np.max(np.abs(ref["mean_months"] - ref["ages_months"])) <= 6.5 + 1e-9


@pytest.mark.parametrize("sex, age", [("M", 2.99), ("M", 204.01), ("F", 192.01), ("F", -1)])
def test_gp_sd_refuses_outside_table(sex, age):
    with pytest.raises(ClinicalInputError, match="outside"):
        gp_sd(age, sex)


# ---------------------------------------------------------------- Z and status
def test_worked_example_girl_10y_ba_143_5_is_plus_2_sd():
    r = interpret(143.5, "F", chronological_age_months=120)
    assert r.z_score == pytest.approx(23.5 / 11.73)
    assert r.z_score == pytest.approx(2.0, abs=0.01)
    assert r.percentile == pytest.approx(97.74, abs=0.01)
    assert r.status == "advanced"
    assert r.bone_age_minus_chronological_months == pytest.approx(23.5)


def test_status_thresholds_are_strictly_beyond_two_sd():
    sd = 9.79  # boys, 10 y
    assert interpret(120 - 2 * sd - 0.01, "M", chronological_age_months=120).status == "delayed"
    assert interpret(120 - 2 * sd + 0.01, "M", chronological_age_months=120).status == "normal"
    assert interpret(120 + 2 * sd - 0.01, "M", chronological_age_months=120).status == "normal"
    assert interpret(120 + 2 * sd + 0.01, "M", chronological_age_months=120).status == "advanced"


def test_normal_child_on_identity():
    r = interpret(96, "M", chronological_age_months=96)
    assert (r.z_score, r.percentile, r.status) == (0.0, 50.0, "normal")


def test_interpolated_sd_used_between_ages():
    r = interpret(126 + 11.835, "F", chronological_age_months=126)
    assert r.z_score == pytest.approx(1.0)


@pytest.mark.parametrize("sex, ca, ba", [("M", 3, 3), ("M", 204, 204), ("F", 3, 3), ("F", 192, 200)])
def test_status_defined_at_table_edges(sex, ca, ba):
    r = interpret(ba, sex, chronological_age_months=ca)
    assert r.status in {"normal", "advanced", "delayed"} and r.z_score is not None


@pytest.mark.parametrize("sex, ca, edge", [("M", 2.5, "younger than 3 months"), ("M", 205, "older than 17 years 0 months"),
                                           ("F", 193, "older than 16 years 0 months"), ("F", 0, "younger than 3 months")])
def test_indeterminate_outside_reference_ages_without_a_number(sex, ca, edge):
    r = interpret(100, sex, chronological_age_months=ca)
    assert r.status == "indeterminate"
    assert r.z_score is None and r.percentile is None and r.z_score_lower_bound is None
    assert f"no Greulich-Pyle SD for {'boys' if sex == 'M' else 'girls'} {edge}" in r.status_reason
    assert r.bone_age_minus_chronological_months == pytest.approx(100 - ca)
    assert r.to_dict()["percentile_text"] is None


def test_past_the_sd_table_the_statement_says_what_is_still_known():
    """Girl of 17 (the SD table ends at 16 y) with a mature skeleton: no Z, but the
    gap, the maturity and the last tabulated SD are still facts."""
    r = interpret(216, "F", chronological_age_months=204)
    assert r.status == "indeterminate" and r.z_score is None
    assert "the skeleton is mature" in r.status_reason
    assert "at 16 years 0 months, the table's last age, 2 SD was 14.6 months" in r.status_reason  # 2 x 7.31
    assert "1 year 0 months ahead of chronological age" in r.summary()
    assert r.status_reason in r.summary()


@pytest.mark.parametrize("sex, ba, ca, sd", [("F", 216, 180, 9.23), ("F", 220, 120, 11.73),
                                             ("M", 228, 180, 11.32), ("M", 235, 96, 9.10)])
def test_bone_age_beyond_the_atlas_in_a_younger_child_is_advanced_with_a_lower_bound(sex, ba, ca, sd):
    r = interpret(ba, sex, chronological_age_months=ca)
    mature = 216 if sex == "F" else 228
    assert r.status == "advanced" and r.z_score is None and r.percentile is None
    assert r.z_score_lower_bound == pytest.approx((mature - ca) / sd)
    assert "lower bound" in r.status_reason
    assert r.z_text.startswith(">= +") and r.z_text in r.summary()
    assert r.to_dict()["z_score_lower_bound"] == round((mature - ca) / sd, 3)


def test_issue_example_girl_of_10_with_bone_age_18_is_advanced_not_indeterminate():
    just_below = interpret(215, "F", chronological_age_months=120)  # 17 y 11 m
    at_atlas_end = interpret(216, "F", chronological_age_months=120)  # 18 y 0 m
    assert just_below.status == at_atlas_end.status == "advanced"
    assert just_below.z_score == pytest.approx(8.1, abs=0.01)
    assert at_atlas_end.z_score_lower_bound == pytest.approx(96 / 11.73)
    assert at_atlas_end.z_score_lower_bound > just_below.z_score


def test_lower_bound_within_two_sd_does_not_claim_a_status():
    # Boy of 17 (SD 13.05) at bone age 19 y: Z >= +1.84 could be normal or advanced.
    r = interpret(228, "M", chronological_age_months=204)
    assert r.status == "indeterminate"
    assert r.z_score_lower_bound == pytest.approx(24 / 13.05)
    assert "normal or advanced cannot be told" in r.status_reason


def test_just_below_maturity_is_still_scored():
    r = interpret(215.9, "F", chronological_age_months=190)
    assert r.status != "indeterminate"


def test_no_chronological_age_is_indeterminate():
    r = interpret(130, "male")
    assert r.status == "indeterminate" and r.status_reason == "no chronological age given"
    assert r.chronological_age_months is None and r.bone_age_minus_chronological_months is None
    assert "no chronological age" in r.summary()


# ---------------------------------------------------------- chronological age
@pytest.mark.parametrize("birth, study, months", [
    (date(2010, 3, 15), date(2020, 3, 15), 120.0),
    (date(2010, 3, 15), date(2020, 4, 1), 120 + 17 / 31),  # 15 Mar -> 15 Apr is 31 days
    (date(2010, 3, 15), date(2020, 3, 14), 119 + 28 / 29),  # 15 Feb 2020 -> 15 Mar: 29 days
    (date(2015, 1, 31), date(2015, 2, 28), 1.0),  # month-end clamps
    (date(2012, 2, 29), date(2013, 2, 28), 12.0),  # leap-day birthday
    (date(2020, 5, 5), date(2020, 5, 5), 0.0),
])
def test_chronological_age_exact_calendar(birth, study, months):
    assert chronological_age_months(birth, study, today=TODAY) == pytest.approx(months, abs=1e-12)


def test_interpret_with_dates_matches_direct_age():
    by_dates = interpret(143.5, "F", birth_date=date(2010, 3, 15), study_date=date(2020, 3, 15))
    assert by_dates.chronological_age_months == 120.0
    assert by_dates.z_score == pytest.approx(interpret(143.5, "F", chronological_age_months=120).z_score)
    # Consistent direct age is accepted; inconsistent is an error.
    interpret(143.5, "F", chronological_age_months=120.4, birth_date=date(2010, 3, 15),
              study_date=date(2020, 3, 15))
    with pytest.raises(ClinicalInputError, match="disagrees"):
        interpret(143.5, "F", chronological_age_months=130, birth_date=date(2010, 3, 15),
                  study_date=date(2020, 3, 15))


@pytest.mark.parametrize("birth, study, match", [
    (date(2015, 6, 1), date(2015, 5, 31), "before birth"),
    (date(2015, 6, 1), date(2027, 1, 1), "future"),
    (date(2027, 1, 1), date(2027, 2, 1), "future"),
    (date(2000, 1, 1), date(2021, 1, 1), "beyond 20 years"),
])
def test_invalid_dates_raise_clear_errors(birth, study, match):
    with pytest.raises(ClinicalInputError, match=match):
        chronological_age_months(birth, study, today=TODAY)


def test_one_date_alone_is_an_error():
    with pytest.raises(ClinicalInputError, match="study date missing"):
        interpret(100, "M", birth_date=date(2015, 1, 1))


@pytest.mark.parametrize("ca", [-1, 240.5, 300, float("nan"), float("inf")])
def test_invalid_direct_chronological_age(ca):
    with pytest.raises(ClinicalInputError):
        interpret(100, "M", chronological_age_months=ca)


@pytest.mark.parametrize("ba", [-0.5, 241, float("nan")])
def test_invalid_bone_age(ba):
    with pytest.raises(ClinicalInputError, match="bone age"):
        interpret(ba, "M", chronological_age_months=100)


@pytest.mark.parametrize("sex, want", [("M", "M"), ("f", "F"), ("Male", "M"), ("FEMALE", "F")])
def test_sex_aliases(sex, want):
    assert normalise_sex(sex) == want


@pytest.mark.parametrize("sex", ["X", "", "unknown", None, 2, 0.5])
def test_bad_sex_is_an_error(sex):
    with pytest.raises(ClinicalInputError, match="sex"):
        interpret(100, sex, chronological_age_months=100)


def test_error_messages_are_one_line():
    for call in (lambda: chronological_age_months(date(2015, 6, 1), date(2015, 5, 1), today=TODAY),
                 lambda: interpret(100, "M", chronological_age_months=100, height_cm=-3),
                 lambda: interpret(100, "Q")):
        with pytest.raises(ClinicalInputError) as e:
            call()
        assert "\n" not in str(e.value) and str(e.value)


# -------------------------------------------------------------- Bayley-Pinneau
@pytest.mark.parametrize("sex, table", [(s, t) for s in ("M", "F") for t in BP_TABLES])
def test_bp_tables_monotone_and_bounded(sex, table):
    ages, pct = bp_table(sex, table)
    assert np.all(np.diff(ages) > 0), "bone ages strictly increasing"
    assert np.all(np.diff(pct) >= 0), "percentage of mature height never falls with bone age"
    assert 60 < pct[0] and pct[-1] <= 100.0


def test_bp_tables_ordered_accelerated_average_retarded():
    """At one bone age, early maturers have grown the least of their adult height."""
    for sex in ("M", "F"):
        tabs = {t: bp_table(sex, t) for t in BP_TABLES}
        lo = max(a[0] for a, _ in tabs.values())
        hi = min(a[-1] for a, _ in tabs.values())
        for ba in np.arange(lo, hi + 0.1, 3.0):
            acc, avg, ret = (np.interp(ba, *tabs[t]) for t in ("accelerated", "average", "delayed"))
            assert acc <= avg <= ret, (sex, ba)


@pytest.mark.parametrize("sex, table, y, m, pct", [
    ("M", "average", 7, 0, 69.5), ("M", "average", 13, 0, 87.6), ("M", "average", 18, 6, 100.0),
    ("M", "accelerated", 11, 6, 78.6), ("M", "delayed", 6, 0, 68.0), ("M", "delayed", 13, 0, 88.0),
    ("F", "average", 8, 10, 82.1), ("F", "average", 12, 0, 92.2), ("F", "accelerated", 11, 3, 88.7),
    ("F", "accelerated", 13, 6, 96.3), ("F", "delayed", 11, 0, 91.8), ("F", "delayed", 17, 0, 100.0),
    # The corrections of issue #12, column ages as printed in the scan of [BP52]:
    ("F", "average", 6, 10, 75.1), ("F", "average", 7, 10, 78.2), ("F", "accelerated", 7, 10, 74.2),
    ("F", "accelerated", 17, 6, 99.95), ("M", "accelerated", 17, 0, 99.0),
])
def test_bp_table_entries(sex, table, y, m, pct):
    ages, p = bp_table(sex, table)
    assert p[list(ages).index(12 * y + m)] == pct


# Entries of the printed predicted-adult-height tables: (sex, table, bone age
# y-m, current height in, predicted adult height in).
BP_WORKED = [
    ("M", "average", (7, 0), 50, 71.9),
    ("M", "average", (13, 0), 60, 68.5),
    ("M", "average", (15, 0), 78, 80.6),
    ("M", "accelerated", (7, 0), 48, 71.6),
    ("M", "accelerated", (14, 0), 70, 77.3),
    ("M", "delayed", (7, 0), 55, 76.6),
    ("F", "average", (12, 0), 51, 55.3),
    ("F", "average", (8, 10), 46, 56.0),
    ("F", "accelerated", (7, 0), 41, 57.6),
    ("F", "accelerated", (13, 0), 51, 54.0),
    ("F", "delayed", (11, 0), 60, 65.4),
    ("F", "delayed", (6, 0), 45, 61.4),
]


@pytest.mark.parametrize("sex, table, ba, height_in, adult_in", BP_WORKED)
def test_bp_worked_examples_from_printed_tables(sex, table, ba, height_in, adult_in):
    ba_m = 12 * ba[0] + ba[1]
    ca = {"average": ba_m, "accelerated": ba_m - 18, "delayed": ba_m + 18}[table]
    pred, note, used = bayley_pinneau(height_in * INCH, ba_m, ca, sex)
    assert used == table and note is None
    assert pred / INCH == pytest.approx(adult_in, abs=0.051)  # table printed to 0.1 in


def test_bp_interpolates_linearly_between_columns():
    # Boys average 10-0 (78.4 %) and 10-3 (79.1 %): at 10-1.5 the percentage is 78.75.
    pred, _, _ = bayley_pinneau(140.0, 121.5, 121.5, "M")
    assert pred == pytest.approx(140.0 / 0.7875)


@pytest.mark.parametrize("ba, ca, table", [
    (144.0, 132.0, "accelerated"),   # exactly +1 y
    (143.99, 132.0, "average"),
    (120.0, 132.0, "delayed"),       # exactly -1 y
    (120.01, 132.0, "average"),
    (132.0, 132.0, "average"),
    (150.3, 138.3, "accelerated"),   # float subtraction lands on 12.000000000000014
])
def test_bp_table_choice_at_one_year_boundaries(ba, ca, table):
    assert bp_table_choice(ba, ca) == table
    r = interpret(ba, "F", chronological_age_months=ca, height_cm=140)
    assert r.bp_table == table and r.predicted_adult_height_cm is not None


@pytest.mark.parametrize("sex, ba, ca, table", [
    ("M", 83.9, 83.9, "average"),      # average boys start at 7-0
    ("M", 222.5, 220, "average"),      # ... and end at 18-6
    ("M", 71.9, 90, "delayed"),        # delayed boys start at 6-0
    ("M", 222.6, 240, "average"),      # delayed past 13-0: the average table, which ends at 18-6
    ("M", 204.1, 180, "accelerated"),  # accelerated boys end at 17-0 (as printed)
    ("F", 71, 71, "average"),          # average girls start at 6-0
    ("F", 83, 70, "accelerated"),      # accelerated girls start at 7-0
])
def test_bp_outside_table_gives_no_prediction_with_reason(sex, ba, ca, table):
    pred, note, used = bayley_pinneau(150.0, ba, ca, sex)
    assert pred is None and used == bp_table_choice(ba, ca)
    assert "outside the Bayley-Pinneau" in note and f"{table} table" in note
    r = interpret(ba, sex, chronological_age_months=ca, height_cm=150.0)
    assert r.predicted_adult_height_cm is None and r.adult_height_note == note
    assert r.to_dict()["predicted_adult_height_cm"] is None


@pytest.mark.parametrize("sex, ba, pct", [("M", 84, 69.5), ("M", 222, 100.0), ("F", 216, 100.0),
                                          ("F", 72, 72.0)])
def test_bp_at_table_edges(sex, ba, pct):
    pred, note, _ = bayley_pinneau(150.0, ba, ba, sex)
    assert note is None and pred == pytest.approx(150.0 / (pct / 100))


def test_bp_needs_chronological_age_and_height():
    assert bayley_pinneau(None, 120, 120, "M") == (None, "no height given", None)
    pred, note, table = bayley_pinneau(140, 120, None, "M")
    assert pred is None and table is None and "chronological age" in note
    r = interpret(120, "M", height_cm=140)
    assert r.predicted_adult_height_cm is None and r.adult_height_note == note


@pytest.mark.parametrize("height", [-150, 0, 20, 1500, 999.0, float("nan"), float("inf")])
def test_bp_rejects_absurd_heights(height):
    with pytest.raises(ClinicalInputError, match="height"):
        bayley_pinneau(height, 120, 120, "M")
    with pytest.raises(ClinicalInputError, match="height"):
        interpret(120, "M", chronological_age_months=120, height_cm=height)


# ----------------------------------------------------------------- output shape
OUTPUT_FIELDS = {"chronological_age_months", "bone_age_minus_chronological_months", "z_score",
                 "percentile", "status", "predicted_adult_height_cm", "adult_height_note", "bp_table",
                 "method"}


def test_to_dict_has_the_documented_fields_and_is_json():
    r = interpret(143.5, "F", chronological_age_months=120, height_cm=140.0)
    d = r.to_dict()
    assert OUTPUT_FIELDS <= set(d)
    assert d["method"] == "Greulich-Pyle" and d["status"] == "advanced"
    assert d["bp_table"] == "accelerated"
    # Girls accelerated 11-9 (89.7 %) .. 12-0 (90.1 %); 11 y 11.5 m is 5/6 of the way.
    assert d["predicted_adult_height_cm"] == pytest.approx(140.0 / (0.897 + 0.004 * 5 / 6), abs=0.05)
    assert json.loads(json.dumps(d)) == d


def test_summary_is_a_few_plain_sentences():
    r = interpret(143.5, "F", chronological_age_months=120, height_cm=140.0)
    text = r.summary()
    n = text.count(". ") + 1
    assert 2 <= n <= 4, text
    assert "advanced" in text and "+2.00" in text and "cm" in text
    assert isinstance(r, ClinicalInterpretation)


def test_extreme_percentiles_are_not_rounded_to_zero():
    r = interpret(100, "M", chronological_age_months=150)
    assert r.percentile < 0.1 and "percentile <0.1" in r.summary()


def test_no_wrong_number_when_indeterminate():
    d = interpret(230, "M", chronological_age_months=210, height_cm=175).to_dict()
    assert d["status"] == "indeterminate"
    assert d["z_score"] is None and d["percentile"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in d.values())


# ------------------------------------------- issue #12: the paper's own examples
def _ym(y: int, m: int) -> float:
    return 12.0 * y + m


@pytest.mark.parametrize("sex, ca, ba, height_in, table, adult_in", [
    # Bayley & Pinneau 1952, worked examples in the text (heights in inches).
    ("M", _ym(13, 3), _ym(13, 3), 60.0, "average", 67.4),
    ("M", _ym(13, 3), _ym(13, 3), 51.5, "average", 57.9),
    ("M", _ym(14, 0), _ym(15, 6), 67.5, "accelerated", 69.5),
    ("F", _ym(12, 0), _ym(10, 3), 55.0, "delayed", 62.2),
])
def test_bayley_pinneau_worked_examples_of_the_paper(sex, ca, ba, height_in, table, adult_in):
    r = interpret(ba, sex, chronological_age_months=ca, height_cm=height_in * INCH)
    assert r.bp_table == table and r.adult_height_note is None
    assert r.predicted_adult_height_cm / INCH == pytest.approx(adult_in, abs=0.05)


def test_girl_of_bone_age_6y9m_uses_the_printed_6y10m_column():
    """120 cm girl, bone age 6 y 9 m: 3/4 of the way from 6-6 (73.8 %) to 6-10 (75.1 %)."""
    pred, note, table = bayley_pinneau(120.0, _ym(6, 9), _ym(6, 9), "F")
    assert table == "average" and note is None
    assert pred == pytest.approx(120.0 / (0.738 + 0.013 * 3 / 4))
    assert round(pred, 1) == 160.5  # 159.8 with the mislabelled 6-9 column


def test_constitutionally_delayed_boy_past_13_gets_the_average_table_with_a_note():
    """Boy of 15, bone age 13 y 6 m, 150 cm: the commonest use of the method."""
    r = interpret(_ym(13, 6), "M", chronological_age_months=180, height_cm=150.0)
    assert bp_table_choice(_ym(13, 6), 180) == "delayed"
    assert r.bp_table == "average"
    assert r.predicted_adult_height_cm == pytest.approx(150.0 / 0.902)  # average 13-6: 90.2 %
    assert "delayed table ends at 13 years 0 months" in r.adult_height_note
    assert "88.0% against the average's 87.6%" in r.adult_height_note
    assert r.adult_height_note in r.summary() and "166.3 cm" in r.summary()
    # At 13-0 itself the delayed table still applies.
    assert interpret(156, "M", chronological_age_months=180, height_cm=150.0).bp_table == "delayed"


def test_user_facing_text_says_delayed_not_the_papers_word():
    for ba, ca in ((100, 150), (156, 180), (_ym(13, 6), 180), (71, 90)):
        r = interpret(ba, "M", chronological_age_months=ca, height_cm=140.0)
        assert "retard" not in r.summary().lower() and "retard" not in json.dumps(r.to_dict())


# ------------------------------------------------ exact percentile in the JSON
def test_percentile_is_exact_in_json_with_a_display_string():
    r = interpret(100, "M", chronological_age_months=150)  # Z = -4.80
    d = r.to_dict()
    assert 0 < d["percentile"] < 1e-3  # exact, not rounded to 0.0
    assert d["percentile"] == pytest.approx(50 * math.erfc(4.803 / math.sqrt(2)), rel=1e-3)
    assert d["percentile_text"] == "<0.1"
    hi = interpret(215, "F", chronological_age_months=120).to_dict()  # Z = +8.1
    assert hi["percentile_text"] == ">99.9" and hi["percentile"] <= 100.0
    mid = interpret(143.5, "F", chronological_age_months=120).to_dict()
    assert mid["percentile_text"] == "97.7" and mid["percentile"] == pytest.approx(97.7433, abs=1e-3)  # Z = 23.5 / 11.73


# --------------------------------------------------- mid-parental target height
@pytest.mark.parametrize("sex, father, mother, target", [
    ("M", 180.0, 165.0, 179.0),   # (180 + 165 + 13) / 2
    ("F", 180.0, 165.0, 166.0),   # (180 + 165 - 13) / 2
    ("M", 170.0, 160.0, 171.5),
    ("F", 175.5, 158.5, 160.5),
])
def test_mid_parental_target_height_tanner(sex, father, mother, target):
    t = mid_parental_height(father, mother, sex)
    assert t.target_cm == pytest.approx(target)
    assert t.range_cm == pytest.approx((target - 8.5, target + 8.5))
    r = interpret(130, sex, chronological_age_months=130, father_height_cm=father, mother_height_cm=mother)
    assert r.target_height_cm == pytest.approx(target)
    assert r.to_dict()["target_height_range_cm"] == [round(target - 8.5, 1), round(target + 8.5, 1)]
    assert f"Mid-parental target height {target:.1f} cm" in r.summary()


@pytest.mark.parametrize("height, where", [(150.0, "below"), (166.0, "within"), (180.0, "above")])
def test_predicted_adult_height_compared_with_target(height, where):
    # Girl, average table at bone age 12 y 0 m (92.2 %); target 166 (157.5-174.5).
    ba = 144.0
    child = height * 0.922
    r = interpret(ba, "F", chronological_age_months=ba, height_cm=child,
                  father_height_cm=180, mother_height_cm=165)
    assert r.predicted_adult_height_cm == pytest.approx(height)
    assert r.adult_vs_target == where
    assert where in r.target_comparison and r.target_comparison in r.summary()
    d = r.to_dict()
    assert d["adult_vs_target"] == where and d["target_comparison"] == r.target_comparison


@pytest.mark.parametrize("father, mother, match", [
    (-175, 165, "father's height must be positive"),
    (175, 300, "mother's height 300 cm is not plausible for an adult"),
    (1750, 165, "father's height 1750 cm is not plausible"),
    (69, 64, "not plausible"),                         # inches
    (175, None, "mother's height missing"),
    (None, 160, "father's height missing"),
    (float("nan"), 160, "father's height must be a number"),
    ("tall", 160, "father's height must be a number"),
])
def test_parent_heights_are_validated_with_one_line(father, mother, match):
    with pytest.raises(ClinicalInputError, match=match) as e:
        interpret(130, "M", chronological_age_months=130, father_height_cm=father, mother_height_cm=mother)
    assert "\n" not in str(e.value)


def test_no_target_without_parents():
    r = interpret(130, "M", chronological_age_months=130, height_cm=140)
    assert r.target_height_cm is None and r.target_comparison is None and "target" not in r.summary()
