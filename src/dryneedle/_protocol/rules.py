"""Protocol and series rules: their declarations and the per-policy table the checks read.

Private module behind :mod:`dryneedle.protocol` (import the public names from there). Every
``protocol.*`` and ``series.*`` rule is declared here with ``_rule(...)``, which registers it in
:mod:`dryneedle.findings` when this module is imported; :func:`rule_ids` lists them in
registration order. :class:`ProtocolTable` holds, per policy, each rule's severity and sources
and the policy limits the checks compare with; :func:`emit` turns a rule into a finding.

A new protocol or series rule is declared here (its id, title, severity, rationale, sources and
the policy limits it reads), then applied in :mod:`dryneedle._protocol.session` (per-session
checks) or :mod:`dryneedle._protocol.series` (series checks) through :func:`emit`.

May import: the model, reference data, findings and policy; no other protocol module (this is
the lowest of them).
"""

from __future__ import annotations

from typing import Any, Final

from dryneedle.findings import Finding, Rule, Severity, register
from dryneedle.model import AdverseEventGrade, Session
from dryneedle.policy import Policy

__all__ = [
    "BLEEDING_NO_HAEMOSTASIS",
    "BLEEDING_PRECAUTION",
    "BLEEDING_UNKNOWN",
    "CONDITION_NOT_INDICATION",
    "DEPTH_BEYOND_NEEDLE",
    "DEPTH_DEEP",
    "DEPTH_NOT_POSITIVE",
    "DEPTH_SUPERFICIAL",
    "DEPTH_UNKNOWN",
    "DWELL_RANGE",
    "DWELL_UNKNOWN",
    "GUIDE_TUBE",
    "LUNG_BOTH_SIDES",
    "LUNG_DEEP",
    "LUNG_DEPTH",
    "MUSCLE_UNKNOWN",
    "NEEDLES_FIRST",
    "NEEDLES_INCREASE",
    "NEEDLE_IMPLAUSIBLE",
    "POST_NEEDLES",
    "POST_NEEDLES_UNKNOWN",
    "POST_SKIN",
    "POST_SKIN_UNKNOWN",
    "PRACTITIONER_UNKNOWN",
    "PRACTITIONER_UNTRAINED",
    "PRE_MISSING",
    "PRE_UNKNOWN",
    "SCREENING_NOT_ELIGIBLE",
    "SCREENING_SITE_EXCLUDED",
    "SERIES_FIRST",
    "SERIES_NEEDLES",
    "SERIES_NUMBER_ORDER",
    "SERIES_SAME_DAY",
    "ProtocolTable",
    "emit",
    "protocol_table",
    "rule_ids",
    "tolerated",
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

# The model converts enum values to members and refuses mistyped answers, so members are
# compared by identity: anything that is not exactly mild is read as not tolerated.
_MILD: Final = AdverseEventGrade.MILD



class ProtocolTable:
    """Severities, sources and limits of one policy, computed once per policy.

    Get it with :func:`protocol_table` (which keeps one per policy) and pass it to
    :func:`check_screened_session`; its contents are the checks' business.

    Args:
        policy: The policy.
    """

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


def protocol_table(policy: Policy) -> ProtocolTable:
    """Return the precomputed table of a policy (kept in the policy's memo).

    Args:
        policy: The policy.

    Returns:
        The policy's :class:`ProtocolTable`, built on first use.
    """
    t = policy.memo.get(__name__)
    if t is None:
        t = policy.memo[__name__] = ProtocolTable(policy)
    return t


def emit(
    out: list[Finding], t: ProtocolTable, rule: Rule, path: str, message: str,
    sources: tuple[str, ...] | None = None,
) -> None:
    """Append the finding of ``rule`` at ``path`` to ``out``, with the table's severity.

    Args:
        out: The findings being collected.
        t: The policy's table.
        rule: The rule that fired.
        path: Record-rooted path of the finding.
        message: The finding's message (never a patient's data).
        sources: Sources replacing the rule's own (default: the rule's, with the policy's).
    """
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


def tolerated(session: Session) -> bool:
    """Return ``True`` when no adverse event of the session was beyond mild (ungraded = not).

    Args:
        session: The session.
    """
    for ae in session.adverse_events:  # noqa: SIM110 - a plain loop is faster than all(genexpr)
        if ae.grade is not _MILD:
            return False
    return True
