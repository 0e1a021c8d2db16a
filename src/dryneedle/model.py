"""The domain model: patients, sessions, insertions, needles and adverse events.

Every class is an immutable (frozen, slotted, keyword-only) attrs class. Clinical facts are
never defaulted to ``False``: a history answer is ``True``, ``False`` or ``None`` (unknown), and
an unknown answer produces its own screening finding. Collections are tuples.

The field names are exactly those of record format v1 (see :mod:`dryneedle.records`).

>>> from datetime import date
>>> from dryneedle.model import History, Patient, Sex
>>> p = Patient(patient_id="p-1", birth_date=date(1990, 1, 1), sex=Sex.FEMALE)
>>> p.history.bleeding_disorder is None  # unknown, not False
True
"""

from __future__ import annotations

import enum
from datetime import date

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

    bleeding_disorder: bool | None = None
    anticoagulant_therapy: bool | None = None
    immunocompromised: bool | None = None
    metal_allergy: bool | None = None
    epilepsy: bool | None = None
    diabetes: bool | None = None
    vascular_disease: bool | None = None
    prior_adverse_reaction: bool | None = None
    acute_illness: bool | None = None
    lymph_node_removal: bool | None = None
    needle_phobia: NeedlePhobia | None = None
    consent: bool | None = None


@attrs.frozen(kw_only=True)
class SiteFinding:
    """Something found at a body site that may exclude needling there.

    Attributes:
        region: Body region.
        side: Side; ``midline`` and ``bilateral`` concern both sides.
        kind: What was found.
        date: When (for surgery: the date of the operation); ``None`` if unknown.
    """

    region: Region
    side: SiteSide
    kind: SiteFindingKind
    date: date | None = None


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
        site_findings: Site findings (wounds, scars, ...).
        conditions: Condition ids from :mod:`dryneedle.catalog` being treated.
    """

    patient_id: str
    birth_date: date | None = None
    sex: Sex | None = None
    pregnancy: Pregnancy | None = None
    history: History = attrs.field(factory=_empty_history)
    site_findings: tuple[SiteFinding, ...] = ()
    conditions: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Practitioner:
    """Who performed the session.

    Attributes:
        practitioner_id: Identifier of the practitioner.
        dry_needling_trained: Whether trained in dry needling; ``None`` if unknown.
    """

    practitioner_id: str
    dry_needling_trained: bool | None = None


@attrs.frozen(kw_only=True)
class PreSteps:
    """Steps required before needling (seed, za-bn121 §7); ``None`` means unknown."""

    history_reviewed: bool | None = None
    physical_exam: bool | None = None
    consent: bool | None = None
    skin_disinfected: bool | None = None


@attrs.frozen(kw_only=True)
class PostSteps:
    """Steps required after needling (seed, za-bn121 §7); ``None`` means unknown.

    Attributes:
        needles_removed: How many needles were removed (must equal the insertions).
        skin_checked: Whether the skin was examined afterwards.
    """

    needles_removed: int | None = None
    skin_checked: bool | None = None


@attrs.frozen(kw_only=True)
class Needle:
    """The filiform needle used; ``None`` means not recorded."""

    diameter_mm: float | None = None
    length_mm: float | None = None


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
    """

    muscle: str
    side: Side
    technique: Technique
    depth_mm: float | None = None
    manipulation: Manipulation
    dwell_s: float | None = None
    needle: Needle = attrs.field(factory=_unknown_needle)
    guide_tube: bool | None = None
    twitch_response: bool | None = None
    ultrasound_guided: bool | None = None


@attrs.frozen(kw_only=True)
class AdverseEvent:
    """An adverse event observed during or after a session.

    Attributes:
        kind: What happened.
        grade: ``mild`` or ``significant``; ``None`` if not graded (treated as significant).
    """

    kind: AdverseEventKind
    grade: AdverseEventGrade | None = None


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
        adverse_events: Adverse events observed.
    """

    session_id: str
    date: date
    number: int
    practitioner: Practitioner
    pre: PreSteps = attrs.field(factory=_unknown_pre)
    insertions: tuple[Insertion, ...] = ()
    post: PostSteps = attrs.field(factory=_unknown_post)
    adverse_events: tuple[AdverseEvent, ...] = ()


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
    record_id: str
    patient: Patient
    session: Session
