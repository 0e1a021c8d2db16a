"""Protocol and series rules: their declarations and the per-policy table the checks read.

Private module behind :mod:`dryneedle.protocol` (import the public names from there). Every
``protocol.*`` and ``series.*`` rule is declared in ``data/rules.toml`` and bound here with
:func:`dryneedle.findings.rule`; :func:`rule_ids` lists them in declaration order.
:class:`ProtocolTable` holds, per policy, each rule's severity and sources and the policy limits
the checks compare with; :func:`emit` turns a rule into a finding (:func:`emit_at` for a finding
at an insertion, whose path it formats only when the finding is not memoised yet).

A new protocol or series rule is declared in ``data/rules.toml`` (its id, title, severity,
rationale, sources, the policy limits it reads and ``module``), bound here, then applied in
:mod:`dryneedle._protocol.session` (per-session checks) or :mod:`dryneedle._protocol.series`
(series checks) through :func:`emit` or :func:`emit_at`.

May import: the model, reference data, findings and policy; no other protocol module (this is
the lowest of them).
"""

from __future__ import annotations

from typing import Any, Final

from dryneedle.findings import Finding, Rule, Severity, rule, rule_ids_of
from dryneedle.model import AdverseEventGrade, Session
from dryneedle.policy import Policy

__all__ = [
    "BLEEDING_NO_HAEMOSTASIS",
    "BLEEDING_PRECAUTION",
    "BLEEDING_UNCHECKED",
    "BLEEDING_UNKNOWN",
    "CONDITION_NOT_INDICATION",
    "DEPTH_BEYOND_LONGEST",
    "DEPTH_BEYOND_NEEDLE",
    "DEPTH_DEEP",
    "DEPTH_NOT_POSITIVE",
    "DEPTH_SUPERFICIAL",
    "DEPTH_UNKNOWN",
    "DWELL_RANGE",
    "DWELL_UNKNOWN",
    "GUIDE_TUBE",
    "INSERTIONS_UNCHECKED",
    "LUNG_BOTH_SIDES",
    "LUNG_BOTH_SIDES_UNCHECKED",
    "LUNG_DEEP",
    "LUNG_DEPTH",
    "LUNG_PLEURA",
    "LUNG_UNCHECKED",
    "MUSCLE_UNKNOWN",
    "NEEDLES_FIRST",
    "NEEDLES_INCREASE",
    "NEEDLES_UNCHECKED",
    "NEEDLE_IMPLAUSIBLE",
    "NEEDLE_LENGTH_UNKNOWN",
    "POST_NEEDLES",
    "POST_NEEDLES_UNKNOWN",
    "POST_SKIN",
    "POST_SKIN_UNKNOWN",
    "PRACTITIONER_UNKNOWN",
    "PRACTITIONER_UNTRAINED",
    "PRE_MISSING",
    "PRE_UNKNOWN",
    "SCREENING_NEEDS_REVIEW",
    "SCREENING_NOT_ELIGIBLE",
    "SCREENING_SITE_EXCLUDED",
    "SERIES_FIRST",
    "SERIES_NEEDLES",
    "SERIES_NUMBER_ORDER",
    "SERIES_SAME_DAY",
    "ProtocolTable",
    "emit",
    "emit_at",
    "poor_tolerance",
    "protocol_table",
    "rule_ids",
    "tolerated",
]


# --- rules -----------------------------------------------------------------------------------


MUSCLE_UNKNOWN: Final = rule("protocol.muscle.unknown")
DEPTH_UNKNOWN: Final = rule("protocol.depth.unknown")
DEPTH_NOT_POSITIVE: Final = rule("protocol.depth.not_positive")
DEPTH_SUPERFICIAL: Final = rule("protocol.depth.superficial_range")
DEPTH_DEEP: Final = rule("protocol.depth.deep_minimum")
DEPTH_BEYOND_NEEDLE: Final = rule("protocol.depth.beyond_needle")
# The source of the catalog's own muscle limits: cited only where such a limit was applied.
_MUSCLE_LIMIT_SOURCE: Final = "valera-calero-rhomboid"
LUNG_DEPTH: Final = rule("protocol.lung.depth_limit")
LUNG_DEEP: Final = rule("protocol.lung.deep_technique")
LUNG_BOTH_SIDES: Final = rule("protocol.lung.both_sides")
DWELL_RANGE: Final = rule("protocol.dwell.range")
DWELL_UNKNOWN: Final = rule("protocol.dwell.unknown")
NEEDLES_FIRST: Final = rule("protocol.needles.first_session")
NEEDLES_INCREASE: Final = rule("protocol.needles.increase_after_poor_tolerance")
BLEEDING_NO_HAEMOSTASIS: Final = rule("protocol.bleeding.no_palpable_haemostasis")
BLEEDING_PRECAUTION: Final = rule("protocol.bleeding.precaution")
BLEEDING_UNKNOWN: Final = rule("protocol.bleeding.unknown")
SCREENING_NOT_ELIGIBLE: Final = rule("protocol.screening.not_eligible")
SCREENING_SITE_EXCLUDED: Final = rule("protocol.screening.site_excluded")
PRACTITIONER_UNTRAINED: Final = rule("protocol.practitioner.untrained")
PRACTITIONER_UNKNOWN: Final = rule("protocol.practitioner.unknown")
_PRE_STEPS: Final = ("history_reviewed", "physical_exam", "consent", "skin_disinfected")
PRE_MISSING: Final = {step: rule(f"protocol.pre.{step}") for step in _PRE_STEPS}
PRE_UNKNOWN: Final = {step: rule(f"protocol.pre.{step}.unknown") for step in _PRE_STEPS}
POST_NEEDLES: Final = rule("protocol.post.needles_removed")
POST_NEEDLES_UNKNOWN: Final = rule("protocol.post.needles_removed.unknown")
POST_SKIN: Final = rule("protocol.post.skin_checked")
POST_SKIN_UNKNOWN: Final = rule("protocol.post.skin_checked.unknown")
GUIDE_TUBE: Final = rule("protocol.guide_tube.not_used")
NEEDLE_IMPLAUSIBLE: Final = rule("protocol.needle.implausible")
CONDITION_NOT_INDICATION: Final = rule("protocol.condition.not_indication")
# Safety hardening (spec 1.1, issue #12).
LUNG_PLEURA: Final = rule("protocol.lung.pleura_depth")
DEPTH_BEYOND_LONGEST: Final = rule("protocol.depth.beyond_longest_needle")
NEEDLE_LENGTH_UNKNOWN: Final = rule("protocol.needle.length.unknown")
SCREENING_NEEDS_REVIEW: Final = rule("protocol.screening.needs_review")
# Fail-closed assumptions about unreadable or unknown parts (SPEC section 6, 1.1).
LUNG_UNCHECKED: Final = rule("protocol.lung.unchecked")
LUNG_BOTH_SIDES_UNCHECKED: Final = rule("protocol.lung.both_sides_unchecked")
BLEEDING_UNCHECKED: Final = rule("protocol.bleeding.unchecked")
NEEDLES_UNCHECKED: Final = rule("protocol.needles.unchecked")
INSERTIONS_UNCHECKED: Final = rule("protocol.insertions.unchecked")

SERIES_NUMBER_ORDER: Final = rule("series.number_order")
SERIES_FIRST: Final = rule("series.first_session_number")
SERIES_SAME_DAY: Final = rule("series.same_day")
SERIES_NEEDLES: Final = rule("series.needles_after_poor_tolerance")


def rule_ids() -> tuple[str, ...]:
    """Return the ids of the protocol and series rules, in registration order.

    >>> from dryneedle.protocol import rule_ids
    >>> "protocol.lung.both_sides" in rule_ids(), "series.same_day" in rule_ids()
    (True, True)
    """
    return rule_ids_of(__name__)


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
        "at",
        "deep_min",
        "diam_max",
        "diam_min",
        "dwell_max",
        "dwell_min",
        "findings",
        "first_max",
        "len_max",
        "len_min",
        "limits",
        "lung_max",
        "lung_policy_sources",
        "pleura_margin",
        "rules",
        "sup_max",
        "sup_min",
    )

    def __init__(self, policy: Policy) -> None:
        rules: dict[str, tuple[Severity, tuple[str, ...]]] = {}
        for rule_id in rule_ids():
            declared = rule(rule_id)
            sources = declared.sources
            o = policy.rule_override(rule_id)
            if o is not None and o.sources:
                sources = tuple(dict.fromkeys((*sources, *o.sources)))
            rules[rule_id] = (policy.severity_of(rule_id, declared.severity), sources)
        self.rules = rules
        self.findings: dict[tuple[Any, ...], Finding] = {}
        self.at: dict[tuple[str, int, str, str], Finding] = {}  # the findings of emit_at
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
        self.pleura_margin = policy.pleura_depth_margin_mm
        # The limits the insertion loop compares with, read in one go.
        self.limits = (self.sup_min, self.sup_max, self.deep_min, self.lung_max,
                       self.pleura_margin, self.dwell_min, self.dwell_max, self.diam_min,
                       self.diam_max, self.len_min, self.len_max)


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


def emit_at(out: list[Finding], t: ProtocolTable, rule: Rule, i: int, field: str,
            message: str) -> None:
    """Append the finding of ``rule`` at ``session.insertions[i]`` + ``field`` to ``out``.

    The same finding as :func:`emit` with that path and the rule's sources, but the path is
    formatted only when the finding is not memoised yet (the per-insertion checks emit the
    same findings at the same few positions over and over).

    Args:
        out: The findings being collected.
        t: The policy's table.
        rule: The rule that fired.
        i: Index of the insertion.
        field: What in the insertion (``""`` for the insertion itself, ``".depth_mm"``...).
        message: The finding's message (never a patient's data).
    """
    key = (rule.id, i, field, message)
    finding = t.at.get(key)
    if finding is None:
        severity, rule_sources = t.rules[rule.id]
        finding = Finding(code=rule.id, severity=severity,
                          path=f"session.insertions[{i}]{field}", message=message,
                          sources=rule_sources)
        if len(t.at) >= _FINDINGS_MAX:
            t.at.clear()
        t.at[key] = finding
    out.append(finding)


def tolerated(session: Session) -> bool | None:
    """Return whether the session was tolerated: no adverse event beyond mild (ungraded = not).

    ``None`` when unknown: the session's ``adverse_events`` were not recorded (absent or
    ``null``; ``()`` means "observed, none"). Callers read ``None`` as not tolerated.

    Args:
        session: The session.
    """
    events = session.adverse_events
    if events is None:
        return None
    for ae in events:  # noqa: SIM110 - a plain loop is faster than all(genexpr)
        if ae.grade is not _MILD:
            return False
    return True


def poor_tolerance(was_tolerated: bool | None) -> str:
    """The words of a needle-increase finding after a session not known to be tolerated."""
    if was_tolerated is None:
        return "whose tolerance is unknown (adverse events not recorded)"
    return "that was not tolerated (adverse event beyond mild or ungraded)"
