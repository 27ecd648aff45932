"""The one vocabulary for sex and ages: every spelling parses to one code, and every reader uses it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from boneage import vocab
from boneage.vocab import SexError, format_age, parse_sex

MALE_SPELLINGS = ["M", "m", " male ", "MALE", "boy", "Boys", True, np.bool_(True), 1, 1.0, "1", "1.0", "true", "T",
                  "yes"]
FEMALE_SPELLINGS = ["F", "f", "female", "Female", "girl", "GIRLS", False, np.bool_(False), 0, 0.0, "0", "0.0",
                    "false", "no"]


@pytest.mark.parametrize("value", MALE_SPELLINGS)
def test_every_male_spelling(value):
    assert parse_sex(value) == "M"


@pytest.mark.parametrize("value", FEMALE_SPELLINGS)
def test_every_female_spelling(value):
    assert parse_sex(value) == "F"


@pytest.mark.parametrize("value", ["X", "O", "", "unknown", None, 2, 0.5, float("nan"), "maleish"])
def test_anything_else_is_a_one_line_error(value):
    with pytest.raises(SexError, match="sex must be") as e:
        parse_sex(value)
    assert "\n" not in str(e.value)
    assert vocab.sex_or_none(value) is None


def test_optional_sex_means_not_given():
    assert vocab.parse_optional_sex(None) is None
    assert vocab.parse_optional_sex("  ") is None
    assert vocab.parse_optional_sex(float("nan")) is None
    assert vocab.parse_optional_sex("girl") == "F"
    with pytest.raises(SexError):
        vocab.parse_optional_sex("X")


def test_one_model_encoding_and_one_word():
    assert vocab.model_input("M") == 1.0 and vocab.model_input("female") == 0.0
    assert vocab.from_male(True) == "M" and vocab.from_male(np.bool_(False)) == "F"
    assert [vocab.sex_word(s) for s in "FM"] == ["girl", "boy"]
    assert [vocab.sex_word(s, plural=True) for s in "FM"] == ["girls", "boys"]
    assert [vocab.sex_label(s) for s in vocab.SEX_CODES] == list(vocab.SEX_LABELS) == ["female", "male"]


@pytest.mark.parametrize("months, text", [(0, "0 months"), (143.5, "12 years 0 months"), (120, "10 years 0 months"),
                                          (11.96, "1 year 0 months"), (-13, "-1 year 1 month"), (12.1, "1 year 0 months"),
                                          (0.1, "0.1 months"), (1, "1 month"), (5, "5 months"), (11.94, "11.9 months"),
                                          (142.5, "11 years 11 months"), (25, "2 years 1 month")])
def test_the_one_age_formatter(months, text):
    assert format_age(months) == text


def test_every_reader_uses_the_vocabulary(tmp_path):
    """labels.csv, the predictions CSV and the clinical layer accept the same spellings."""
    from boneage import clinical, metrics
    from boneage.data import read_labels

    spellings = ["M", "female", "True", "0", "boy", "girls"]
    want = [True, False, True, False, True, False]
    (tmp_path / "labels.csv").write_text("id,boneage_months,male\n" + "".join(f"{i},100,{s}\n" for i, s in
                                                                            enumerate(spellings)))
    assert list(read_labels(tmp_path)["male"]) == want
    df = pd.DataFrame({"id": range(6), "boneage_months": 100, "male": spellings, "predicted_months": 101})
    got = metrics.read_predictions(df.to_csv(index=False).encode())
    assert list(got["male"]) == want and list(got["sex"]) == ["male", "female"] * 3
    assert [clinical.normalise_sex(s) for s in spellings] == ["M", "F", "M", "F", "M", "F"]
    with pytest.raises(clinical.ClinicalInputError, match="sex must be"):
        clinical.interpret(100, "X")
