"""Which clinical inputs a bone age is interpreted with: what the user typed, and what the DICOM tags say.

Reading (the bone age, :meth:`boneage.predict.Predictor.read`) and interpreting (comparing it
with the child's age, :func:`boneage.clinical.interpret`) are separate; this module decides, once
for the CLI, the API and the app, which sex, age, dates and heights the interpretation gets.

Precedence (the rule the tests check):

1. **What the user typed wins.** Where a DICOM tag says something else (sex, or an age more than
   a month away from the typed age or dates) the typed value is used and a warning names both.
2. **Tags fill what the user left empty** (CLI and API). The app instead pre-fills its widgets
   from the tags (:func:`tag_inputs`) and passes ``fill_from_tags=False``, so what the widgets
   show is what is used: "Not given" means not given.
3. **Implausible or malformed tags are ignored, with a warning**: a birth or study date in the
   future, a study date before the birth date, an age from the tags beyond the Greulich–Pyle
   range (``PatientAge 999Y``); an unreadable date or age string is already dropped, with its
   warning, by :mod:`boneage.io`.
4. **The bone age never depends on the tags**: a bad tag can cost the interpretation, never the
   reading. Bad *typed* inputs are still errors (:class:`boneage.clinical.ClinicalInputError`, a
   one-line message): the user can correct them, and a silently dropped typo would mislead.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from .clinical import MAX_CHRONOLOGICAL_AGE_MONTHS, ClinicalInputError, chronological_age_months
from .vocab import Sex, format_age

AGE_TOLERANCE_MONTHS = 1.0  # typed and tag ages further apart than this earn a warning (clinical's own tolerance)


@dataclass(frozen=True)
class ClinicalInputs:
    """What the interpretation is computed from; None means "not given". ``sex`` is already parsed."""

    sex: Sex | None = None
    chronological_age_months: float | None = None
    birth_date: dt.date | None = None
    study_date: dt.date | None = None
    height_cm: float | None = None
    father_height_cm: float | None = None
    mother_height_cm: float | None = None

    def wants_interpretation(self) -> bool:
        """True when anything beyond sex was given (the bone age alone needs no interpretation)."""
        return any(v is not None for v in (self.chronological_age_months, self.birth_date, self.study_date,
                                           self.height_cm, self.father_height_cm, self.mother_height_cm))

    def interpret_kwargs(self) -> dict:
        """Keyword arguments for :func:`boneage.clinical.interpret` (this class's fields but the sex;
        a subclass's extra fields, e.g. the app's report identifiers, are not clinical inputs)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ClinicalInputs) if f.name != "sex"}


@dataclass(frozen=True)
class TagInputs:
    """What the image's tags say, after the plausibility checks (None: absent or ignored)."""

    sex: Sex | None = None
    birth_date: dt.date | None = None
    study_date: dt.date | None = None
    patient_age_months: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def age_months(self) -> float | None:
        """The age the tags imply: from both dates when present, else PatientAge."""
        if self.birth_date is not None and self.study_date is not None:
            return _months(self.birth_date, self.study_date)
        return self.patient_age_months


def _months(birth: dt.date, study: dt.date) -> float | None:
    """Age at the study from two tag dates; None where no child's age results (checked by the caller)."""
    try:
        return chronological_age_months(birth, study, today=dt.date.max)
    except ClinicalInputError:
        return None


def tag_inputs(meta, *, today: dt.date | None = None) -> TagInputs:
    """The clinical tags of an image (:class:`boneage.io.ImageMeta`, or None), implausible ones dropped."""
    if meta is None:
        return TagInputs()
    today = today or dt.date.today()
    warnings: list[str] = []
    birth, study = getattr(meta, "birth_date", None), getattr(meta, "study_date", None)
    age = getattr(meta, "patient_age_months", None)
    if birth is not None and birth > today:
        warnings.append(f"DICOM birth date {birth.isoformat()} is in the future; ignored")
        birth = None
    if study is not None and study > today:
        warnings.append(f"DICOM study date {study.isoformat()} is in the future; ignored")
        study = None
    if birth is not None and study is not None:
        if study < birth:
            warnings.append(f"DICOM study date {study.isoformat()} is before the birth date {birth.isoformat()}; "
                            "both ignored")
            birth = study = None
        elif _months(birth, study) is None:
            warnings.append(f"DICOM dates give an age beyond {MAX_CHRONOLOGICAL_AGE_MONTHS / 12:g} years "
                            f"(born {birth.isoformat()}, studied {study.isoformat()}); ignored")
            birth = study = None
    if age is not None and not 0 <= age <= MAX_CHRONOLOGICAL_AGE_MONTHS:
        warnings.append(f"DICOM PatientAge ({age / 12:.0f} years) is not a child's age; ignored")
        age = None
    return TagInputs(sex=getattr(meta, "sex", None), birth_date=birth, study_date=study, patient_age_months=age,
                     warnings=tuple(warnings))


def resolve(typed: ClinicalInputs, meta=None, *, fill_from_tags: bool = True,
            today: dt.date | None = None) -> tuple[ClinicalInputs, list[str]]:
    """The inputs to interpret with, and the warnings about the tags (see the module's precedence).

    Raises :class:`boneage.clinical.ClinicalInputError` only for typed inputs that cannot be right
    (typed dates in the future or in the wrong order).
    """
    tags = tag_inputs(meta, today=today)
    warnings = list(tags.warnings)

    sex = typed.sex
    if sex is not None and tags.sex is not None and tags.sex != sex:
        warnings.append(f"sex given as {sex}, the DICOM tag says {tags.sex}; {sex} used")
    if sex is None and fill_from_tags:
        sex = tags.sex

    birth, study, age = typed.birth_date, typed.study_date, typed.chronological_age_months
    typed_age = age
    if birth is not None and study is not None:
        typed_age = chronological_age_months(birth, study, today=today)
    tag_age = tags.age_months
    if typed_age is not None and tag_age is not None and abs(typed_age - tag_age) > AGE_TOLERANCE_MONTHS:
        warnings.append(f"chronological age given as {format_age(typed_age)}, the DICOM tags give "
                        f"{format_age(tag_age)}; the given age used")
    if fill_from_tags and typed_age is None:
        if (birth is None) != (study is None):  # one date typed: the tag completes the pair
            birth, study = birth or tags.birth_date, study or tags.study_date
        elif birth is None and age is None:
            if tags.birth_date is not None and tags.study_date is not None:
                birth, study = tags.birth_date, tags.study_date
            elif tags.patient_age_months is not None:
                age = tags.patient_age_months
    resolved = dataclasses.replace(typed, sex=sex, chronological_age_months=age, birth_date=birth, study_date=study)
    return resolved, warnings
