"""The aftercare plan: the expected course and the instructions a patient takes home.

Private module behind :mod:`dryneedle.aftercare` (import the public names from there). It holds
the cited expected-course thresholds that both the plan's wording and the triage read
(:data:`SORENESS_USUAL_MIN_H`, the policy limits named by :data:`SORENESS_LIMIT` and
:data:`BRUISING_LIMIT`), the instruction catalog, the lung and bleeding-risk tests and
:func:`aftercare_plan`. A new instruction goes into :func:`_instructions_for` (in plan order),
and into the selection of :func:`aftercare_plan` if it is conditional.

May import: the model, reference data (catalog), findings and policy. Nothing above the rules
layer, and no other aftercare module (this is the lowest of them).
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from dryneedle._version import __version__
from dryneedle.catalog import MUSCLES, Muscle
from dryneedle.findings import Finding, rule
from dryneedle.model import Patient, Region, Session
from dryneedle.policy import DEFAULT_POLICY, Policy

__all__ = [
    "BRUISING_LIMIT",
    "BRUISING_SOURCES",
    "INSTRUCTIONS",
    "NEAR_LUNG_REGIONS",
    "SORENESS_LIMIT",
    "SORENESS_SOURCES",
    "SORENESS_USUAL_MIN_H",
    "UNREADABLE",
    "AftercarePlan",
    "Instruction",
    "Section",
    "aftercare_plan",
    "bleeding_risk",
    "days_text",
    "needled_near_lung",
    "needled_over_lung",
    "threshold_text",
    "unreadable_findings",
]

# --- the expected course (cited thresholds) --------------------------------------------------

SORENESS_USUAL_MIN_H: Final = 24.0
# Documented in dryneedle.aftercare, which exports it.

SORENESS_SOURCES: Final = ("seed", "pns-review")
"""Sources of the soreness course (24-36 h): seed and pns-review."""
BRUISING_SOURCES: Final = ("seed",)
"""Sources of the bruising course (up to a week): seed."""
SORENESS_LIMIT: Final = "soreness_expected_max_h"
"""Name of the policy limit that ends the expected soreness course (hours)."""
BRUISING_LIMIT: Final = "bruising_expected_max_days"
"""Name of the policy limit that ends the expected bruising course (days)."""


def _limit_sources(policy: Policy, name: str, base: tuple[str, ...]) -> tuple[str, ...]:
    """Sources of a line resting on a policy limit: ``policy`` is added when it is overridden."""
    for lim in policy.limits():
        if lim.name == name and lim.value != lim.default and "policy" not in base:
            return (*base, "policy")
    return base


def threshold_text(value: float) -> str:
    """Format a threshold for patients: ``36.0`` -> ``36``, ``7.5`` -> ``7.5``."""
    return f"{value:g}"



def days_text(days: float) -> str:
    """Word a number of days for patients: ``7.0`` -> ``a week``, ``10.0`` -> ``10 days``."""
    return "a week" if days == 7.0 else f"{threshold_text(days)} days"


# --- instructions ----------------------------------------------------------------------------


class Section(enum.StrEnum):
    """The sections of an aftercare plan, in the order they are shown."""

    DO = "do"
    EXPECT = "expect"
    GET_HELP = "get_help"

    @property
    def heading(self) -> str:
        """The patient-facing heading of the section."""
        return _SECTION_TITLES[self]


_SECTION_TITLES: Final = types.MappingProxyType(
    {
        Section.DO: "What to do",
        Section.EXPECT: "What to expect",
        Section.GET_HELP: "When to get help",
    }
)
_PLAN_TITLE: Final = "After your dry needling session"


@attrs.frozen(kw_only=True)
class Instruction:
    """One patient-facing aftercare instruction.

    Attributes:
        id: Stable identifier of the instruction (e.g. ``drink_water``).
        section: Where it is shown.
        text: Patient-facing wording: short sentences, no jargon, no identifiers.
        sources: Source ids the instruction rests on.
    """

    id: str
    section: Section
    text: str
    sources: tuple[str, ...]


def _i(id_: str, section: Section, text: str, *sources: str) -> Instruction:
    return Instruction(id=id_, section=section, text=text, sources=sources)


_S = Section
_BLEED_SOURCES: Final = ("apta-2013", "munoz-2022", "za-bn121")


def _instructions_for(policy: Policy) -> tuple[Instruction, ...]:
    """Every instruction, in plan order, worded with the policy's expected-course limits."""
    sore_h = policy.soreness_expected_max_h
    bruise_d = policy.bruising_expected_max_days
    sore = _limit_sources(policy, SORENESS_LIMIT, SORENESS_SOURCES)
    bruise = _limit_sources(policy, BRUISING_LIMIT, BRUISING_SOURCES)
    course = (f"{threshold_text(SORENESS_USUAL_MIN_H)} to {threshold_text(sore_h)} hours"
              if sore_h > SORENESS_USUAL_MIN_H else f"up to {threshold_text(sore_h)} hours")
    longer_than = days_text(bruise_d) + (" (7 days)" if bruise_d == 7.0 else "")
    return (
        _i("stand_slowly", _S.DO, "Stand up slowly. If you feel light-headed, sit down.",
           "seed"),
        _i("drink_water", _S.DO, "Drink plenty of water.", "seed"),
        _i("stay_active", _S.DO, "Stay active.", "seed"),
        _i("press_if_bleeding", _S.DO,
           "If a needle spot bleeds, press on it firmly until it stops.", *_BLEED_SOURCES),
        _i("expect_soreness", _S.EXPECT,
           f"Your muscles may feel sore or stiff for {course}. This is normal.", *sore),
        _i("expect_bruising", _S.EXPECT,
           f"A bruise may appear where a needle went in. It can last up to {days_text(bruise_d)}.",
           *bruise),
        _i("expect_bleeding_risk", _S.EXPECT,
           "You may bleed or bruise more easily if you take blood thinners or have a bleeding "
           "problem.", "apta-2013", "munoz-2022"),
        _i("lung_emergency", _S.GET_HELP,
           "If you get short of breath or have chest pain, get emergency care straight away. "
           "Rarely, needling near the lungs can cause a collapsed lung.", "za-bn121"),
        _i("emergency_care", _S.GET_HELP,
           "Get emergency care straight away if you faint after you leave the clinic, or if "
           "you have severe chest pain or severe shortness of breath.",
           "seed", "za-bn121", "policy"),
        _i("watch_bleeding", _S.GET_HELP,
           "Contact the clinic if a needle spot keeps bleeding when you press on it.",
           *_BLEED_SOURCES, "policy"),
        _i("watch_soreness", _S.GET_HELP,
           "Contact the clinic if soreness or stiffness lasts longer than "
           f"{threshold_text(sore_h)} hours.",
           *sore, *(() if "policy" in sore else ("policy",))),
        _i("watch_bruising", _S.GET_HELP,
           f"Contact the clinic if a bruise lasts longer than {longer_than}.",
           *bruise, *(() if "policy" in bruise else ("policy",))),
        _i("watch_infection", _S.GET_HELP,
           "Contact the clinic promptly if you see signs of infection: redness that spreads, "
           "warmth or pus where a needle went in, or a fever.", "seed", "policy"),
        _i("watch_other", _S.GET_HELP,
           "Contact the clinic about any other symptom, or one that is severe.", "policy"),
        _i("record_unreadable", _S.GET_HELP,
           "Part of the record of your session could not be read, so this plan includes "
           "every warning that could apply to you. Ask the clinic if you are unsure.",
           "policy"),
    )


INSTRUCTIONS: Final[Mapping[str, Instruction]] = types.MappingProxyType(
    {i.id: i for i in _instructions_for(DEFAULT_POLICY)}
)
# Documented in dryneedle.aftercare, which exports it.

_BASIC: Final = ("stand_slowly", "drink_water", "stay_active", "expect_soreness",
                 "expect_bruising")
_BLEEDING_LINES: Final = frozenset({"press_if_bleeding", "expect_bleeding_risk",
                                    "watch_bleeding"})
_LUNG_LINES: Final = frozenset({"lung_emergency"})
_WATCH: Final = ("emergency_care", "watch_soreness", "watch_bruising", "watch_infection",
                 "watch_other")
_UNREADABLE_LINES: Final = frozenset({"record_unreadable"})

NEAR_LUNG_REGIONS: Final = frozenset({Region.NECK, Region.SHOULDER})
"""Regions where the lung is near whatever the muscle (za-bn121: about 3.3 cm beneath the skin
at the angle of the neck): breathlessness or chest pain after needling there is urgent."""

UNREADABLE: Final = rule("aftercare.input.unreadable")
"""The rule of the finding that says what part of the input could not be read."""


def unreadable_findings(
    paths: Iterable[str], policy: Policy = DEFAULT_POLICY
) -> tuple[Finding, ...]:
    """One ``aftercare.input.unreadable`` finding per input path that could not be read.

    Args:
        paths: Record-format paths (``patient.sex``, ``session``, ...); duplicates are
            dropped, order kept.
        policy: The policy (for the finding's severity).

    >>> from dryneedle.aftercare import unreadable_findings
    >>> [(f.code, f.path) for f in unreadable_findings(["patient.sex"])]
    [('aftercare.input.unreadable', 'patient.sex')]
    """
    severity = policy.severity_of(UNREADABLE.id, UNREADABLE.severity)
    return tuple(
        Finding(code=UNREADABLE.id, severity=severity, path=path,
                message=f"{path or 'the input'} could not be read: every line that could "
                "apply is included and the session counts as near the lung (fail closed)",
                sources=UNREADABLE.sources)
        for path in dict.fromkeys(paths)
    )


def _insertions_of(session: object) -> tuple[object, ...] | list[object] | None:
    """A session's insertions, or ``None`` when they cannot be read (fail closed).

    ``None`` for no session, and for anything that is not a session with a sequence of
    insertions (a raw ``dict``, a string, ``insertions`` of another type): an unreadable
    session never reads as "no needles near the lung" (SPEC §5 1.1).
    """
    insertions = getattr(session, "insertions", None)
    if not isinstance(session, Session) or not isinstance(insertions, tuple | list):
        return None
    return insertions


def _any_muscle(session: Session | None, test: Callable[[Muscle], bool]) -> bool | None:
    """Whether an insertion's catalog muscle passes ``test``; ``None`` when it cannot be told.

    ``True`` as soon as one known muscle passes; ``False`` when every muscle is in the catalog
    and none passes; ``None`` for no session, unreadable insertions or an unknown muscle.
    """
    insertions = _insertions_of(session)
    if insertions is None:
        return None
    unknown = False
    for insertion in insertions:
        muscle_id = getattr(insertion, "muscle", None)
        muscle = MUSCLES.get(muscle_id) if isinstance(muscle_id, str) else None
        if muscle is None:
            unknown = True
        elif test(muscle):
            return True
    return None if unknown else False


def needled_over_lung(session: Session | None) -> bool | None:
    """Whether any insertion of a session overlay the lung (anatomy catalog).

    Args:
        session: The session (``None`` when not known).

    Returns:
        ``True`` if an insertion's muscle overlies the lung; ``False`` if every muscle is in the
        catalog and none does; ``None`` when it cannot be told (no session, or a muscle the
        catalog does not know). Callers treat ``None`` as ``True`` (fail closed).

    >>> from dryneedle.aftercare import needled_over_lung
    >>> needled_over_lung(None) is None
    True
    """
    return _any_muscle(session, lambda muscle: muscle.over_lung)


def needled_near_lung(session: Session | None) -> bool | None:
    """Whether a session needled near the lung: over it, or in the neck or shoulder region.

    Breathlessness or chest pain after such a session is urgent (SPEC §5 1.1), and its plan
    carries the lung line.

    Args:
        session: The session (``None`` when not known).

    Returns:
        ``True`` if an insertion's muscle overlies the lung or lies in the ``neck`` or
        ``shoulder`` region; ``False`` if every muscle is known and none does; ``None``
        when it cannot be told (callers treat it as ``True``).

    >>> from dryneedle.aftercare import needled_near_lung
    >>> needled_near_lung(None) is None
    True
    """
    return _any_muscle(
        session, lambda muscle: muscle.over_lung or muscle.region in NEAR_LUNG_REGIONS)


def bleeding_risk(patient: Patient | None) -> bool | None:
    """Whether a patient has a bleeding risk (bleeding disorder or anticoagulant therapy).

    Args:
        patient: The patient (``None`` when not known).

    Returns:
        ``True`` if either history answer is ``True``; ``False`` only if both are ``False``;
        otherwise ``None`` (unknown; callers treat it as a risk).

    >>> from dryneedle.aftercare import bleeding_risk
    >>> from dryneedle.model import History, Patient
    >>> bleeding_risk(Patient(patient_id="p", history=History(anticoagulant_therapy=True)))
    True
    >>> bleeding_risk(Patient(patient_id="p", history=History(bleeding_disorder=False))) is None
    True
    """
    history = getattr(patient, "history", None)
    if history is None:
        return None
    answers = (getattr(history, "bleeding_disorder", None),
               getattr(history, "anticoagulant_therapy", None))
    if any(a is True for a in answers):
        return True
    if all(a is False for a in answers):
        return False
    return None


@attrs.frozen(kw_only=True)
class AftercarePlan:
    """Ordered, cited aftercare instructions for one session.

    Attributes:
        instructions: The instructions, in the order they are shown.
        over_lung: Whether the session needled over the lung (``None``: unknown, lines added).
        bleeding_risk: Whether the patient has a bleeding risk (``None``: unknown, lines added).
        policy: Fingerprint of the policy whose limits worded the plan.
        version: Library version that produced the plan.
        near_lung: Whether the session needled near the lung (over it, or in the neck or
            shoulder; ``None``: unknown, the lung line is added).
        findings: What of the input could not be read (``aftercare.input.unreadable``, one
            per path); when there is any, every conditional line is included.
    """

    instructions: tuple[Instruction, ...]
    over_lung: bool | None
    bleeding_risk: bool | None
    policy: str = DEFAULT_POLICY.fingerprint
    version: str = __version__
    near_lung: bool | None = None
    findings: tuple[Finding, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source id cited by the plan, in order of first citation."""
        return tuple(dict.fromkeys(s for i in self.instructions for s in i.sources))

    def _sections(self) -> list[tuple[Section, list[Instruction]]]:
        out: list[tuple[Section, list[Instruction]]] = []
        for section in Section:
            lines = [i for i in self.instructions if i.section is section]
            if lines:
                out.append((section, lines))
        return out

    def to_text(self, *, with_sources: bool = False) -> str:
        """Render the plan as plain text for the patient.

        Args:
            with_sources: Append each line's source ids (for clinicians and audit).

        Returns:
            The text, ending with a newline. Deterministic; contains no identifiers.
        """
        parts = [_PLAN_TITLE]
        for section, lines in self._sections():
            parts.append("")
            parts.append(section.heading)
            parts.extend(f"- {_line(i, with_sources)}" for i in lines)
        return "\n".join(parts) + "\n"

    def to_markdown(self, *, with_sources: bool = False) -> str:
        """Render the plan as Markdown for the patient.

        Args:
            with_sources: Append each line's source ids (for clinicians and audit).

        Returns:
            Markdown with a level-1 title and one level-2 heading per section.
        """
        parts = [f"# {_PLAN_TITLE}"]
        for section, lines in self._sections():
            parts.extend(("", f"## {section.heading}", ""))
            parts.extend(f"- {_line(i, with_sources)}" for i in lines)
        return "\n".join(parts) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        return {
            "over_lung": self.over_lung,
            "near_lung": self.near_lung,
            "bleeding_risk": self.bleeding_risk,
            "findings": [f.as_dict() for f in self.findings],
            "instructions": [
                {"id": i.id, "section": i.section.value, "text": i.text,
                 "sources": list(i.sources)}
                for i in self.instructions
            ],
            "sources": list(self.sources),
            "policy": self.policy,
            "version": self.version,
        }


def _line(instruction: Instruction, with_sources: bool) -> str:
    if with_sources:
        return f"{instruction.text} (sources: {', '.join(instruction.sources)})"
    return instruction.text


def aftercare_plan(
    session: Session | None,
    *,
    patient: Patient | None = None,
    policy: Policy = DEFAULT_POLICY,
    unreadable: Iterable[str] = (),
) -> AftercarePlan:
    """Return the aftercare instructions for a session.

    Args:
        session: The session just performed (``None`` when it could not be read: the plan
            then includes every conditional line).
        patient: The patient, for the bleeding-risk lines. Without it (or with an unknown
            bleeding-disorder or anticoagulant answer) the bleeding-risk lines are included.
        policy: The policy whose expected-course limits the wording quotes (the same limits
            :func:`triage` applies).
        unreadable: Paths of the session or patient that could not be read (e.g. the paths
            of a record's structural errors). When any is given the plan fails closed: every
            conditional line (lung, bleeding) is included, with one
            ``aftercare.input.unreadable`` finding per path and a line telling the patient.

    Returns:
        The plan: what to do, what to expect and when to get help, every line cited. Every
        plan says when to get emergency care (fainting after leaving; severe chest pain or
        breathlessness). The lung line (any chest pain or breathlessness) is included when an
        insertion overlay the lung or was in the neck or shoulder region, when a muscle is not
        in the anatomy catalog, or when the input could not be read.

    >>> from datetime import date
    >>> from dryneedle.aftercare import aftercare_plan
    >>> from dryneedle.model import (History, Insertion, Manipulation, Patient,
    ...     Practitioner, Session, Side, Technique)
    >>> neck = Session(session_id="s-2", date=date(2026, 3, 9), number=2,
    ...     practitioner=Practitioner(practitioner_id="pt-1"),
    ...     insertions=(Insertion(muscle="upper_trapezius", side=Side.RIGHT,
    ...         technique=Technique.SUPERFICIAL, manipulation=Manipulation.STATIC),))
    >>> low_risk = Patient(patient_id="p-1", history=History(
    ...     bleeding_disorder=False, anticoagulant_therapy=False))
    >>> [i.id for i in aftercare_plan(neck, patient=low_risk).instructions][-6:]
    ['lung_emergency', 'emergency_care', 'watch_soreness', 'watch_bruising',
     'watch_infection', 'watch_other']
    """
    findings = unreadable_findings(unreadable, policy)
    if findings:
        lung: bool | None = None
        near: bool | None = None
        bleed: bool | None = None
    else:
        lung = needled_over_lung(session)
        near = needled_near_lung(session)
        bleed = bleeding_risk(patient)
    wanted = set(_BASIC) | set(_WATCH)
    if near is not False:
        wanted |= _LUNG_LINES
    if bleed is not False:
        wanted |= _BLEEDING_LINES
    if findings:
        wanted |= _UNREADABLE_LINES
    # The catalog is in plan order: sections in Section order, fixed order within each.
    ordered = tuple(i for i in _instructions_for(policy) if i.id in wanted)
    return AftercarePlan(instructions=ordered, over_lung=lung, bleeding_risk=bleed,
                         policy=policy.fingerprint, near_lung=near, findings=findings)
