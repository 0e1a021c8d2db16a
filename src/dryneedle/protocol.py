"""Protocol validation: what was done in a session, checked against cited protocol limits.

:func:`validate_session` checks one session (and, with ``previous``, the patient's earlier
sessions) and returns a :class:`ProtocolReport` with *every* finding; it never raises on
clinical data. Every limit is read from the :class:`~dryneedle.policy.Policy` (or, for a
muscle's own depth limit, from the anatomy catalog), and every rule is registered with its
sources (see :func:`dryneedle.findings.all_rules`, category ``protocol`` and ``series``).

What is checked (SPEC section 4, default policy):

* depth: superficial technique 5-10 mm inclusive (seed, baldry-2002); deep technique deeper
  than 10 mm (seed); never deeper than the needle is long; a depth must be a positive finite
  number; an unrecorded depth is a warning;
* lung: over a muscle that overlies the lung, a depth beyond the muscle's catalog limit
  (rhomboids: 19 mm, valera-calero-rhomboid) or, where none is given, at or beyond 31 mm
  (za-bn121) without ultrasound guidance is an error; deep technique there is a warning
  (kalichman-2010); over-lung needling of both sides of the thorax in one session is an error
  (za-bn121);
* dwell: a static insertion stays 2 s to 20 min inclusive (seed); pistoning needs no dwell;
* needle count: session 1 uses at most 2 needles (seed, za-bn121); a later session adds
  needles only after a tolerated previous session (warning otherwise, seed);
* bleeding risk (bleeding disorder or antithrombotics): deep needling of a muscle without
  palpable haemostasis is an error, every other site carries a precaution (za-bn121,
  apta-2013, munoz-2022);
* screening: needling a patient screened ``not_eligible``, or a site screening excluded, is an
  error;
* practitioner and steps: an untrained practitioner, a missing pre-step (history reviewed,
  physical exam, consent, skin disinfected), a needle count removed different from inserted
  or an unchecked skin are errors, unknown ones warnings; no guide tube is informational;
* plausibility: a needle diameter or length outside the policy's ranges is a warning; a
  condition that is not an indication (e.g. inflammation as the target) is a warning.

Series checks (:class:`SeriesIndex`, :func:`validate_series`) keep one small fixed-size
summary per patient and check that session numbers strictly increase with dates, that session 1
comes first, that no two sessions fall on one day, and that needles are not added after a
poorly tolerated session. :func:`series_summary` reduces a session to what they need, so that
worker processes can validate records and one pass runs the series checks
(:meth:`SeriesIndex.add_summary`).

>>> from datetime import date
>>> from dryneedle.model import (Insertion, Manipulation, Needle, PostSteps, Practitioner,
...     PreSteps, Session, Side, Technique)
>>> from dryneedle.protocol import validate_session
>>> needle = Needle(diameter_mm=0.3, length_mm=30.0)
>>> session = Session(
...     session_id="s-1", date=date(2026, 11, 20), number=1,
...     practitioner=Practitioner(practitioner_id="pt-1", dry_needling_trained=True),
...     pre=PreSteps(history_reviewed=True, physical_exam=True, consent=True,
...                  skin_disinfected=True),
...     insertions=(
...         Insertion(muscle="rhomboid_major", side=Side.LEFT, technique=Technique.DEEP,
...                   depth_mm=22.0, manipulation=Manipulation.PISTONING, needle=needle,
...                   guide_tube=True),
...         Insertion(muscle="gluteus_medius", side=Side.RIGHT,
...                   technique=Technique.SUPERFICIAL, depth_mm=8.0,
...                   manipulation=Manipulation.STATIC, dwell_s=1.0, needle=needle,
...                   guide_tube=True),
...     ),
...     post=PostSteps(needles_removed=2, skin_checked=True))
>>> report = validate_session(session)
>>> report.valid
False
>>> [(f.code, f.severity.value, f.path) for f in report.findings]  # doctest: +NORMALIZE_WHITESPACE
[('protocol.lung.depth_limit', 'error', 'session.insertions[0].depth_mm'),
 ('protocol.lung.deep_technique', 'warning', 'session.insertions[0].technique'),
 ('protocol.dwell.range', 'error', 'session.insertions[1].dwell_s')]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Final

import attrs

from dryneedle._version import __version__
from dryneedle.catalog import CONDITIONS, MUSCLES, Muscle
from dryneedle.findings import Decision, Finding, Rule, Severity, register
from dryneedle.model import (
    AdverseEventGrade,
    Manipulation,
    Patient,
    Session,
    Side,
    Technique,
)
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.screening import ScreeningResult, screen

__all__ = [
    "ProtocolReport",
    "SeriesIndex",
    "check_session_findings",
    "rule_ids",
    "series_summary",
    "validate_series",
    "validate_session",
]


# --- rules -----------------------------------------------------------------------------------

_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO
_RULES: list[Rule] = []


def _rule(
    id_: str,
    title: str,
    severity: Severity,
    rationale: str,
    sources: tuple[str, ...],
    *limits: str,
) -> Rule:
    rule = register(
        Rule(id=id_, title=title, severity=severity, rationale=rationale, sources=sources,
             limits=limits)
    )
    _RULES.append(rule)
    return rule


_LUNG = ("za-bn121", "kalichman-2010")
_BLEED = ("za-bn121", "apta-2013", "munoz-2022")
_STEPS = ("seed", "za-bn121")

MUSCLE_UNKNOWN = _rule(
    "protocol.muscle.unknown", "Muscle not in the anatomy catalog", _E,
    "The lung and haemostasis facts come from the anatomy catalog; an insertion into an "
    "unknown muscle cannot be checked against them (unknown is never safe).",
    ("policy",),
)
DEPTH_UNKNOWN = _rule(
    "protocol.depth.unknown", "Insertion depth not recorded", _W,
    "Depth limits (technique range, lung, needle length) cannot be checked without a depth; "
    "unknown is never safe.",
    ("seed", "za-bn121", "policy"),
)
DEPTH_NOT_POSITIVE = _rule(
    "protocol.depth.not_positive", "Depth is not a positive finite number", _E,
    "An insertion reaches a positive, finite depth; zero, negative or non-finite depths are "
    "data errors.",
    ("policy",),
)
DEPTH_SUPERFICIAL = _rule(
    "protocol.depth.superficial_range", "Superficial technique outside its depth range", _E,
    "The superficial technique inserts the needle 5-10 mm (inclusive) into the subcutaneous "
    "tissue above the trigger point.",
    ("seed", "baldry-2002"), "superficial_min_depth_mm", "superficial_max_depth_mm",
)
DEPTH_DEEP = _rule(
    "protocol.depth.deep_minimum", "Deep technique not deeper than the subcutaneous tissue", _E,
    "The deep technique goes beyond the subcutaneous tissue into the muscle: deeper than "
    "the policy's minimum (exclusive).",
    ("seed",), "deep_min_depth_mm",
)
DEPTH_BEYOND_NEEDLE = _rule(
    "protocol.depth.beyond_needle", "Depth beyond the needle's length", _E,
    "A needle cannot reach deeper than it is long (equal is allowed): a physical "
    "impossibility, so the depth or the needle is recorded wrongly, under every technique.",
    ("policy",),
)
# The source of the catalog's own muscle limits: cited only where such a limit was applied.
_MUSCLE_LIMIT_SOURCE: Final = "valera-calero-rhomboid"
LUNG_DEPTH = _rule(
    "protocol.lung.depth_limit", "Over the lung beyond the depth limit without ultrasound", _E,
    "Over the lung, a depth beyond the muscle's catalog limit (rhomboids 19 mm, "
    "valera-calero-rhomboid) or, where the catalog gives none, at or beyond the policy limit "
    "(a 3.1 cm needle reached lung, za-bn121) risks pneumothorax unless ultrasound-guided "
    "(unknown guidance counts as not guided).",
    ("za-bn121", _MUSCLE_LIMIT_SOURCE, "munoz-2022"), "over_lung_max_depth_mm",
)
LUNG_DEEP = _rule(
    "protocol.lung.deep_technique", "Deep technique over the lung", _W,
    "Over the lungs the superficial technique is preferred.", _LUNG,
)
LUNG_BOTH_SIDES = _rule(
    "protocol.lung.both_sides", "Both sides of the thorax needled in one session", _E,
    "Never needle both sides of the thorax in one session (a bilateral pneumothorax is "
    "life-threatening). A midline over-lung insertion may reach either side, so it pairs "
    "with any other over-lung insertion; a single insertion is never both sides.",
    ("za-bn121",),
)
DWELL_RANGE = _rule(
    "protocol.dwell.range", "Static dwell time outside its range", _E,
    "A static needle stays in place from two seconds to 20 minutes (both inclusive); "
    "pistoning needs no dwell time.",
    ("seed",), "dwell_min_s", "dwell_max_s",
)
DWELL_UNKNOWN = _rule(
    "protocol.dwell.unknown", "Dwell time of a static insertion not recorded", _W,
    "The dwell time limits cannot be checked without a dwell time.", ("seed", "policy"),
    "dwell_min_s", "dwell_max_s",
)
NEEDLES_FIRST = _rule(
    "protocol.needles.first_session", "Too many needles in the first session", _E,
    "In the first session use only one or two needles; avoid over-needling at the first "
    "treatment.",
    ("seed", "za-bn121"), "first_session_max_needles",
)
NEEDLES_INCREASE = _rule(
    "protocol.needles.increase_after_poor_tolerance",
    "More needles after a poorly tolerated session", _W,
    "The number of needles is increased depending on progress: only after a tolerated "
    "previous session (no adverse event beyond mild; an ungraded event counts as not mild).",
    ("seed", "brady-2014", "boyce-2020"),
)
BLEEDING_NO_HAEMOSTASIS = _rule(
    "protocol.bleeding.no_palpable_haemostasis",
    "Deep needling without palpable haemostasis under bleeding risk", _E,
    "With a bleeding disorder or antithrombotic therapy, deep needling of a muscle where "
    "haemostasis by palpation is impossible (e.g. psoas, tibialis posterior) is "
    "contra-indicated.",
    _BLEED,
)
BLEEDING_PRECAUTION = _rule(
    "protocol.bleeding.precaution", "Needling under bleeding risk: light technique", _W,
    "Abnormal bleeding tendency is needled with caution: light technique and haemostasis by "
    "palpation after each insertion.",
    _BLEED,
)
BLEEDING_UNKNOWN = _rule(
    "protocol.bleeding.unknown",
    "Deep needling without palpable haemostasis, bleeding risk unknown", _W,
    "Unknown is never safe: when the bleeding-disorder or antithrombotic answer is unknown, deep "
    "needling of a muscle where haemostasis by palpation is impossible is flagged for review "
    "(clinic policy default).",
    (*_BLEED, "policy"),
)
SCREENING_NOT_ELIGIBLE = _rule(
    "protocol.screening.not_eligible", "Needled a patient screened not eligible", _E,
    "A patient whose screening decision is not_eligible must not be needled.",
    ("seed", "za-bn121"),
)
SCREENING_SITE_EXCLUDED = _rule(
    "protocol.screening.site_excluded", "Needled a site screening excluded", _E,
    "A site excluded by screening (wound, scar, tattoo, injury, infection, lymphoedema, "
    "implant, recent surgery, or bleeding risk) must not be needled.",
    ("seed", "za-bn121"),
)
PRACTITIONER_UNTRAINED = _rule(
    "protocol.practitioner.untrained", "Practitioner not trained in dry needling", _E,
    "Dry needling must be performed by a trained professional.", ("seed", "va-pt-guidance"),
)
PRACTITIONER_UNKNOWN = _rule(
    "protocol.practitioner.unknown", "Practitioner training not recorded", _W,
    "Dry needling must be performed by a trained professional; unknown training is never "
    "read as trained.",
    ("seed", "va-pt-guidance"),
)
_PRE_TEXT = {
    "history_reviewed": ("Medical history not reviewed", "the medical history is reviewed"),
    "physical_exam": ("Physical exam not performed", "a physical exam is performed"),
    "consent": ("Consent not obtained for the session", "consent is obtained"),
    "skin_disinfected": ("Skin not disinfected", "the skin is disinfected"),
}
PRE_MISSING: Final = {
    step: _rule(
        f"protocol.pre.{step}", title, _E,
        f"Before needling, {what} (seed; za-bn121 section 7).", _STEPS,
    )
    for step, (title, what) in _PRE_TEXT.items()
}
PRE_UNKNOWN: Final = {
    step: _rule(
        f"protocol.pre.{step}.unknown", f"Pre-treatment step {step} not recorded", _W,
        f"Before needling, {what}; an unrecorded step is never read as done.", _STEPS,
    )
    for step, (_, what) in _PRE_TEXT.items()
}
POST_NEEDLES = _rule(
    "protocol.post.needles_removed", "Needles removed differ from needles inserted", _E,
    "After the procedure every needle is removed and accounted for: the removed count equals "
    "the inserted count.",
    _STEPS,
)
POST_NEEDLES_UNKNOWN = _rule(
    "protocol.post.needles_removed.unknown", "Removed needle count not recorded", _W,
    "Every needle must be accounted for; an unrecorded count is never read as complete.",
    _STEPS,
)
POST_SKIN = _rule(
    "protocol.post.skin_checked", "Skin not checked after needling", _E,
    "After removing the needles the skin is examined for reactions.", _STEPS,
)
POST_SKIN_UNKNOWN = _rule(
    "protocol.post.skin_checked.unknown", "Skin check not recorded", _W,
    "After removing the needles the skin is examined; an unrecorded check is never read as "
    "done.",
    _STEPS,
)
GUIDE_TUBE = _rule(
    "protocol.guide_tube.not_used", "No guide tube", _I,
    "The needle is usually placed through a plastic guide tube (informational).", ("seed",),
)
NEEDLE_IMPLAUSIBLE = _rule(
    "protocol.needle.implausible", "Needle size outside the plausible range", _W,
    "Filiform needle diameters and lengths outside the policy's ranges are probably recorded "
    "wrongly (e.g. in the wrong unit). Clinic policy default ranges.",
    ("policy", "baldry-2002"),
    "needle_diameter_min_mm", "needle_diameter_max_mm", "needle_length_min_mm",
    "needle_length_max_mm",
)
CONDITION_NOT_INDICATION = _rule(
    "protocol.condition.not_indication", "Condition treated is not an indication", _W,
    "Dry needling does not treat this target (e.g. it is not anti-inflammatory).", ("seed",),
)

SERIES_NUMBER_ORDER = _rule(
    "series.number_order", "Session numbers do not increase with dates", _E,
    "A patient's session numbers strictly increase with the session dates (two sessions never "
    "share a number); the first-session rules depend on them. Data-integrity rule, clinic "
    "policy default.",
    ("policy",),
)
SERIES_FIRST = _rule(
    "series.first_session_number", "Session 1 is not the first session", _W,
    "The first session of a patient is number 1 (the first-session needle limit depends on "
    "it); a session dated before session 1, a second session 1, or a first session with "
    "another number is flagged. Partial exports may start after session 1.",
    ("seed", "za-bn121"),
)
SERIES_SAME_DAY = _rule(
    "series.same_day", "Two sessions of one patient on the same day", _W,
    "Two sessions of one patient on one day are flagged for review. Clinic policy default.",
    ("policy",),
)
SERIES_NEEDLES = _rule(
    "series.needles_after_poor_tolerance", "More needles after a poorly tolerated session", _W,
    "Needles are added depending on progress: only after a tolerated previous session (no "
    "adverse event beyond mild; an ungraded event counts as not mild).",
    ("seed", "brady-2014", "boyce-2020"),
)


def rule_ids() -> tuple[str, ...]:
    """Return the ids of the protocol and series rules, in registration order.

    >>> from dryneedle.protocol import rule_ids
    >>> "protocol.lung.both_sides" in rule_ids(), "series.same_day" in rule_ids()
    (True, True)
    """
    return tuple(r.id for r in _RULES)


# --- per-policy tables ---------------------------------------------------------------------------

_INF: Final = math.inf
_NOT_INDICATIONS: Final = frozenset(c.id for c in CONDITIONS.values() if not c.indication)
# The model converts enum values to members and refuses mistyped answers, so members are
# compared by identity. Anything that is not exactly superficial / pistoning / mild / left /
# right is read the unsafe way (deep, static with a dwell to check, not tolerated, either side).
_MILD: Final = AdverseEventGrade.MILD
_SUPERFICIAL: Final = Technique.SUPERFICIAL
_PISTONING: Final = Manipulation.PISTONING
_LEFT: Final = Side.LEFT
_RIGHT: Final = Side.RIGHT


class _Table:
    """Severities, sources and limits of one policy, computed once per policy."""

    __slots__ = (
        "deep_min",
        "diam_max",
        "diam_min",
        "dwell_max",
        "dwell_min",
        "findings",
        "first_max",
        "len_max",
        "len_min",
        "lung_max",
        "lung_policy_sources",
        "rules",
        "sup_max",
        "sup_min",
    )

    def __init__(self, policy: Policy) -> None:
        rules: dict[str, tuple[Severity, tuple[str, ...]]] = {}
        for rule in _RULES:
            sources = rule.sources
            o = policy.rule_override(rule.id)
            if o is not None and o.sources:
                sources = tuple(dict.fromkeys((*sources, *o.sources)))
            rules[rule.id] = (policy.severity_of(rule.id, rule.severity), sources)
        self.rules = rules
        self.findings: dict[tuple[Any, ...], Finding] = {}
        # Over the lung where the catalog gives no muscle limit, the policy limit applies.
        self.lung_policy_sources = tuple(
            s for s in rules[LUNG_DEPTH.id][1] if s != _MUSCLE_LIMIT_SOURCE)
        self.sup_min = policy.superficial_min_depth_mm
        self.sup_max = policy.superficial_max_depth_mm
        self.deep_min = policy.deep_min_depth_mm
        self.lung_max = policy.over_lung_max_depth_mm
        self.dwell_min = policy.dwell_min_s
        self.dwell_max = policy.dwell_max_s
        self.first_max = policy.first_session_max_needles
        self.diam_min = policy.needle_diameter_min_mm
        self.diam_max = policy.needle_diameter_max_mm
        self.len_min = policy.needle_length_min_mm
        self.len_max = policy.needle_length_max_mm


_FINDINGS_MAX: Final = 8192


def _table(policy: Policy) -> _Table:
    """Return the precomputed table of a policy (kept in the policy's memo)."""
    t = policy.memo.get(__name__)
    if t is None:
        t = policy.memo[__name__] = _Table(policy)
    return t


def _emit(
    out: list[Finding], t: _Table, rule: Rule, path: str, message: str,
    sources: tuple[str, ...] | None = None,
) -> None:
    key = (rule.id, path, message, sources)
    finding = t.findings.get(key)
    if finding is None:  # findings are immutable values: equal ones are shared
        severity, rule_sources = t.rules[rule.id]
        finding = Finding(code=rule.id, severity=severity, path=path, message=message,
                          sources=rule_sources if sources is None else sources)
        if len(t.findings) >= _FINDINGS_MAX:
            t.findings.clear()
        t.findings[key] = finding
    out.append(finding)


def _tolerated(session: Session) -> bool:
    """Return ``True`` when no adverse event of the session was beyond mild (ungraded = not)."""
    for ae in session.adverse_events:  # noqa: SIM110 - a plain loop is faster than all(genexpr)
        if ae.grade is not _MILD:
            return False
    return True


def _mm(value: float) -> str:
    return f"{value:g} mm"


# --- per-session checks --------------------------------------------------------------------------


def check_session_findings(
    session: Session,
    *,
    patient: Patient | None,
    screening: ScreeningResult | None,
    policy: Policy,
    on: date | None = None,
) -> list[Finding]:
    """Return every per-session protocol finding (no series checks) for one session.

    This is the function :class:`dryneedle.records.Validator` calls for each record; it makes
    one pass over the insertions, raises no exception on the valid path and builds path
    strings only for findings.

    Patient-dependent rules (bleeding risk, screening ``not_eligible``, excluded sites, the
    treated conditions) need the patient. When ``patient`` is ``None`` (its part of the record
    was unreadable) they do not run: nothing is claimed safe, and the structural errors
    already make the record invalid. When a patient is given without a ``screening`` result,
    the patient is screened here (on the session's date, for its insertions).

    Args:
        session: The session.
        patient: The session's patient, or ``None`` when unknown.
        screening: The screening result for this record (from
            :func:`dryneedle.screening.screen_for_record`), or ``None``.
        policy: The policy.
        on: Evaluation date when the patient must be screened here (default: the session date).

    Returns:
        The findings, in order: insertions (in order), the set of insertions, screening,
        practitioner, pre-steps, post-steps, conditions.
    """
    if patient is not None and screening is None and session.insertions:
        screening = screen(patient, on=on or session.date, sites=session.insertions,
                           policy=policy)
    not_eligible = screening is not None and screening.decision is Decision.NOT_ELIGIBLE
    excluded: frozenset[int] = frozenset()
    if screening is not None and session.insertions:
        excluded = screening.excluded_indices
    return _check_session(session, patient, not_eligible, excluded, _table(policy))


def _check_session(
    session: Session,
    patient: Patient | None,
    not_eligible: bool,
    excluded: frozenset[int],
    t: _Table,
) -> list[Finding]:
    """The per-session checks, given the screening outcome (used by the record validator)."""
    out: list[Finding] = []
    insertions = session.insertions
    n = len(insertions)

    bleeding = bleeding_unknown = False
    if patient is not None:
        h = patient.history
        bleeding = h.bleeding_disorder is True or h.anticoagulant_therapy is True
        bleeding_unknown = not bleeding and (
            h.bleeding_disorder is None or h.anticoagulant_therapy is None
        )

    sup_min, sup_max, deep_min = t.sup_min, t.sup_max, t.deep_min
    lung_max = t.lung_max
    dwell_min, dwell_max = t.dwell_min, t.dwell_max
    diam_min, diam_max, len_min, len_max = t.diam_min, t.diam_max, t.len_min, t.len_max
    muscles_get = MUSCLES.get
    left = right = False
    midline = lung = 0
    for i, ins in enumerate(insertions):
        muscle = muscles_get(ins.muscle)
        deep = ins.technique is not _SUPERFICIAL
        depth = ins.depth_mm
        lung_muscle: Muscle | None = None
        if muscle is None:
            _emit(out, t, MUSCLE_UNKNOWN, f"session.insertions[{i}].muscle",
                  "muscle is not in the anatomy catalog: lung and haemostasis facts unknown")
        elif muscle.over_lung:
            lung_muscle = muscle
            lung += 1
            side = ins.side
            if side is _LEFT:
                left = True
            elif side is _RIGHT:
                right = True
            else:
                midline += 1

        # Depth.
        if depth is None:
            _emit(out, t, DEPTH_UNKNOWN, f"session.insertions[{i}].depth_mm",
                  "depth is not recorded: depth limits cannot be checked"
                  + (" (over the lung)" if lung_muscle is not None else ""))
        elif not 0.0 < depth < _INF:
            _emit(out, t, DEPTH_NOT_POSITIVE, f"session.insertions[{i}].depth_mm",
                  "depth must be a positive finite number of millimetres")
        else:
            if not deep:
                if not sup_min <= depth <= sup_max:
                    _emit(out, t, DEPTH_SUPERFICIAL, f"session.insertions[{i}].depth_mm",
                          f"superficial technique at {_mm(depth)} is outside "
                          f"{sup_min:g}-{sup_max:g} mm")
            elif not depth > deep_min:
                _emit(out, t, DEPTH_DEEP, f"session.insertions[{i}].depth_mm",
                      f"deep technique at {_mm(depth)} is not deeper than {_mm(deep_min)}")
            length = ins.needle.length_mm
            if length is not None and not depth <= length:
                _emit(out, t, DEPTH_BEYOND_NEEDLE, f"session.insertions[{i}].depth_mm",
                      f"depth {_mm(depth)} is beyond the needle's length {_mm(length)}")
            if lung_muscle is not None and ins.ultrasound_guided is not True:
                limit = lung_muscle.depth_limit_mm
                if limit is not None:
                    if not depth <= limit:
                        _emit(out, t, LUNG_DEPTH, f"session.insertions[{i}].depth_mm",
                              f"{lung_muscle.id} overlies the lung: {_mm(depth)} is beyond "
                              f"its {_mm(limit)} limit without ultrasound guidance")
                elif not depth < lung_max:
                    _emit(out, t, LUNG_DEPTH, f"session.insertions[{i}].depth_mm",
                          f"{lung_muscle.id} overlies the lung: {_mm(depth)} reaches the "
                          f"{_mm(lung_max)} limit without ultrasound guidance",
                          t.lung_policy_sources)
        if lung_muscle is not None and deep:
            _emit(out, t, LUNG_DEEP, f"session.insertions[{i}].technique",
                  f"deep technique over the lung ({lung_muscle.id}): superficial is preferred")

        # Dwell.
        if ins.manipulation is not _PISTONING:  # static: the dwell is checked
            dwell = ins.dwell_s
            if dwell is None:
                _emit(out, t, DWELL_UNKNOWN, f"session.insertions[{i}].dwell_s",
                      "dwell time of a static insertion is not recorded")
            elif not dwell_min <= dwell <= dwell_max:
                _emit(out, t, DWELL_RANGE, f"session.insertions[{i}].dwell_s",
                      f"static dwell {dwell:g} s is outside {t.dwell_min:g}-{t.dwell_max:g} s")

        # Needle plausibility.
        needle = ins.needle
        diameter = needle.diameter_mm
        if diameter is not None and not diam_min <= diameter <= diam_max:
            _emit(out, t, NEEDLE_IMPLAUSIBLE, f"session.insertions[{i}].needle.diameter_mm",
                  f"needle diameter {_mm(diameter)} is outside "
                  f"{t.diam_min:g}-{t.diam_max:g} mm")
        length = needle.length_mm
        if length is not None and not len_min <= length <= len_max:
            _emit(out, t, NEEDLE_IMPLAUSIBLE, f"session.insertions[{i}].needle.length_mm",
                  f"needle length {_mm(length)} is outside {t.len_min:g}-{t.len_max:g} mm")
        if ins.guide_tube is False:
            _emit(out, t, GUIDE_TUBE, f"session.insertions[{i}].guide_tube",
                  "no guide tube was used")

        # Bleeding risk.
        if bleeding and muscle is not None:
            if deep and not muscle.palpable_haemostasis:
                _emit(out, t, BLEEDING_NO_HAEMOSTASIS, f"session.insertions[{i}]",
                      f"bleeding risk: deep needling of {muscle.id}, where haemostasis by "
                      "palpation is impossible")
            else:
                _emit(out, t, BLEEDING_PRECAUTION, f"session.insertions[{i}]",
                      "bleeding risk: light technique and haemostasis by palpation")
        elif (bleeding_unknown and deep and muscle is not None
              and not muscle.palpable_haemostasis):
            _emit(out, t, BLEEDING_UNKNOWN, f"session.insertions[{i}]",
                  f"bleeding risk unknown: deep needling of {muscle.id}, where haemostasis by "
                  "palpation is impossible")

        # Screening.
        if excluded and i in excluded:
            _emit(out, t, SCREENING_SITE_EXCLUDED, f"session.insertions[{i}]",
                  "this site was excluded by screening but was needled")

    # The set of insertions.
    if lung > 1 and ((left and right) or midline):
        _emit(out, t, LUNG_BOTH_SIDES, "session.insertions",
              "over-lung insertions on both sides of the thorax in one session"
              + (" (a midline insertion counts as either side)" if midline else ""))
    if session.number == 1 and n > t.first_max:
        _emit(out, t, NEEDLES_FIRST, "session.insertions",
              f"{n} needles in the first session; at most {t.first_max}")

    if n:
        if not_eligible:
            _emit(out, t, SCREENING_NOT_ELIGIBLE, "session",
                  "the patient was screened not_eligible but was needled")
        trained = session.practitioner.dry_needling_trained
        if trained is not True:
            if trained is False:
                _emit(out, t, PRACTITIONER_UNTRAINED,
                      "session.practitioner.dry_needling_trained",
                      "the practitioner is not trained in dry needling")
            else:
                _emit(out, t, PRACTITIONER_UNKNOWN, "session.practitioner.dry_needling_trained",
                      "the practitioner's dry needling training is not recorded")
        pre = session.pre
        if not (pre.history_reviewed is True and pre.physical_exam is True
                and pre.consent is True and pre.skin_disinfected is True):
            _check_pre(out, t, pre.history_reviewed, "history_reviewed")
            _check_pre(out, t, pre.physical_exam, "physical_exam")
            _check_pre(out, t, pre.consent, "consent")
            _check_pre(out, t, pre.skin_disinfected, "skin_disinfected")

    post = session.post
    removed = post.needles_removed
    if removed is None:
        if n:
            _emit(out, t, POST_NEEDLES_UNKNOWN, "session.post.needles_removed",
                  f"the number of needles removed is not recorded ({n} inserted)")
    elif removed != n:
        _emit(out, t, POST_NEEDLES, "session.post.needles_removed",
              f"{removed} needles removed but {n} inserted")
    skin_checked = post.skin_checked
    if n and skin_checked is not True:
        if skin_checked is False:
            _emit(out, t, POST_SKIN, "session.post.skin_checked",
                  "the skin was not checked after needling")
        else:
            _emit(out, t, POST_SKIN_UNKNOWN, "session.post.skin_checked",
                  "the skin check after needling is not recorded")

    if patient is not None:
        conditions = patient.conditions
        if conditions and not _NOT_INDICATIONS.isdisjoint(conditions):
            for j, cid in enumerate(conditions):
                if cid in _NOT_INDICATIONS:
                    _emit(out, t, CONDITION_NOT_INDICATION, f"patient.conditions[{j}]",
                          f"{cid} is not an indication for dry needling")
    return out


def _check_pre(out: list[Finding], t: _Table, value: bool | None, step: str) -> None:
    if value is False:
        _emit(out, t, PRE_MISSING[step], f"session.pre.{step}",
              f"pre-treatment step {step} was not done")
    elif value is not True:  # unknown (never read as done)
        _emit(out, t, PRE_UNKNOWN[step], f"session.pre.{step}",
              f"pre-treatment step {step} is not recorded")


# --- series --------------------------------------------------------------------------------------

# The per-patient state kept by SeriesIndex: a fixed-size tuple, never the sessions.
# (latest date, latest number, latest needle count, latest tolerated, date of session 1 or None)
_State = tuple[date, int, int, bool, date | None]


def series_summary(session: Session) -> tuple[date, int, int, bool]:
    """Return the small, picklable summary of a session that the series checks need.

    The parallel pipeline validates records in worker processes and runs the series checks in
    one pass over these summaries (:meth:`SeriesIndex.add_summary`); the findings are the
    same as :meth:`SeriesIndex.add` on the session.

    Args:
        session: The session.

    Returns:
        ``(date, number, needle count, tolerated)``: tolerated is ``False`` when an adverse
        event was beyond mild or ungraded.

    >>> from datetime import date
    >>> from dryneedle.model import Practitioner, Session
    >>> from dryneedle.protocol import series_summary
    >>> series_summary(Session(session_id="s", date=date(2026, 1, 5), number=2,
    ...     practitioner=Practitioner(practitioner_id="pt-1")))
    (datetime.date(2026, 1, 5), 2, 0, True)
    """
    return (session.date, session.number, len(session.insertions), _tolerated(session))


def _pair_checks(
    out: list[Finding], t: _Table, other_date: date, other_number: int, d: date, number: int
) -> bool:
    """Check a session (date ``d``, ``number``) against another session of the same patient.

    Emits ``series.same_day`` and ``series.number_order`` findings about the session; returns
    ``True`` on an order error.
    """
    if d == other_date:
        _emit(out, t, SERIES_SAME_DAY, "session.date",
              "another session of this patient is on the same day")
    if (
        number == other_number
        or (d > other_date and number < other_number)
        or (d < other_date and number > other_number)
    ):
        if number == other_number:
            msg = f"another session of this patient also has number {number}"
        else:
            msg = (f"session number {number} does not increase with dates (another session "
                   f"numbered {other_number} is {'earlier' if d > other_date else 'later'})")
        _emit(out, t, SERIES_NUMBER_ORDER, "session.number", msg)
        return True
    return False


class SeriesIndex:
    """Streaming series checks, keyed by patient id.

    Holds one small fixed-size summary per patient (latest date, number, needle count and
    tolerance, and the date of session 1) and never the sessions themselves, so memory grows
    with the number of patients, not records. Each added session is compared with the latest
    session seen for its patient: the checks are exact when each patient's records arrive in
    chronological order (the usual export order); otherwise each session is compared with the
    latest one seen so far.

    Args:
        policy: The policy (severities of the ``series.*`` rules).

    >>> from datetime import date
    >>> from dryneedle.model import Practitioner, Session
    >>> from dryneedle.protocol import SeriesIndex
    >>> pt = Practitioner(practitioner_id="pt-1", dry_needling_trained=True)
    >>> index = SeriesIndex()
    >>> index.add("p-1", Session(session_id="a", date=date(2026, 1, 5), number=1,
    ...                          practitioner=pt))
    []
    >>> [f.code for f in index.add("p-1", Session(session_id="b", date=date(2026, 1, 5),
    ...                                          number=1, practitioner=pt))]
    ['series.same_day', 'series.number_order']
    >>> len(index)
    1
    """

    __slots__ = ("_state", "_table")

    def __init__(self, *, policy: Policy = DEFAULT_POLICY) -> None:
        self._table = _table(policy)
        self._state: dict[str, _State] = {}

    def __len__(self) -> int:
        """Return the number of patients seen."""
        return len(self._state)

    def add(self, patient_id: str, session: Session) -> list[Finding]:
        """Add one session of a patient and return the series findings about it.

        Args:
            patient_id: The patient's pseudonymous id (never put into messages).
            session: The session.

        Returns:
            Findings at ``session.number``, ``session.date`` or ``session.insertions``.
        """
        return self.add_summary(patient_id, series_summary(session))

    def add_summary(self, patient_id: str, summary: tuple[date, int, int, bool]) -> list[Finding]:
        """Add one session of a patient by its :func:`series_summary`; return its findings.

        Args:
            patient_id: The patient's pseudonymous id (never put into messages).
            summary: The session's :func:`series_summary`.

        Returns:
            The same findings as :meth:`add` on the session.
        """
        t = self._table
        out: list[Finding] = []
        d, number, count, tolerated = summary
        prev = self._state.get(patient_id)
        if prev is None:
            if number != 1:
                _emit(out, t, SERIES_FIRST, "session.number",
                      f"the first session seen for this patient is number {number}, not 1")
            self._state[patient_id] = (d, number, count, tolerated, d if number == 1 else None)
            return out
        p_date, p_number, p_count, p_tolerated, first = prev
        order_error = _pair_checks(out, t, p_date, p_number, d, number)
        if number == 1:
            if first is not None and not order_error:
                _emit(out, t, SERIES_FIRST, "session.number",
                      "a second session is numbered 1")
            if first is None or d < first:
                first = d
        elif first is not None and d < first and not order_error:
            _emit(out, t, SERIES_FIRST, "session.number",
                  f"session {number} is dated before session 1")
        if (d, number) > (p_date, p_number):
            if count > p_count and not p_tolerated:
                _emit(out, t, SERIES_NEEDLES, "session.insertions",
                      f"{count} needles after a previous session of {p_count} that was not "
                      "tolerated (adverse event beyond mild or ungraded)")
            self._state[patient_id] = (d, number, count, tolerated, first)
        else:
            self._state[patient_id] = (p_date, p_number, p_count, p_tolerated, first)
        return out


def validate_series(
    sessions: Iterable[Session], *, policy: Policy = DEFAULT_POLICY
) -> tuple[tuple[int, Finding], ...]:
    """Run the series checks over one patient's sessions.

    The sessions are checked in chronological order (by date, then number, then input
    position), exactly as a :class:`SeriesIndex` checks a stream in that order.

    Args:
        sessions: One patient's sessions, in any order.
        policy: The policy.

    Returns:
        ``(i, finding)`` pairs, where ``i`` is the position of the session in ``sessions``
        and ``finding.path`` is record-rooted (``session.number``, ``session.date``,
        ``session.insertions``), ordered by chronological position.

    >>> from datetime import date
    >>> from dryneedle.model import Practitioner, Session
    >>> from dryneedle.protocol import validate_series
    >>> pt = Practitioner(practitioner_id="pt-1", dry_needling_trained=True)
    >>> s = [Session(session_id="b", date=date(2026, 2, 1), number=1, practitioner=pt),
    ...      Session(session_id="a", date=date(2026, 1, 1), number=2, practitioner=pt)]
    >>> [(i, f.code, f.path) for i, f in validate_series(s)]  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'series.first_session_number', 'session.number'),
     (0, 'series.number_order', 'session.number')]
    """
    items = list(sessions)
    order = sorted(range(len(items)), key=lambda k: (items[k].date, items[k].number, k))
    index = SeriesIndex(policy=policy)
    out: list[tuple[int, Finding]] = []
    for k in order:
        out.extend((k, f) for f in index.add("", items[k]))
    return tuple(out)


# --- the report ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProtocolReport:
    """The outcome of :func:`validate_session`.

    Attributes:
        findings: Every protocol (``protocol.*``) and series (``series.*``) finding, with
            record-rooted paths.
        valid: ``True`` when no finding has severity ``error``.
        decision: The screening decision when a patient was given, else ``None``.
        screening: The screening result the protocol rules used (its own findings are not
            repeated in :attr:`findings`).
        policy: Fingerprint of the policy used.
        policy_name: Name of the policy used.
        version: Library version.
    """

    findings: tuple[Finding, ...]
    valid: bool
    decision: Decision | None = None
    screening: ScreeningResult | None = attrs.field(default=None, eq=False, repr=False)
    policy: str
    policy_name: str
    version: str = __version__

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "valid": self.valid,
            "decision": None if self.decision is None else self.decision.value,
            "findings": [f.as_dict() for f in self.findings],
            "policy": {"name": self.policy_name, "fingerprint": self.policy},
            "version": self.version,
        }


def validate_session(
    session: Session,
    *,
    patient: Patient | None = None,
    previous: Sequence[Session] = (),
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
) -> ProtocolReport:
    """Validate one session against the protocol and return every finding.

    Args:
        session: The session.
        patient: Its patient; enables the screening-dependent and bleeding-risk rules (the
            patient is screened on ``on`` or the session's date, for its insertions).
        previous: The patient's earlier sessions. The latest one before ``session`` (by date,
            then number) decides whether needles may be added; series checks compare
            ``session`` with each of them (none run when ``previous`` is empty).
        policy: The policy.
        on: Evaluation date of the screening (default: the session's date).

    Returns:
        The :class:`ProtocolReport`; never raises on clinical data.
    """
    t = _table(policy)
    screening = None
    if patient is not None:
        screening = screen(patient, on=session.date if on is None else on,
                           sites=session.insertions, policy=policy)
    out = check_session_findings(session, patient=patient, screening=screening, policy=policy)
    others = [p for p in previous if p is not session]
    if others:
        key = (session.date, session.number)
        latest: Session | None = None
        latest_key = key
        series: list[Finding] = []
        order_error = False
        for p in others:
            p_key = (p.date, p.number)
            order_error |= _pair_checks(series, t, p_key[0], p_key[1], key[0], key[1])
            if p_key < key and (latest is None or p_key > latest_key):
                latest, latest_key = p, p_key
        if latest is None and session.number != 1 and not order_error:
            _emit(series, t, SERIES_FIRST, "session.number",
                  f"this is the earliest session given but is number {session.number}, not 1")
        seen: set[tuple[str, str]] = set()
        for f in series:  # one finding per code and path, however many sessions conflict
            if (f.code, f.path) not in seen:
                seen.add((f.code, f.path))
                out.append(f)
        n, m = len(session.insertions), 0 if latest is None else len(latest.insertions)
        if latest is not None and n > m and not _tolerated(latest):
            _emit(out, t, NEEDLES_INCREASE, "session.insertions",
                  f"{n} needles after a previous session of {m} that was not tolerated "
                  "(adverse event beyond mild or ungraded)")
    valid = all(f.severity is not Severity.ERROR for f in out)
    return ProtocolReport(
        findings=tuple(out),
        valid=valid,
        decision=None if screening is None else screening.decision,
        screening=screening,
        policy=policy.fingerprint,
        policy_name=policy.name,
    )
