"""The package's one vocabulary for sex and ages.

Decisions:

* **Sex is parsed once, at the edges** (CLI, API, app widgets, CSV readers, DICOM tags) by
  :func:`parse_sex`, into the code ``"F"`` or ``"M"``; everything inside passes that code. The
  parser accepts every spelling the package meets: ``F``/``M``, ``female``/``male``,
  ``girl(s)``/``boy(s)`` (any case), the RSNA ``male`` column's ``True``/``False``/``1``/``0``
  (also as the strings ``true``/``false``/``t``/``yes``/``no``/``1.0``/``0.0``). Anything else is an
  error, never a guess: the references are sex-specific, so a guessed sex gives a wrong number.
* **One model encoding**: the network's ``male`` input is 1.0 for boys and 0.0 for girls
  (:func:`model_input`), as in training (RSNA's ``male`` column).
* **One word** per sex for sentences (:func:`sex_word`: boy/girl, boys/girls) and one label for
  tables and legends (:func:`sex_label`: female/male, the dataset page's filter values).
* **One age formatter** (:func:`format_age`): years and whole months in words, as a report reads
  them (``"11 years 6 months"``, ``"1 year 0 months behind"``), and months alone under a year, to
  one decimal where that is what is meant (``"0.1 months"``, ``"5 months"``). The short form
  ``"1 y 0.1 m"`` it replaced read badly (issue 15: a tenth of a month is noise beside a year,
  and "m" reads as metres in a report with heights). Every age and age difference the package
  prints goes through it, so its wording changes in one place.
"""
from __future__ import annotations

import math
from typing import Literal

Sex = Literal["F", "M"]
FEMALE: Sex = "F"
MALE: Sex = "M"
SEX_CODES: tuple[Sex, Sex] = (FEMALE, MALE)

_SPELLINGS: dict[str, Sex] = {
    "f": FEMALE, "female": FEMALE, "girl": FEMALE, "girls": FEMALE,
    "m": MALE, "male": MALE, "boy": MALE, "boys": MALE,
    # the RSNA ``male`` column and its CSV spellings
    "false": FEMALE, "0": FEMALE, "0.0": FEMALE, "no": FEMALE,
    "true": MALE, "t": MALE, "1": MALE, "1.0": MALE, "yes": MALE,
}
_LABELS: dict[Sex, str] = {FEMALE: "female", MALE: "male"}
_WORDS: dict[Sex, tuple[str, str]] = {FEMALE: ("girl", "girls"), MALE: ("boy", "boys")}


class SexError(ValueError):
    """A value that names no sex (one-line message)."""


def _lookup(value) -> Sex | None:
    if isinstance(value, str):
        return _SPELLINGS.get(value.strip().lower())
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # Python and numpy booleans
        return MALE if value else FEMALE
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number == 1.0:
        return MALE
    if number == 0.0:
        return FEMALE
    return None


def parse_sex(value) -> Sex:
    """``"F"`` or ``"M"`` from any spelling the package accepts; :class:`SexError` otherwise."""
    sex = _lookup(value)
    if sex is None:
        raise SexError(f"sex must be 'M' or 'F' (or 'male'/'female'), got {value!r}")
    return sex


def parse_optional_sex(value) -> Sex | None:
    """Like :func:`parse_sex`, but None (or an empty string, or NaN) means "not given"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return parse_sex(value)


def sex_or_none(value) -> Sex | None:
    """For table readers that count bad rows themselves: None where :func:`parse_sex` would raise."""
    return _lookup(value)


def male_or_none(value) -> bool | None:
    """A ``male`` column's value as a bool (any spelling :func:`parse_sex` accepts); None when unreadable."""
    sex = _lookup(value)
    return None if sex is None else sex == MALE


def is_male(sex: Sex) -> bool:
    return parse_sex(sex) == MALE


def model_input(sex: Sex) -> float:
    """The network's ``male`` input: 1.0 for boys, 0.0 for girls (RSNA's column, as trained)."""
    return 1.0 if is_male(sex) else 0.0


def from_male(male) -> Sex:
    """The code for a ``male`` flag (RSNA's column: True/False/1/0)."""
    return parse_sex(bool(male))


def sex_word(sex: Sex, plural: bool = False) -> str:
    """"boy"/"girl" ("boys"/"girls" with ``plural``), for sentences."""
    return _WORDS[parse_sex(sex)][1 if plural else 0]


def sex_label(sex: Sex) -> str:
    """"female"/"male", for tables, legends and the dataset page's filter (``.capitalize()`` for widgets)."""
    return _LABELS[parse_sex(sex)]


SEX_LABELS: tuple[str, str] = (_LABELS[FEMALE], _LABELS[MALE])


def format_age(months: float) -> str:
    """An age (or an age difference) in words: ``"11 years 6 months"``, ``"1 year 0 months"``; under a
    year, months alone to one decimal (``"0.1 months"``, ``"5 months"``, ``"1 month"``).

    The one age formatter of the package: the CLI, the app, the PDF report and the clinical
    sentences all print ages through it. Whole months from a year up (rounded half up, so
    143.5 months is "12 years 0 months", never "11 years 12 months").
    """
    value = float(months)
    sign, a = ("-" if value < 0 else ""), abs(value)
    tenths = math.floor(a * 10 + 0.5) / 10
    if tenths < 12:
        return f"{sign}{tenths:g} {_plural(tenths, 'month')}" if tenths else "0 months"
    years, rem = divmod(math.floor(a + 0.5), 12)
    return f"{sign}{years} {_plural(years, 'year')} {rem} {_plural(rem, 'month')}"


def _plural(n: float, word: str) -> str:
    return word if n == 1 else word + "s"
