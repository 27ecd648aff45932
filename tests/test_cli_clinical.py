"""``boneage predict`` clinical options: parents' heights (target height) and follow-up visits.

Run in-process through ``boneage.cli.main`` (the same code the console script runs) so the model
loads once per call instead of once per subprocess start.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from boneage.cli import main

REPO = Path(__file__).resolve().parent.parent
HIRES = REPO / "tests" / "fixtures" / "hires"
A, B = str(HIRES / "1437.png"), str(HIRES / "2171.png")


def _run(capsys, *args) -> tuple[int, list[str], str]:
    rc = main(["predict", *args, "--tta", "1"])
    out, err = capsys.readouterr()
    return rc, [x for x in out.splitlines() if x.strip()], err


def _one_line_error(rc: int, err: str, needle: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("boneage: error:"), err
    assert needle in lines[0], lines[0]


def test_parents_heights_give_the_target_height(capsys):
    rc, out, err = _run(capsys, A, "--sex", "F", "--age-months", "130", "--height-cm", "145",
                        "--father-height-cm", "180", "--mother-height-cm", "165", "--json")
    assert rc == 0, err
    d = json.loads(out[0])
    assert d["target_height_cm"] == 166.0 and d["target_height_range_cm"] == [157.5, 174.5]
    assert d["father_height_cm"] == 180 and d["mother_height_cm"] == 165
    assert d["adult_vs_target"] in ("below", "within", "above") and d["target_comparison"]
    assert isinstance(d["percentile"], float) and d["percentile_text"]
    rc, out, _ = _run(capsys, A, "--sex", "M", "--age-months", "130", "--father-height-cm", "180",
                      "--mother-height-cm", "165")
    assert rc == 0 and "Mid-parental target height 179.0 cm (range 170.5-187.5 cm)" in out[1]


@pytest.mark.parametrize("args, needle", [
    (["--father-height-cm", "-170", "--mother-height-cm", "160"], "father's height must be positive"),
    (["--father-height-cm", "175", "--mother-height-cm", "300"], "mother's height 300 cm is not plausible"),
    (["--father-height-cm", "175"], "mother's height missing"),
    (["--study-date", "2020-01-01", "--study-date", "2021-01-01", "--study-date", "2022-01-01"],
     "--study-date given 3 times for 2 files"),
    (["--previous", "/nonexistent/earlier.jsonl"], "cannot read earlier results"),
])
def test_nonsense_clinical_options_fail_fast_with_one_line(capsys, args, needle):
    rc, out, err = _run(capsys, A, B, "--sex", "F", *args)
    _one_line_error(rc, err, needle)
    assert out == []  # refused before any reading


def test_several_files_of_one_child_give_the_bone_age_velocity(capsys, tmp_path):
    rc, out, err = _run(capsys, A, B, "--sex", "F", "--birth-date", "2012-03-01", "--study-date", "2021-03-01",
                        "--study-date", "2023-09-01", "--follow-up", "--json")
    assert rc == 0, err
    first, second, fu = (json.loads(x) for x in out)
    v = fu["follow_up"]
    assert [x["label"] for x in v["visits"]] == [A, B]
    assert [x["study_date"] for x in v["visits"]] == ["2021-03-01", "2023-09-01"]
    assert v["visits"][1]["chronological_age_months"] == 138.0
    want = (second["bone_age_months"] - first["bone_age_months"]) / (138.0 - 108.0)
    assert v["bone_age_velocity"] == pytest.approx(want, abs=0.01)
    assert v["bone_age_velocity_sd"] > 0 and "2 visits over 2 years 6 months" in v["summary"]

    # The same visits in text form, then the first reading reused as an earlier result.
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text(json.dumps(first) + "\n")
    rc, out, err = _run(capsys, B, "--sex", "F", "--birth-date", "2012-03-01", "--study-date", "2023-09-01",
                        "--previous", str(earlier))
    assert rc == 0, err
    assert out[-2].startswith("follow-up (girl): 2 visits over 2 years 6 months: bone-age velocity")
    assert f"{A} -> {B}: 30.0 months" in out[-1]


def test_visits_out_of_order_are_refused_with_one_line(capsys):
    rc, out, err = _run(capsys, A, B, "--sex", "F", "--birth-date", "2012-03-01", "--study-date", "2023-09-01",
                        "--study-date", "2021-03-01", "--follow-up")
    _one_line_error(rc, err, "give the visits in date order, oldest first")
    assert "follow-up:" in err


def test_follow_up_without_ages_keeps_the_readings_and_says_why(capsys):
    rc, out, err = _run(capsys, A, B, "--sex", "F", "--follow-up")
    assert rc == 2
    assert [x.split(":")[0] for x in out if not x.startswith(" ")] == [A, B]  # both bone ages shown
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(x.startswith("boneage: error:") for x in lines)
    assert "no chronological age, so it cannot be placed on the follow-up" in lines[0]
    assert lines[2] == "boneage: error: follow-up: follow-up needs at least two visits, got 0"
