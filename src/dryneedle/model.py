"""The domain model: patients, sessions, insertions, needles and adverse events.

Every class is an immutable (frozen, slotted, keyword-only) attrs class. Clinical facts are
never defaulted to ``False``: a history answer is ``True``, ``False`` or ``None`` (unknown), and
an unknown answer produces its own screening finding. Collections are tuples; the lists that
record an observation (``Patient.site_findings``, ``Session.adverse_events``) are tri-state
too: ``()`` means "looked, none", ``None`` means unknown (what an absent or ``null`` list
of a record reads as).

The field names are exactly those of record format v1 (see :mod:`dryneedle.records`).

>>> from datetime import date
>>> from dryneedle.model import History, Patient, Sex
>>> p = Patient(patient_id="p-1", birth_date=date(1990, 1, 1), sex=Sex.FEMALE)
>>> p.history.bleeding_disorder is None  # unknown, not False
True
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import attrs

__all__ = [
    "AdverseEvent",
    "AdverseEventGrade",
    "AdverseEventKind",
    "History",
    "Insertion",
    "Manipulation",
    "Needle",
    "NeedlePhobia",
    "Patient",
    "PostSteps",
    "Practitioner",
    "PreSteps",
    "Pregnancy",
    "Region",
    "Session",
    "SessionRecord",
    "Sex",
    "Side",
    "SiteFinding",
    "SiteFindingKind",
    "SiteSide",
    "Technique",
    "to_side",
    "to_technique_or_none",
]


class Sex(enum.StrEnum):
    """Sex recorded for the patient."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Pregnancy(enum.StrEnum):
    """Pregnancy status (``unknown`` is an explicit unknown answer)."""

    PREGNANT = "pregnant"
    NOT_PREGNANT = "not_pregnant"
    UNKNOWN = "unknown"


class NeedlePhobia(enum.StrEnum):
    """Degree of needle phobia reported by the patient."""

    NONE = "none"
    MILD = "mild"
    SEVERE = "severe"


class Region(enum.StrEnum):
    """Body regions of the anatomy catalog and of site findings."""

    HEAD_FACE = "head_face"
    JAW = "jaw"
    NECK = "neck"
    SHOULDER = "shoulder"
    UPPER_BACK = "upper_back"
    CHEST = "chest"
    ABDOMEN = "abdomen"
    LOWER_BACK = "lower_back"
    PELVIS = "pelvis"
    HIP = "hip"
    THIGH = "thigh"
    KNEE = "knee"
    LEG = "leg"
    ANKLE_FOOT = "ankle_foot"
    ARM = "arm"
    FOREARM = "forearm"
    HAND = "hand"


class Side(enum.StrEnum):
    """Side of an insertion."""

    LEFT = "left"
    RIGHT = "right"
    MIDLINE = "midline"


class SiteSide(enum.StrEnum):
    """Side of a site finding; ``midline`` and ``bilateral`` concern both sides."""

    LEFT = "left"
    RIGHT = "right"
    MIDLINE = "midline"
    BILATERAL = "bilateral"


class SiteFindingKind(enum.StrEnum):
    """What was found at a body site (each excludes needling there, seed and za-bn121)."""

    WOUND = "wound"
    SCAR = "scar"
    TATTOO = "tattoo"
    SURGERY = "surgery"
    INJURY = "injury"
    INFECTION = "infection"
    LYMPHOEDEMA = "lymphoedema"
    IMPLANT = "implant"


class Technique(enum.StrEnum):
    """Needling technique: superficial (5-10 mm) or deep (beyond subcutaneous tissue)."""

    SUPERFICIAL = "superficial"
    DEEP = "deep"


class Manipulation(enum.StrEnum):
    """How the needle was handled once inserted."""

    STATIC = "static"
    PISTONING = "pistoning"


class AdverseEventKind(enum.StrEnum):
    """Adverse-event vocabulary aligned with brady-2014 and boyce-2020."""

    BRUISING = "bruising"
    BLEEDING = "bleeding"
    PAIN_DURING = "pain_during"
    PAIN_AFTER = "pain_after"
    AGGRAVATION = "aggravation"
    DROWSINESS = "drowsiness"
    HEADACHE = "headache"
    NAUSEA = "nausea"
    FATIGUE = "fatigue"
    FAINTING = "fainting"
    INFECTION = "infection"
    PNEUMOTHORAX = "pneumothorax"
    NERVE_IRRITATION = "nerve_irritation"
    OTHER = "other"


class AdverseEventGrade(enum.StrEnum):
    """Adverse-event grade: ``mild`` (minor) or ``significant`` (major), brady-2014 / boyce-2020."""

    MILD = "mild"
    SIGNIFICANT = "significant"


# --- type guards ---------------------------------------------------------------------------------
# The model refuses values of the wrong type at construction (a programming error), so clinical
# rules never meet a mistyped answer: a string "pregnant" becomes Pregnancy.PREGNANT, while an
# integer 1 for a yes/no answer is refused rather than read as anything.


def _check_answer(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value is not True and value is not False:
        msg = f"{attribute.name} must be True, False or None (unknown), got {type(value).__name__}"
        raise TypeError(msg)


def _check_number(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{attribute.name} must be a number or None, got {type(value).__name__}"
        raise TypeError(msg)
    if not math.isfinite(value):
        msg = f"{attribute.name} must be finite"
        raise ValueError(msg)


def _check_count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        msg = f"{attribute.name} must be an integer or None, got {type(value).__name__}"
        raise TypeError(msg)


def _check_session_number(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{attribute.name} must be an integer of at least 1 (1 = first session)"
        raise ValueError(msg)


def _check_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        msg = f"{attribute.name} must be a non-empty string"
        raise TypeError(msg)


def _day(value: object) -> date | None:
    """Accept a date (a datetime is read as its date); refuse anything else."""
    if value is None or value.__class__ is date:
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    msg = f"expected a date or None, got {type(value).__name__}"
    raise TypeError(msg)


def _required_day(value: object) -> date:
    day = _day(value)
    if day is None:
        msg = "expected a date, got None"
        raise TypeError(msg)
    return day


def _site_findings(value: Iterable[SiteFinding] | None) -> tuple[SiteFinding, ...] | None:
    return None if value is None else tuple(value)


def _conditions(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _insertions(value: Iterable[Insertion]) -> tuple[Insertion, ...]:
    return tuple(value)


def _adverse_events(value: Iterable[AdverseEvent] | None) -> tuple[AdverseEvent, ...] | None:
    return None if value is None else tuple(value)


def _answer() -> Any:
    return attrs.field(default=None, validator=_check_answer)


def _number() -> Any:
    return attrs.field(default=None, validator=_check_number)


# Named converters (the attrs mypy plugin reads their signatures): str -> enum member.


def _opt_sex(value: Sex | str | None) -> Sex | None:
    return None if value is None else Sex(value)



def _opt_pregnancy(value: Pregnancy | str | None) -> Pregnancy | None:
    return None if value is None else Pregnancy(value)



def _opt_needlephobia(value: NeedlePhobia | str | None) -> NeedlePhobia | None:
    return None if value is None else NeedlePhobia(value)




def _req_region(value: Region | str) -> Region:
    return Region(value)



def to_side(value: Side | str) -> Side:
    """Convert a record's side (``"left"``, ``"right"``, ``"midline"``) to :class:`Side`.

    An attrs converter shared by every model with a needled side.

    >>> from dryneedle.model import to_side
    >>> to_side("left")
    <Side.LEFT: 'left'>
    """
    return Side(value)



def _req_siteside(value: SiteSide | str) -> SiteSide:
    return SiteSide(value)



def _req_sitefindingkind(value: SiteFindingKind | str) -> SiteFindingKind:
    return SiteFindingKind(value)


def to_technique_or_none(value: Technique | str | None) -> Technique | None:
    """Convert an optional technique (``"superficial"``, ``"deep"`` or ``None``).

    An attrs converter shared by every model with an optional technique.

    >>> from dryneedle.model import to_technique_or_none
    >>> to_technique_or_none(None) is None
    True
    """
    return None if value is None else Technique(value)


def _req_technique(value: Technique | str) -> Technique:
    return Technique(value)



def _req_manipulation(value: Manipulation | str) -> Manipulation:
    return Manipulation(value)



def _req_adverseeventkind(value: AdverseEventKind | str) -> AdverseEventKind:
    return AdverseEventKind(value)


def _opt_adverseeventgrade(value: AdverseEventGrade | str | None) -> AdverseEventGrade | None:
    return None if value is None else AdverseEventGrade(value)



@attrs.frozen(kw_only=True)
class History:
    """Screening history answers; ``None`` means the answer is unknown.

    Attributes:
        bleeding_disorder: Bleeding or clotting disorder (e.g. thrombocytopenia).
        anticoagulant_therapy: Anticoagulant or antiplatelet therapy.
        immunocompromised: Compromised immunity.
        metal_allergy: Allergy to metal (e.g. nickel).
        epilepsy: Epilepsy.
        diabetes: Diabetes.
        vascular_disease: Vascular disease.
        prior_adverse_reaction: Prior abnormal reaction to needling or injection.
        acute_illness: Acute illness or medical emergency today.
        lymph_node_removal: Lymph nodes removed.
        needle_phobia: Degree of needle phobia.
        consent: Informed consent given (``False`` = refused).
    """

    bleeding_disorder: bool | None = _answer()
    anticoagulant_therapy: bool | None = _answer()
    immunocompromised: bool | None = _answer()
    metal_allergy: bool | None = _answer()
    epilepsy: bool | None = _answer()
    diabetes: bool | None = _answer()
    vascular_disease: bool | None = _answer()
    prior_adverse_reaction: bool | None = _answer()
    acute_illness: bool | None = _answer()
    lymph_node_removal: bool | None = _answer()
    needle_phobia: NeedlePhobia | None = attrs.field(default=None, converter=_opt_needlephobia)
    consent: bool | None = _answer()


@attrs.frozen(kw_only=True)
class SiteFinding:
    """Something found at a body site that may exclude needling there.

    Attributes:
        region: Body region.
        side: Side; ``midline`` and ``bilateral`` concern both sides.
        kind: What was found.
        date: When (for surgery: the date of the operation); ``None`` if unknown.
    """

    region: Region = attrs.field(converter=_req_region)
    side: SiteSide = attrs.field(converter=_req_siteside)
    kind: SiteFindingKind = attrs.field(converter=_req_sitefindingkind)
    date: date | None = attrs.field(default=None, converter=_day)


def _empty_history() -> History:
    return History()


@attrs.frozen(kw_only=True)
class Patient:
    """A pseudonymous patient and their screening answers.

    Attributes:
        patient_id: Pseudonymous identifier (never printed in messages).
        birth_date: Date of birth; ``None`` if unknown.
        sex: Sex; ``None`` if not recorded.
        pregnancy: Pregnancy status; ``None`` if not asked.
        history: History answers.
        site_findings: Site findings (wounds, scars, ...): ``()`` when the sites were inspected
            and nothing was found, ``None`` when unknown (in a record: absent or ``null``).
            The constructor's default is ``()``, as before; pass ``None`` when no inspection
            is recorded.
        conditions: Condition ids from :mod:`dryneedle.catalog` being treated.
    """

    patient_id: str = attrs.field(validator=_check_text)
    birth_date: date | None = attrs.field(default=None, converter=_day)
    sex: Sex | None = attrs.field(default=None, converter=_opt_sex)
    pregnancy: Pregnancy | None = attrs.field(default=None, converter=_opt_pregnancy)
    history: History = attrs.field(factory=_empty_history)
    site_findings: tuple[SiteFinding, ...] | None = attrs.field(
        default=(), converter=_site_findings
    )
    conditions: tuple[str, ...] = attrs.field(default=(), converter=_conditions)


@attrs.frozen(kw_only=True)
class Practitioner:
    """Who performed the session.

    Attributes:
        practitioner_id: Identifier of the practitioner.
        dry_needling_trained: Whether trained in dry needling; ``None`` if unknown.
    """

    practitioner_id: str = attrs.field(validator=_check_text)
    dry_needling_trained: bool | None = _answer()


@attrs.frozen(kw_only=True)
class PreSteps:
    """Steps required before needling (seed, za-bn121 §7); ``None`` means unknown."""

    history_reviewed: bool | None = _answer()
    physical_exam: bool | None = _answer()
    consent: bool | None = _answer()
    skin_disinfected: bool | None = _answer()


@attrs.frozen(kw_only=True)
class PostSteps:
    """Steps required after needling (seed, za-bn121 §7); ``None`` means unknown.

    Attributes:
        needles_removed: How many needles were removed (must equal the insertions).
        skin_checked: Whether the skin was examined afterwards.
    """

    needles_removed: int | None = attrs.field(default=None, validator=_check_count)
    skin_checked: bool | None = _answer()


@attrs.frozen(kw_only=True)
class Needle:
    """The filiform needle used; ``None`` means not recorded."""

    diameter_mm: float | None = _number()
    length_mm: float | None = _number()


def _unknown_needle() -> Needle:
    return Needle()


@attrs.frozen(kw_only=True)
class Insertion:
    """One needle insertion.

    Attributes:
        muscle: Muscle id from the anatomy catalog.
        side: Side of the body.
        technique: Superficial or deep.
        depth_mm: Depth reached in millimetres; ``None`` if not recorded.
        manipulation: Static (with a dwell time) or pistoning.
        dwell_s: Dwell time in seconds for static insertions.
        needle: The needle used.
        guide_tube: Whether a guide tube was used.
        twitch_response: Whether a local twitch response was observed.
        ultrasound_guided: Whether ultrasound guidance was used (unknown counts as not).
        directed_away_from_lung: Whether the needle was directed away from the lung
            (za-bn121 "direct the needle away from the lung"); unknown counts as not.
    """

    muscle: str = attrs.field(validator=_check_text)
    side: Side = attrs.field(converter=to_side)
    technique: Technique = attrs.field(converter=_req_technique)
    depth_mm: float | None = _number()
    manipulation: Manipulation = attrs.field(converter=_req_manipulation)
    dwell_s: float | None = _number()
    needle: Needle = attrs.field(factory=_unknown_needle)
    guide_tube: bool | None = _answer()
    twitch_response: bool | None = _answer()
    ultrasound_guided: bool | None = _answer()
    directed_away_from_lung: bool | None = _answer()


@attrs.frozen(kw_only=True)
class AdverseEvent:
    """An adverse event observed during or after a session.

    Attributes:
        kind: What happened.
        grade: ``mild`` or ``significant``; ``None`` if not graded (treated as significant).
    """

    kind: AdverseEventKind = attrs.field(converter=_req_adverseeventkind)
    grade: AdverseEventGrade | None = attrs.field(default=None, converter=_opt_adverseeventgrade)


def _unknown_pre() -> PreSteps:
    return PreSteps()


def _unknown_post() -> PostSteps:
    return PostSteps()


@attrs.frozen(kw_only=True)
class Session:
    """One dry-needling session.

    Attributes:
        session_id: Identifier of the session.
        date: Date of the session.
        number: Sequence number for this patient (1 = first session).
        practitioner: Who performed it.
        pre: Steps before needling.
        insertions: The insertions made (or planned).
        post: Steps after needling.
        adverse_events: Adverse events observed: ``()`` when observed and none occurred,
            ``None`` when unknown (tolerance unknown; in a record: absent or ``null``). The
            constructor's default is ``()``, as before.
    """

    session_id: str = attrs.field(validator=_check_text)
    date: date = attrs.field(converter=_required_day)
    number: int = attrs.field(validator=_check_session_number)
    practitioner: Practitioner
    pre: PreSteps = attrs.field(factory=_unknown_pre)
    insertions: tuple[Insertion, ...] = attrs.field(default=(), converter=_insertions)
    post: PostSteps = attrs.field(factory=_unknown_post)
    adverse_events: tuple[AdverseEvent, ...] | None = attrs.field(
        default=(), converter=_adverse_events
    )


@attrs.frozen(kw_only=True)
class SessionRecord:
    """One record of format ``dryneedle.session/1``: a patient and one session.

    Attributes:
        format: Always ``"dryneedle.session/1"``.
        record_id: Identifier of the record in the export.
        patient: The patient.
        session: The session.
    """

    format: str = "dryneedle.session/1"
    record_id: str = attrs.field(validator=_check_text)
    patient: Patient
    session: Session
