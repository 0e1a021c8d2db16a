"""Aftercare: patient instructions, the expected course, symptom triage and adverse-event rates.

Three things happen after a dry-needling session, and this module covers each of them:

* **Instructions.** :func:`aftercare_plan` returns the ordered, cited instructions a patient takes
  home: stand up slowly and sit if light-headed, drink plenty of water, stay active, expect
  soreness for 24-36 hours and bruising for up to a week (seed, pns-review), and when to get
  help. Extra lines are added when any insertion overlay the lung (shortness of breath or chest
  pain means emergency care, za-bn121) and when the patient has a bleeding risk (apta-2013,
  munoz-2022, za-bn121). An *unknown* bleeding risk or an insertion into a muscle the anatomy
  catalog does not know counts as a risk: the extra lines are included (fail closed).
* **Triage.** :func:`triage` sorts what a patient reports after leaving the clinic into
  ``expected``, ``contact_clinic`` or ``urgent``, with one cited reason per finding. Every triage
  rule is registered in :mod:`dryneedle.findings` (category ``aftercare``) and its severity goes
  through the :class:`~dryneedle.policy.Policy`, so a clinic can override it with a recorded
  justification. The level is the most serious reason's: ``info`` is expected, ``warning`` is
  contact the clinic, ``error`` is urgent. Adding a symptom never lowers the level.
* **Rates.** :func:`adverse_event_rates` streams session records and counts the recorded
  adverse events per kind (vocabulary :class:`~dryneedle.model.AdverseEventKind`, grade
  :class:`~dryneedle.model.AdverseEventGrade`), reported beside the rates published by
  brady-2014 and boyce-2020 (:data:`PUBLISHED_RATES`).

The expected course is cited data, not magic numbers: the policy limits
``soreness_expected_max_h`` (36 h, seed and pns-review) and ``bruising_expected_max_days``
(7 days, seed) of :class:`~dryneedle.policy.Policy`, which both the plan's wording and the
triage read, so a clinic that overrides one sees it everywhere. Advising the
patient to contact the clinic beyond them is a clinic-policy default (source id ``policy``), and
so is every fail-closed rule (unknown timing, an unlisted or severe symptom).

>>> from datetime import date
>>> from dryneedle.aftercare import (
...     ReportedSymptom, SymptomKind, SymptomReport, aftercare_plan, triage)
>>> from dryneedle.model import (
...     Insertion, Manipulation, Practitioner, Session, Side, Technique)
>>> calf = Session(
...     session_id="s-1", date=date(2026, 3, 2), number=1,
...     practitioner=Practitioner(practitioner_id="pt-1"),
...     insertions=(Insertion(muscle="gastrocnemius", side=Side.LEFT,
...                           technique=Technique.DEEP, manipulation=Manipulation.PISTONING),))
>>> plan = aftercare_plan(calf)
>>> plan.over_lung, plan.bleeding_risk  # no patient given: bleeding risk unknown
(False, None)
>>> print(plan.to_text().splitlines()[3])
- Stand up slowly. If you feel light-headed, sit down.
>>> sore = ReportedSymptom(kind=SymptomKind.SORENESS)
>>> triage(SymptomReport(hours_since_session=35, symptoms=(sore,)), session=calf).level
<TriageLevel.EXPECTED: 'expected'>
>>> follow_up = triage(SymptomReport(hours_since_session=37, symptoms=(sore,)), session=calf)
>>> follow_up.level, [r.code for r in follow_up.reasons]
(<TriageLevel.CONTACT_CLINIC: 'contact_clinic'>, ['aftercare.triage.soreness_prolonged'])
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from dryneedle._version import __version__
from dryneedle.catalog import MUSCLES
from dryneedle.findings import Finding, FindingsError, Rule, Severity, register
from dryneedle.model import (
    AdverseEventGrade,
    AdverseEventKind,
    Patient,
    Session,
    SessionRecord,
)
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.records import converter

__all__ = [
    "ADVERSE_EVENT_TERMS",
    "INSTRUCTIONS",
    "PUBLISHED_RATES",
    "SORENESS_USUAL_MIN_H",
    "TRIAGE_ORDER",
    "TRIAGE_RULES",
    "AdverseEventRates",
    "AdverseEventTerm",
    "AftercarePlan",
    "FollowUp",
    "GradeRate",
    "Instruction",
    "KindRate",
    "PublishedRate",
    "RateBound",
    "RateUnit",
    "ReportError",
    "ReportedSymptom",
    "Section",
    "SymptomKind",
    "SymptomReport",
    "SymptomSeverity",
    "TriageLevel",
    "adverse_event_rates",
    "aftercare_plan",
    "bleeding_risk",
    "needled_over_lung",
    "structure_report",
    "triage",
    "unstructure_report",
]


# --- the expected course (cited thresholds) --------------------------------------------------

SORENESS_USUAL_MIN_H: Final = 24.0
"""Soreness usually lasts at least this many hours: the lower end of the 24-36 h course shown to
the patient (seed, pns-review). The upper end is the policy limit
``soreness_expected_max_h``."""

_SORENESS_SOURCES: Final = ("seed", "pns-review")
_BRUISING_SOURCES: Final = ("seed",)
_SORENESS_LIMIT: Final = "soreness_expected_max_h"
_BRUISING_LIMIT: Final = "bruising_expected_max_days"


def _limit_sources(policy: Policy, name: str, base: tuple[str, ...]) -> tuple[str, ...]:
    """Sources of a line resting on a policy limit: ``policy`` is added when it is overridden."""
    for lim in policy.limits():
        if lim.name == name and lim.value != lim.default and "policy" not in base:
            return (*base, "policy")
    return base


def _num(value: float) -> str:
    """Format a threshold for patients: ``36.0`` -> ``36``, ``7.5`` -> ``7.5``."""
    return f"{value:g}"


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


def _week(days: float) -> str:
    return "a week" if days == 7.0 else f"{_num(days)} days"


def _instructions_for(policy: Policy) -> tuple[Instruction, ...]:
    """Every instruction, in plan order, worded with the policy's expected-course limits."""
    sore_h = policy.soreness_expected_max_h
    bruise_d = policy.bruising_expected_max_days
    sore = _limit_sources(policy, _SORENESS_LIMIT, _SORENESS_SOURCES)
    bruise = _limit_sources(policy, _BRUISING_LIMIT, _BRUISING_SOURCES)
    course = (f"{_num(SORENESS_USUAL_MIN_H)} to {_num(sore_h)} hours"
              if sore_h > SORENESS_USUAL_MIN_H else f"up to {_num(sore_h)} hours")
    longer_than = _week(bruise_d) + (" (7 days)" if bruise_d == 7.0 else "")
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
           f"A bruise may appear where a needle went in. It can last up to {_week(bruise_d)}.",
           *bruise),
        _i("expect_bleeding_risk", _S.EXPECT,
           "You may bleed or bruise more easily if you take blood thinners or have a bleeding "
           "problem.", "apta-2013", "munoz-2022"),
        _i("lung_emergency", _S.GET_HELP,
           "If you get short of breath or have chest pain, get emergency care straight away. "
           "Rarely, needling near the lungs can cause a collapsed lung.", "za-bn121"),
        _i("watch_bleeding", _S.GET_HELP,
           "Contact the clinic if a needle spot keeps bleeding when you press on it.",
           *_BLEED_SOURCES, "policy"),
        _i("watch_soreness", _S.GET_HELP,
           f"Contact the clinic if soreness or stiffness lasts longer than {_num(sore_h)} hours.",
           *sore, *(() if "policy" in sore else ("policy",))),
        _i("watch_bruising", _S.GET_HELP,
           f"Contact the clinic if a bruise lasts longer than {longer_than}.",
           *bruise, *(() if "policy" in bruise else ("policy",))),
        _i("watch_infection", _S.GET_HELP,
           "Contact the clinic promptly if you see signs of infection: redness that spreads, "
           "warmth or pus where a needle went in, or a fever.", "seed", "policy"),
        _i("watch_fainting", _S.GET_HELP,
           "Contact the clinic if you faint after you leave.", "seed", "za-bn121", "policy"),
        _i("watch_other", _S.GET_HELP,
           "Contact the clinic about any other symptom, or one that is severe.", "policy"),
    )


INSTRUCTIONS: Final[Mapping[str, Instruction]] = types.MappingProxyType(
    {i.id: i for i in _instructions_for(DEFAULT_POLICY)}
)
"""Every instruction a plan can contain, by id, in plan order, as worded under the default
policy (read-only). A policy that overrides an expected-course limit changes the wording of the
lines that quote it, and adds ``policy`` to their sources."""

_BASIC: Final = ("stand_slowly", "drink_water", "stay_active", "expect_soreness",
                 "expect_bruising")
_BLEEDING_LINES: Final = frozenset({"press_if_bleeding", "expect_bleeding_risk",
                                    "watch_bleeding"})
_LUNG_LINES: Final = frozenset({"lung_emergency"})
_WATCH: Final = ("watch_soreness", "watch_bruising", "watch_infection", "watch_fainting",
                 "watch_other")


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
    if session is None:
        return None
    unknown = False
    for insertion in getattr(session, "insertions", None) or ():
        muscle_id = getattr(insertion, "muscle", None)
        muscle = MUSCLES.get(muscle_id) if isinstance(muscle_id, str) else None
        if muscle is None:
            unknown = True
        elif muscle.over_lung:
            return True
    return None if unknown else False


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
    """

    instructions: tuple[Instruction, ...]
    over_lung: bool | None
    bleeding_risk: bool | None
    policy: str = DEFAULT_POLICY.fingerprint
    version: str = __version__

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
            "bleeding_risk": self.bleeding_risk,
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
    session: Session, *, patient: Patient | None = None, policy: Policy = DEFAULT_POLICY
) -> AftercarePlan:
    """Return the aftercare instructions for a session.

    Args:
        session: The session just performed.
        patient: The patient, for the bleeding-risk lines. Without it (or with an unknown
            bleeding-disorder or anticoagulant answer) the bleeding-risk lines are included.
        policy: The policy whose expected-course limits the wording quotes (the same limits
            :func:`triage` applies).

    Returns:
        The plan: what to do, what to expect and when to get help, every line cited. The
        emergency line for breathlessness or chest pain is included when any insertion overlay
        the lung, or when a muscle is not in the anatomy catalog.

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
    ['lung_emergency', 'watch_soreness', 'watch_bruising', 'watch_infection',
     'watch_fainting', 'watch_other']
    """
    lung = needled_over_lung(session)
    bleed = bleeding_risk(patient)
    wanted = set(_BASIC) | set(_WATCH)
    if lung is not False:
        wanted |= _LUNG_LINES
    if bleed is not False:
        wanted |= _BLEEDING_LINES
    # The catalog is in plan order: sections in Section order, fixed order within each.
    ordered = tuple(i for i in _instructions_for(policy) if i.id in wanted)
    return AftercarePlan(instructions=ordered, over_lung=lung, bleeding_risk=bleed,
                         policy=policy.fingerprint)


# --- the symptom report ----------------------------------------------------------------------


class SymptomKind(enum.StrEnum):
    """What a patient reports after leaving the clinic (use ``other`` for anything else)."""

    SORENESS = "soreness"
    STIFFNESS = "stiffness"
    BRUISING = "bruising"
    BLEEDING = "bleeding"
    SPREADING_REDNESS = "spreading_redness"
    WARMTH = "warmth"
    PUS = "pus"
    FEVER = "fever"
    FAINTING = "fainting"
    BREATHLESSNESS = "breathlessness"
    CHEST_PAIN = "chest_pain"
    OTHER = "other"


_LABELS: Final = types.MappingProxyType(
    {
        SymptomKind.SORENESS: "Soreness",
        SymptomKind.STIFFNESS: "Stiffness",
        SymptomKind.BRUISING: "A bruise",
        SymptomKind.BLEEDING: "Bleeding",
        SymptomKind.SPREADING_REDNESS: "Redness that spreads",
        SymptomKind.WARMTH: "Warmth where a needle went in",
        SymptomKind.PUS: "Pus where a needle went in",
        SymptomKind.FEVER: "A fever",
        SymptomKind.FAINTING: "Fainting",
        SymptomKind.BREATHLESSNESS: "Shortness of breath",
        SymptomKind.CHEST_PAIN: "Chest pain",
        SymptomKind.OTHER: "A symptom that is not on the usual list",
    }
)


class SymptomSeverity(enum.StrEnum):
    """How bad the patient says a symptom is."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


@attrs.frozen(kw_only=True)
class ReportedSymptom:
    """One symptom reported after the session.

    Attributes:
        kind: What the symptom is.
        duration_h: How long it has lasted so far, in hours (a day is 24 hours); ``None``
            if not said.
        severity: How bad it is; ``None`` if not said.
    """

    kind: SymptomKind
    duration_h: float | None = None
    severity: SymptomSeverity | None = None


@attrs.frozen(kw_only=True)
class SymptomReport:
    """What a patient reports after leaving the clinic.

    Symptoms are those the patient has had since leaving; soreness, stiffness and bruising are
    those still present when reporting, so :attr:`hours_since_session` bounds how long they
    have lasted after the session.

    JSON shape (see :func:`structure_report`)::

        {"hours_since_session": 37,
         "symptoms": [{"kind": "soreness", "duration_h": 30, "severity": "mild"}]}

    Attributes:
        hours_since_session: Hours from the end of the session to the report; ``None`` if not
            known.
        symptoms: The symptoms reported (empty: nothing to report).
    """

    hours_since_session: float | None = None
    symptoms: tuple[ReportedSymptom, ...] = ()


class ReportError(FindingsError):
    """A symptom report could not be structured; ``findings`` holds every problem found."""

    what = "symptom report"


_R_REPORT_UNKNOWN_FIELD: Final = register(Rule(
    id="aftercare.report.unknown_field",
    title="Unknown field in a symptom report",
    severity=Severity.ERROR,
    rationale="A misspelt field (e.g. a severity) would otherwise be dropped and could make a "
    "report read as expected; symptom reports reject unknown fields.",
    sources=("policy",),
))

_REPORT_KEYS: Final = frozenset({"hours_since_session", "symptoms"})
_SYMPTOM_KEYS: Final = frozenset({"kind", "duration_h", "severity"})


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _problem(code: str, path: str, message: str) -> Finding:
    return Finding(code=code, severity=Severity.ERROR, path=path, message=message)


def _check_hours(value: object, path: str, out: list[Finding]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        out.append(_problem("structure.type", path,
                            f"expected a number or null, got {_json_kind(value)}"))
    elif not math.isfinite(value) or value < 0:
        out.append(_problem("structure.range", path, "expected a finite number >= 0"))


def _check_enum(value: object, enum_cls: type[enum.StrEnum], path: str, out: list[Finding]) -> None:
    if not isinstance(value, str):
        out.append(_problem("structure.type", path, f"expected a string, got {_json_kind(value)}"))
    elif value not in {m.value for m in enum_cls}:
        allowed = ", ".join(m.value for m in enum_cls)
        out.append(_problem("structure.enum", path, f"value is not one of: {allowed}"))


def _check_unknown(data: Mapping[str, Any], known: frozenset[str], prefix: str,
                   out: list[Finding]) -> None:
    for key in data:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(_problem(_R_REPORT_UNKNOWN_FIELD.id, path, "unknown field"))


def _check_report(data: object) -> list[Finding]:
    out: list[Finding] = []
    if not isinstance(data, Mapping):
        out.append(_problem("structure.not_object", "",
                            f"expected a JSON object, got {_json_kind(data)}"))
        return out
    _check_unknown(data, _REPORT_KEYS, "", out)
    _check_hours(data.get("hours_since_session"), "hours_since_session", out)
    symptoms = data.get("symptoms", ())
    if not isinstance(symptoms, list | tuple):
        out.append(_problem("structure.type", "symptoms",
                            f"expected an array, got {_json_kind(symptoms)}"))
        return out
    for n, symptom in enumerate(symptoms):
        path = f"symptoms[{n}]"
        if not isinstance(symptom, Mapping):
            out.append(_problem("structure.type", path,
                                f"expected an object, got {_json_kind(symptom)}"))
            continue
        _check_unknown(symptom, _SYMPTOM_KEYS, path, out)
        if "kind" not in symptom:
            out.append(_problem("structure.missing", f"{path}.kind", "required field is missing"))
        else:
            _check_enum(symptom["kind"], SymptomKind, f"{path}.kind", out)
        _check_hours(symptom.get("duration_h"), f"{path}.duration_h", out)
        if symptom.get("severity") is not None:
            _check_enum(symptom["severity"], SymptomSeverity, f"{path}.severity", out)
    return out


def structure_report(data: object) -> SymptomReport:
    """Structure a decoded JSON symptom report (with the library's cattrs converter).

    The JSON shape is that of :class:`SymptomReport`: ``hours_since_session`` (number >= 0 or
    null, optional) and ``symptoms`` (array, optional), each symptom with ``kind`` (required,
    a :class:`SymptomKind` value), ``duration_h`` (number >= 0 or null) and ``severity`` (a
    :class:`SymptomSeverity` value or null). Unknown fields are errors.

    Args:
        data: The decoded JSON object.

    Returns:
        The report.

    Raises:
        ReportError: With every problem found (paths like ``symptoms[0].kind``; values are
            never echoed).

    >>> from dryneedle.aftercare import structure_report
    >>> structure_report({"hours_since_session": 37, "symptoms": [{"kind": "soreness"}]})
    SymptomReport(hours_since_session=37.0,
        symptoms=(ReportedSymptom(kind=<SymptomKind.SORENESS: 'soreness'>,
        duration_h=None, severity=None),))
    >>> structure_report({"symptoms": [{"kind": "tingling", "severty": "severe"}]})
    Traceback (most recent call last):
    ...
    dryneedle.aftercare.ReportError: 2 problem(s) in symptom report:
      symptoms[0].severty: unknown field [aftercare.report.unknown_field]
      symptoms[0].kind: value is not one of: soreness, ... other [structure.enum]
    """
    problems = _check_report(data)
    if problems or not isinstance(data, Mapping):
        raise ReportError(problems)
    report: SymptomReport = converter.structure(dict(data), SymptomReport)
    return report


def unstructure_report(report: SymptomReport) -> dict[str, Any]:
    """Return a symptom report as JSON-ready data (the inverse of :func:`structure_report`)."""
    data: dict[str, Any] = converter.unstructure(report)
    for symptom in data["symptoms"]:
        for key in ("kind", "severity"):
            if symptom[key] is not None:
                symptom[key] = str(symptom[key])
    return data


# --- triage ----------------------------------------------------------------------------------


class TriageLevel(enum.StrEnum):
    """What the patient should do about what they report."""

    EXPECTED = "expected"
    CONTACT_CLINIC = "contact_clinic"
    URGENT = "urgent"


TRIAGE_ORDER: Final[Mapping[TriageLevel, int]] = types.MappingProxyType(
    {TriageLevel.EXPECTED: 0, TriageLevel.CONTACT_CLINIC: 1, TriageLevel.URGENT: 2}
)
"""Triage levels from least to most urgent."""

_LEVEL_OF_SEVERITY: Final = types.MappingProxyType(
    {
        Severity.INFO: TriageLevel.EXPECTED,
        Severity.WARNING: TriageLevel.CONTACT_CLINIC,
        Severity.ERROR: TriageLevel.URGENT,
    }
)


def _triage_rule(id_: str, title: str, severity: Severity, rationale: str,
                 *sources: str, limits: tuple[str, ...] = ()) -> Rule:
    return register(Rule(id=id_, title=title, severity=severity, rationale=rationale,
                         sources=sources, limits=limits))


_W = Severity.WARNING
_R_SORENESS_EXPECTED: Final = _triage_rule(
    "aftercare.triage.soreness_expected", "Soreness or stiffness within the expected course",
    Severity.INFO,
    "Muscle soreness or stiffness for up to 24-36 hours after dry needling is expected (up to "
    "the policy limit, inclusive).",
    *_SORENESS_SOURCES, limits=(_SORENESS_LIMIT,),
)
_R_SORENESS_PROLONGED: Final = _triage_rule(
    "aftercare.triage.soreness_prolonged", "Soreness or stiffness beyond the expected course", _W,
    "Soreness usually settles within 24-36 hours; lasting strictly longer than the policy "
    "limit is outside the expected course. Contacting the clinic is the clinic-policy "
    "default.",
    *_SORENESS_SOURCES, "policy", limits=(_SORENESS_LIMIT,),
)
_R_BRUISING_EXPECTED: Final = _triage_rule(
    "aftercare.triage.bruising_expected", "Bruising within the expected course", Severity.INFO,
    "Bruising at or near a needle site may last up to a week (the policy limit, inclusive).",
    *_BRUISING_SOURCES, limits=(_BRUISING_LIMIT,),
)
_R_BRUISING_PROLONGED: Final = _triage_rule(
    "aftercare.triage.bruising_prolonged", "Bruising beyond the expected course", _W,
    "Bruising lasting strictly longer than the policy limit (a week) is outside the expected "
    "course. Contacting the clinic is the clinic-policy default.",
    *_BRUISING_SOURCES, "policy", limits=(_BRUISING_LIMIT,),
)
_R_TIMING_UNKNOWN: Final = _triage_rule(
    "aftercare.triage.timing_unknown", "Unknown how long a symptom has lasted", _W,
    "Soreness, stiffness or bruising can only be called expected when it is known to be within "
    "the expected course; unknown timing never reads as expected (clinic-policy default, fail "
    "closed).",
    "policy",
)
_R_INFECTION: Final = _triage_rule(
    "aftercare.triage.infection_signs", "Signs of infection", _W,
    "Infection is a possible side effect of dry needling; spreading redness, warmth, pus or "
    "fever should be seen promptly (contacting the clinic is the clinic-policy default).",
    "seed", "policy",
)
_R_FAINTING: Final = _triage_rule(
    "aftercare.triage.fainting", "Fainting after leaving the clinic", _W,
    "Fainting is a possible side effect of dry needling, managed at the clinic by lying down "
    "with raised legs; fainting after leaving should be reported (clinic-policy default).",
    "seed", "za-bn121", "policy",
)
_R_BLEEDING: Final = _triage_rule(
    "aftercare.triage.bleeding", "Bleeding after leaving the clinic", _W,
    "Needle sites are closed by pressure before the patient leaves; bleeding afterwards should "
    "be reported (clinic-policy default).",
    "za-bn121", "policy",
)
_R_LUNG: Final = _triage_rule(
    "aftercare.triage.lung_symptoms",
    "Breathlessness or chest pain after needling over the lung", Severity.ERROR,
    "Needling over the thorax carries a risk of pneumothorax (a collapsed lung); shortness of "
    "breath or chest pain after such a session needs emergency care. A session whose muscles "
    "are not all known counts as over the lung (fail closed).",
    "za-bn121",
)
_R_CHEST: Final = _triage_rule(
    "aftercare.triage.chest_symptoms",
    "Breathlessness or chest pain after a session not over the lung", _W,
    "Shortness of breath or chest pain is not an expected effect of needling away from the "
    "lung; it is never expected (clinic-policy default).",
    "policy",
)
_R_SEVERE: Final = _triage_rule(
    "aftercare.triage.severe_symptom", "A symptom reported as severe", _W,
    "A symptom the patient calls severe is never read as the expected course (clinic-policy "
    "default, fail closed).",
    "policy",
)
_R_UNLISTED: Final = _triage_rule(
    "aftercare.triage.unlisted_symptom", "A symptom outside the triage vocabulary", _W,
    "A symptom the triage rules do not know is never read as expected (clinic-policy default, "
    "fail closed).",
    "policy",
)

TRIAGE_RULES: Final[tuple[Rule, ...]] = (
    _R_SORENESS_EXPECTED, _R_SORENESS_PROLONGED, _R_BRUISING_EXPECTED, _R_BRUISING_PROLONGED,
    _R_TIMING_UNKNOWN, _R_INFECTION, _R_FAINTING, _R_BLEEDING, _R_LUNG, _R_CHEST, _R_SEVERE,
    _R_UNLISTED,
)
"""Every triage rule (category ``aftercare``), as registered in :mod:`dryneedle.findings`."""

_HEADLINES: Final = types.MappingProxyType(
    {
        TriageLevel.EXPECTED: "This is expected after dry needling. Follow your aftercare advice.",
        TriageLevel.CONTACT_CLINIC: "Contact the clinic.",
        TriageLevel.URGENT: "Get emergency care now.",
    }
)


@attrs.frozen(kw_only=True)
class FollowUp:
    """The triage of one symptom report.

    Attributes:
        level: The most urgent level among the reasons (``expected`` when there are none).
        reasons: One finding per rule that fired, per symptom, in report order. The path is
            report-rooted (``symptoms[0]``); the message is patient-facing.
        over_lung: Whether the session needled over the lung (``None``: unknown, treated as
            ``True``).
        policy: Fingerprint of the policy used.
        version: Library version.
    """

    level: TriageLevel
    reasons: tuple[Finding, ...]
    over_lung: bool | None
    policy: str = DEFAULT_POLICY.fingerprint
    version: str = __version__

    def as_dict(self) -> dict[str, Any]:
        """Return the follow-up as JSON-ready data."""
        return {
            "level": self.level.value,
            "reasons": [r.as_dict() for r in self.reasons],
            "over_lung": self.over_lung,
            "policy": self.policy,
            "version": self.version,
        }

    def to_text(self, *, with_sources: bool = False) -> str:
        """Render the follow-up as plain text: a headline, then one line per reason.

        Args:
            with_sources: Append each reason's rule id and source ids.
        """
        lines = [_HEADLINES[self.level]]
        if not self.reasons:
            lines.append("- No symptoms were reported.")
        for r in self.reasons:
            tail = f" ({r.code}; sources: {', '.join(r.sources)})" if with_sources else ""
            lines.append(f"- {r.message}{tail}")
        return "\n".join(lines) + "\n"


def _hours(value: object) -> float | None:
    """A usable number of hours, or ``None`` (missing, negative, NaN, infinite, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _elapsed_h(report_h: float | None, symptom: object) -> float | None:
    """How long after the session a lasting symptom is known to persist (largest known bound)."""
    known = [h for h in (report_h, _hours(getattr(symptom, "duration_h", None))) if h is not None]
    return max(known) if known else None


_INFECTION_KINDS: Final = frozenset({SymptomKind.SPREADING_REDNESS, SymptomKind.WARMTH,
                                     SymptomKind.PUS, SymptomKind.FEVER})
_CHEST_KINDS: Final = frozenset({SymptomKind.BREATHLESSNESS, SymptomKind.CHEST_PAIN})
_SORENESS_KINDS: Final = frozenset({SymptomKind.SORENESS, SymptomKind.STIFFNESS})


def _as_kind(value: object) -> SymptomKind | None:
    if not isinstance(value, str):
        return None
    try:
        return SymptomKind(value)
    except ValueError:
        return None


def _symptom_reasons(
    symptom: object, report_h: float | None, lung: bool | None, policy: Policy
) -> list[tuple[Rule, str]]:
    """Return (rule, message) pairs for one symptom, in :data:`TRIAGE_RULES` order."""
    kind = _as_kind(getattr(symptom, "kind", None))
    label = _LABELS[kind] if kind is not None else _LABELS[SymptomKind.OTHER]
    out: list[tuple[Rule, str]] = []
    expected: tuple[Rule, str] | None = None
    if kind in _SORENESS_KINDS or kind is SymptomKind.BRUISING:
        elapsed = _elapsed_h(report_h, symptom)
        if kind is SymptomKind.BRUISING:
            days = policy.bruising_expected_max_days
            limit_h = days * 24.0
            longer, within = (_R_BRUISING_PROLONGED, _R_BRUISING_EXPECTED)
            span = _week(days)
        else:
            limit_h = policy.soreness_expected_max_h
            longer, within = (_R_SORENESS_PROLONGED, _R_SORENESS_EXPECTED)
            span = f"{_num(limit_h)} hours"
        if elapsed is None:
            out.append((_R_TIMING_UNKNOWN,
                        f"{label} was reported without saying how long it has lasted. "
                        "Contact the clinic."))
        elif elapsed <= limit_h:  # written so that a NaN limit fails closed
            expected = (within, f"{label} for up to {span} after a session is expected.")
        else:
            out.append((longer, f"{label} has lasted longer than {span} after the session, "
                                "which is longer than expected. Contact the clinic."))
    elif kind in _INFECTION_KINDS:
        out.append((_R_INFECTION, f"{label} can be a sign of infection. "
                                 "Contact the clinic promptly."))
    elif kind is SymptomKind.FAINTING:
        out.append((_R_FAINTING, "Fainting after leaving the clinic is not expected. "
                                "Contact the clinic."))
    elif kind is SymptomKind.BLEEDING:
        out.append((_R_BLEEDING, "Bleeding after leaving the clinic should be checked. Press on "
                                "the spot and contact the clinic."))
    elif kind in _CHEST_KINDS:
        if lung is False:
            out.append((_R_CHEST, f"{label} is not an expected effect of this session. "
                                 "Contact the clinic."))
        else:
            where = ("needles were placed near the lungs" if lung
                     else "it is not known whether needles were placed near the lungs")
            out.append((_R_LUNG, f"{label} after a session where {where} can be a sign of a "
                                "collapsed lung. Get emergency care now."))
    else:
        out.append((_R_UNLISTED, f"{label} was reported. Contact the clinic."))
    severity = getattr(symptom, "severity", None)
    if severity is not None and severity not in (SymptomSeverity.MILD, SymptomSeverity.MODERATE):
        # ``severe`` and any unrecognised severity value: never expected (fail closed).
        out.append((_R_SEVERE, f"{label} was reported as severe. Contact the clinic."))
    if not out and expected is not None:
        out.append(expected)
    return out


def _rule_path(rule: Rule, index: int) -> str:
    if rule is _R_SEVERE:
        return f"symptoms[{index}].severity"
    if rule is _R_UNLISTED:
        return f"symptoms[{index}].kind"
    if rule is _R_TIMING_UNKNOWN:
        return f"symptoms[{index}].duration_h"
    return f"symptoms[{index}]"


def triage(
    report: SymptomReport,
    *,
    session: Session | None,
    policy: Policy = DEFAULT_POLICY,
) -> FollowUp:
    """Classify the symptoms a patient reports after a session.

    Rules (each registered, cited, and with a policy-overridable severity):

    * soreness or stiffness up to 36 h after the session: expected; beyond 36 h: contact
      (policy limit ``soreness_expected_max_h``);
    * bruising up to 7 days: expected; beyond 7 days: contact (policy limit
      ``bruising_expected_max_days``);
    * soreness, stiffness or bruising with no usable timing: contact (fail closed);
    * spreading redness, warmth, pus or fever (signs of infection): contact promptly;
    * fainting after leaving, or bleeding after leaving: contact;
    * shortness of breath or chest pain after a session that needled over the lung (or whose
      muscles are not all known, or with no session given): urgent; otherwise contact;
    * a symptom reported as severe, or of kind ``other``: contact, never expected.

    Args:
        report: The symptom report.
        session: The session the symptoms follow; ``None`` when not known (then it counts as
            having needled over the lung).
        policy: Policy for the expected-course limits and per-rule severity overrides (the
            level follows the severity: ``info`` expected, ``warning`` contact the clinic,
            ``error`` urgent).

    Returns:
        The follow-up: the most urgent level and every reason. Never raises on bad clinical
        data: an unusable number counts as unknown.
    """
    lung = needled_over_lung(session)
    report_h = _hours(getattr(report, "hours_since_session", None))
    reasons: list[Finding] = []
    level = TriageLevel.EXPECTED
    for index, symptom in enumerate(getattr(report, "symptoms", None) or ()):
        for rule, message in _symptom_reasons(symptom, report_h, lung, policy):
            severity = policy.severity_of(rule.id, rule.severity)
            reasons.append(Finding(code=rule.id, severity=severity, path=_rule_path(rule, index),
                                   message=message, sources=rule.sources))
            candidate = _LEVEL_OF_SEVERITY[severity]
            if TRIAGE_ORDER[candidate] > TRIAGE_ORDER[level]:
                level = candidate
    return FollowUp(level=level, reasons=tuple(reasons), over_lung=lung,
                    policy=policy.fingerprint)


# --- adverse-event vocabulary and rates --------------------------------------------------------


@attrs.frozen(kw_only=True)
class AdverseEventTerm:
    """A term of the adverse-event vocabulary with its display label and sources.

    Attributes:
        kind: The vocabulary value used in records (``adverse_events[].kind``).
        label: Human-readable label, as the papers name it.
        sources: Sources that name or report this kind of event.
    """

    kind: AdverseEventKind
    label: str
    sources: tuple[str, ...]


def _t(kind: AdverseEventKind, label: str, *sources: str) -> AdverseEventTerm:
    return AdverseEventTerm(kind=kind, label=label, sources=sources)


_K = AdverseEventKind
ADVERSE_EVENT_TERMS: Final[Mapping[AdverseEventKind, AdverseEventTerm]] = types.MappingProxyType({
    t.kind: t
    for t in (
        _t(_K.BRUISING, "Bruising", "brady-2014", "boyce-2020", "seed"),
        _t(_K.BLEEDING, "Bleeding", "brady-2014", "boyce-2020"),
        _t(_K.PAIN_DURING, "Pain during treatment", "brady-2014", "boyce-2020", "seed"),
        _t(_K.PAIN_AFTER, "Pain after treatment", "brady-2014", "seed"),
        _t(_K.AGGRAVATION, "Aggravation of symptoms", "brady-2014"),
        _t(_K.DROWSINESS, "Drowsiness", "brady-2014"),
        _t(_K.HEADACHE, "Headache", "brady-2014"),
        _t(_K.NAUSEA, "Nausea", "brady-2014"),
        # Named in the vocabulary; SOURCES.md gives no figure for it: no published rate.
        _t(_K.FATIGUE, "Fatigue", "policy"),
        _t(_K.FAINTING, "Fainting", "seed", "za-bn121"),
        _t(_K.INFECTION, "Infection", "seed"),
        _t(_K.PNEUMOTHORAX, "Pneumothorax", "za-bn121"),
        _t(_K.NERVE_IRRITATION, "Nerve irritation", "policy"),
        _t(_K.OTHER, "Other", "policy"),
    )
})
"""The adverse-event vocabulary: every :class:`~dryneedle.model.AdverseEventKind` with a label.

Grades: ``mild`` is brady-2014's *mild* and boyce-2020's *minor*; ``significant`` is
brady-2014's *significant* and boyce-2020's *major*. An event without a grade counts as
significant.
"""


RateBound = Literal["exact", "at_most", "below"]
"""How a published figure bounds the rate: ``exact``, ``at_most`` (≤) or ``below`` (<)."""

RateUnit = Literal["treatment", "session"]
"""What a published denominator counts."""


@attrs.frozen(kw_only=True)
class PublishedRate:
    """A published adverse-event rate, for comparison.

    Attributes:
        source: Source id of the paper.
        kind: The kind of event; ``None`` for all kinds of a grade.
        grade: The grade; ``None`` when the paper's figure is not limited to one grade.
        percent: The figure as published, in percent (events per 100 treatments/sessions).
        bound: ``exact``, ``at_most`` (≤, an upper bound) or ``below`` (<).
        denominator: Number of treatments or sessions in the paper.
        unit: What the denominator counts.
    """

    source: str
    kind: AdverseEventKind | None
    grade: AdverseEventGrade | None
    percent: float
    bound: RateBound = "exact"
    denominator: int
    unit: RateUnit

    @property
    def rate(self) -> float:
        """The figure as a fraction (events per treatment or session)."""
        return self.percent / 100.0

    def display(self) -> str:
        """The figure as published, e.g. ``7.55 %`` or ``<= 0.04 %``."""
        prefix = {"exact": "", "at_most": "<= ", "below": "< "}[self.bound]
        return f"{prefix}{self.percent:g} %"

    def as_dict(self) -> dict[str, Any]:
        """Return the figure as JSON-ready data."""
        return {
            "source": self.source,
            "kind": None if self.kind is None else self.kind.value,
            "grade": None if self.grade is None else self.grade.value,
            "percent": self.percent,
            "bound": self.bound,
            "denominator": self.denominator,
            "unit": self.unit,
        }


_MILD = AdverseEventGrade.MILD
_SIGNIFICANT = AdverseEventGrade.SIGNIFICANT


def _brady(kind: AdverseEventKind | None, percent: float, grade: AdverseEventGrade = _MILD,
           bound: RateBound = "exact") -> PublishedRate:
    return PublishedRate(source="brady-2014", kind=kind, grade=grade, percent=percent,
                         bound=bound, denominator=7629, unit="treatment")


def _boyce(kind: AdverseEventKind | None, percent: float, grade: AdverseEventGrade = _MILD,
           bound: RateBound = "exact") -> PublishedRate:
    return PublishedRate(source="boyce-2020", kind=kind, grade=grade, percent=percent,
                         bound=bound, denominator=20464, unit="session")


PUBLISHED_RATES: Final[tuple[PublishedRate, ...]] = (
    _brady(None, 19.18),
    _brady(_K.BRUISING, 7.55),
    _brady(_K.BLEEDING, 4.65),
    _brady(_K.PAIN_DURING, 3.01),
    _brady(_K.PAIN_AFTER, 2.19),
    _brady(_K.AGGRAVATION, 0.88),
    _brady(_K.DROWSINESS, 0.26),
    _brady(_K.HEADACHE, 0.14),
    _brady(_K.NAUSEA, 0.13),
    _brady(None, 0.04, _SIGNIFICANT, "at_most"),
    _boyce(None, 36.7),
    _boyce(_K.BLEEDING, 16.0),
    _boyce(_K.BRUISING, 7.7),
    _boyce(_K.PAIN_DURING, 5.9),
    _boyce(None, 0.1, _SIGNIFICANT, "below"),
)
"""Adverse-event rates published by brady-2014 (7 629 treatments) and boyce-2020 (20 464
sessions), as events per 100 treatments/sessions. Per-kind figures are of mild (minor) events."""


@attrs.frozen(kw_only=True)
class KindRate:
    """Observed counts and rate of one kind of adverse event.

    Attributes:
        kind: The kind of event.
        events: Events of this kind recorded.
        mild: Of which graded ``mild``.
        significant: Of which graded ``significant``.
        ungraded: Of which without a grade (counted as significant in :class:`GradeRate`).
        sessions_with: Sessions with at least one event of this kind.
        rate: Events per session (comparable to the published figures); ``None`` with no
            sessions.
        published: The published figures for this kind.
    """

    kind: AdverseEventKind
    events: int
    mild: int
    significant: int
    ungraded: int
    sessions_with: int
    rate: float | None
    published: tuple[PublishedRate, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {
            "kind": self.kind.value,
            "events": self.events,
            "mild": self.mild,
            "significant": self.significant,
            "ungraded": self.ungraded,
            "sessions_with": self.sessions_with,
            "rate": self.rate,
            "published": [p.as_dict() for p in self.published],
        }


@attrs.frozen(kw_only=True)
class GradeRate:
    """Observed count and rate of all events of one grade.

    Attributes:
        grade: ``mild`` or ``significant`` (significant includes ungraded events).
        events: Events of this grade.
        rate: Events per session; ``None`` with no sessions.
        published: The published figures for this grade.
    """

    grade: AdverseEventGrade
    events: int
    rate: float | None
    published: tuple[PublishedRate, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {
            "grade": self.grade.value,
            "events": self.events,
            "rate": self.rate,
            "published": [p.as_dict() for p in self.published],
        }


@attrs.frozen(kw_only=True)
class AdverseEventRates:
    """Adverse-event counts and rates over a stream of sessions, beside the published rates.

    Attributes:
        sessions: Sessions counted.
        events: Adverse events counted.
        kinds: One entry per :class:`~dryneedle.model.AdverseEventKind`, in vocabulary order.
        mild: All mild events.
        significant: All significant events (including ungraded ones).
        version: Library version.
    """

    sessions: int
    events: int
    kinds: tuple[KindRate, ...]
    mild: GradeRate
    significant: GradeRate
    version: str = __version__

    def kind(self, kind: AdverseEventKind) -> KindRate:
        """Return the entry of one kind."""
        for k in self.kinds:
            if k.kind is kind:
                return k
        raise KeyError(kind)  # pragma: no cover - every kind has an entry

    def as_dict(self) -> dict[str, Any]:
        """Return the rates as JSON-ready data."""
        return {
            "sessions": self.sessions,
            "events": self.events,
            "kinds": [k.as_dict() for k in self.kinds],
            "mild": self.mild.as_dict(),
            "significant": self.significant.as_dict(),
            "sources": sorted({p.source for p in PUBLISHED_RATES}),
            "version": self.version,
        }

    def to_text(self) -> str:
        """Render a table: observed events per 100 sessions beside the published figures."""
        papers = tuple(dict.fromkeys(p.source for p in PUBLISHED_RATES))
        header = ("kind", "events", "observed", *papers)
        rows: list[tuple[str, ...]] = [header]

        def published(figures: Sequence[PublishedRate]) -> tuple[str, ...]:
            by_source = {p.source: p.display() for p in figures}
            return tuple(by_source.get(s, "") for s in papers)

        rows.extend(
            (k.kind.value, str(k.events), _pct(k.rate), *published(k.published))
            for k in self.kinds
        )
        rows.extend(
            (name, str(g.events), _pct(g.rate), *published(g.published))
            for g, name in ((self.mild, "all mild"), (self.significant, "all significant"))
        )
        widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
        plural = "" if self.sessions == 1 else "s"
        lines = [f"Adverse events over {self.sessions} session{plural} "
                 "(events per 100 sessions; published figures per 100 treatments/sessions)"]
        for r in rows:
            cells = [r[0].ljust(widths[0]), *(r[c].rjust(widths[c]) for c in range(1, len(r)))]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines) + "\n"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"


def _published_for(kind: AdverseEventKind | None,
                   grade: AdverseEventGrade | None) -> tuple[PublishedRate, ...]:
    return tuple(p for p in PUBLISHED_RATES if p.kind is kind and
                 (kind is not None or p.grade is grade))


def adverse_event_rates(items: Iterable[SessionRecord | Session]) -> AdverseEventRates:
    """Count adverse events per kind over a stream of records or sessions.

    The stream is read once and nothing is kept per session: memory is proportional to the
    number of kinds. Rates are events per session, the measure brady-2014 (per treatment) and
    boyce-2020 (per session) publish. An event whose kind is not in the vocabulary counts as
    ``other``; one without a (known) grade counts as significant.

    Args:
        items: :class:`~dryneedle.model.SessionRecord` or :class:`~dryneedle.model.Session`
            objects, in any mix.

    Returns:
        The counts, rates and published comparison figures.

    Raises:
        TypeError: For an item that is neither a record nor a session.

    >>> from datetime import date
    >>> from dryneedle.aftercare import adverse_event_rates
    >>> from dryneedle.model import (AdverseEvent, AdverseEventGrade, AdverseEventKind,
    ...     Practitioner, Session)
    >>> def s(*events):
    ...     return Session(session_id="s", date=date(2026, 1, 5), number=1,
    ...                    practitioner=Practitioner(practitioner_id="pt"),
    ...                    adverse_events=events)
    >>> bruise = AdverseEvent(kind=AdverseEventKind.BRUISING, grade=AdverseEventGrade.MILD)
    >>> rates = adverse_event_rates([s(bruise), s(), s(), s()])
    >>> rates.kind(AdverseEventKind.BRUISING).rate
    0.25
    >>> [p.display() for p in rates.kind(AdverseEventKind.BRUISING).published]
    ['7.55 %', '7.7 %']
    """
    kinds = tuple(AdverseEventKind)
    events = dict.fromkeys(kinds, 0)
    mild = dict.fromkeys(kinds, 0)
    significant = dict.fromkeys(kinds, 0)
    ungraded = dict.fromkeys(kinds, 0)
    sessions_with = dict.fromkeys(kinds, 0)
    sessions = 0
    for item in items:
        obj: object = item  # checked at run time: a wrong item is a programming error
        if isinstance(obj, SessionRecord):
            session = obj.session
        elif isinstance(obj, Session):
            session = obj
        else:
            msg = f"expected a SessionRecord or a Session, got {type(item).__name__}"
            raise TypeError(msg)
        sessions += 1
        seen: set[AdverseEventKind] = set()
        for event in session.adverse_events or ():
            try:
                kind = AdverseEventKind(str(getattr(event, "kind", None)))
            except ValueError:
                kind = AdverseEventKind.OTHER
            events[kind] += 1
            seen.add(kind)
            grade = getattr(event, "grade", None)
            if grade == AdverseEventGrade.MILD:
                mild[kind] += 1
            elif grade == AdverseEventGrade.SIGNIFICANT:
                significant[kind] += 1
            else:
                ungraded[kind] += 1
        for kind in seen:
            sessions_with[kind] += 1

    def rate(count: int) -> float | None:
        return count / sessions if sessions else None

    kind_rates = tuple(
        KindRate(kind=k, events=events[k], mild=mild[k], significant=significant[k],
                 ungraded=ungraded[k], sessions_with=sessions_with[k], rate=rate(events[k]),
                 published=_published_for(k, None))
        for k in kinds
    )
    total_mild = sum(mild.values())
    total_significant = sum(significant.values()) + sum(ungraded.values())
    return AdverseEventRates(
        sessions=sessions,
        events=sum(events.values()),
        kinds=kind_rates,
        mild=GradeRate(grade=_MILD, events=total_mild, rate=rate(total_mild),
                       published=_published_for(None, _MILD)),
        significant=GradeRate(grade=_SIGNIFICANT, events=total_significant,
                              rate=rate(total_significant),
                              published=_published_for(None, _SIGNIFICANT)),
    )
