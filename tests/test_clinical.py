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


@pytest.mark.parametrize("sex, ca", [("M", 2.5), ("M", 205), ("F", 193), ("F", 0)])
def test_indeterminate_outside_reference_ages_without_a_number(sex, ca):
    r = interpret(100, sex, chronological_age_months=ca)
    assert r.status == "indeterminate"
    assert r.z_score is None and r.percentile is None
    assert "outside the Greulich-Pyle reference" in r.status_reason
    assert r.bone_age_minus_chronological_months == pytest.approx(100 - ca)


@pytest.mark.parametrize("sex, ba", [("F", 216), ("F", 220), ("M", 228), ("M", 235)])
def test_indeterminate_at_skeletal_maturity(sex, ba):
    r = interpret(ba, sex, chronological_age_months=180)
    assert r.status == "indeterminate" and r.z_score is None
    assert "maturity" in r.status_reason


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


@pytest.mark.parametrize("sex", ["X", "", "unknown", None, 1])
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
            acc, avg, ret = (np.interp(ba, *tabs[t]) for t in ("accelerated", "average", "retarded"))
            assert acc <= avg <= ret, (sex, ba)


@pytest.mark.parametrize("sex, table, y, m, pct", [
    ("M", "average", 7, 0, 69.5), ("M", "average", 13, 0, 87.6), ("M", "average", 18, 6, 100.0),
    ("M", "accelerated", 11, 6, 78.6), ("M", "retarded", 6, 0, 68.0), ("M", "retarded", 13, 0, 88.0),
    ("F", "average", 8, 10, 82.1), ("F", "average", 12, 0, 92.2), ("F", "accelerated", 11, 3, 88.7),
    ("F", "accelerated", 13, 6, 96.3), ("F", "retarded", 11, 0, 91.8), ("F", "retarded", 17, 0, 100.0),
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
    ("M", "retarded", (7, 0), 55, 76.6),
    ("F", "average", (12, 0), 51, 55.3),
    ("F", "average", (8, 10), 46, 56.0),
    ("F", "accelerated", (7, 0), 41, 57.6),
    ("F", "accelerated", (13, 0), 51, 54.0),
    ("F", "retarded", (11, 0), 60, 65.4),
    ("F", "retarded", (6, 0), 45, 61.4),
]


@pytest.mark.parametrize("sex, table, ba, height_in, adult_in", BP_WORKED)
def test_bp_worked_examples_from_printed_tables(sex, table, ba, height_in, adult_in):
    ba_m = 12 * ba[0] + ba[1]
    ca = {"average": ba_m, "accelerated": ba_m - 18, "retarded": ba_m + 18}[table]
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
    (120.0, 132.0, "retarded"),      # exactly -1 y
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
    ("M", 157, 180, "retarded"),       # retarded boys end at 13-0
    ("M", 71.9, 90, "retarded"),       # ... and start at 6-0
    ("M", 202, 180, "accelerated"),    # accelerated boys end at 16-9
    ("F", 71, 71, "average"),          # average girls start at 6-0
    ("F", 83, 70, "accelerated"),      # accelerated girls start at 7-0
])
def test_bp_outside_table_gives_no_prediction_with_reason(sex, ba, ca, table):
    pred, note, used = bayley_pinneau(150.0, ba, ca, sex)
    assert pred is None and used == table
    assert "outside the Bayley-Pinneau" in note and table in note
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


# ----------------------------------------------------------------------------- uncertainty (issue 10)


def test_interval_gives_z_range_and_straddling_status():
    from boneage.clinical import gp_sd, interpret

    sd = gp_sd(120.0, "F")
    r = interpret(134.0, "F", chronological_age_months=120.0, bone_age_interval_months=(112.0, 160.0))
    assert r.status == "normal"  # the point estimate alone
    assert r.z_range == pytest.approx(((112 - 120) / sd, (160 - 120) / sd))
    assert r.status_range == "normal to advanced"
    assert "normal to advanced" in r.summary() and "Z" in r.summary()
    assert r.uncertainty_note and "cannot tell" in r.uncertainty_note  # ±24 months vs SD ≈ 11.7
    tight = interpret(121.0, "F", chronological_age_months=120.0, bone_age_interval_months=(118.0, 124.0))
    assert tight.status_range == "normal" and tight.uncertainty_note is None


def test_adult_height_as_a_range_over_the_interval():
    from boneage.clinical import interpret

    r = interpret(130.0, "M", chronological_age_months=132.0, height_cm=145.0, bone_age_interval_months=(118.0, 142.0))
    lo, hi = r.predicted_adult_height_range_cm
    assert lo <= r.predicted_adult_height_cm <= hi and hi - lo > 3  # B-P tables may switch inside the interval
    d = r.to_dict()
    assert d["predicted_adult_height_range_cm"] == [round(lo, 1), round(hi, 1)]
    assert f"{lo:.0f}-{hi:.0f} cm" in r.summary()


def test_without_interval_nothing_changes():
    from boneage.clinical import interpret

    r = interpret(134.0, "F", chronological_age_months=120.0)
    assert r.z_range is None and r.status_range is None and r.uncertainty_note is None
