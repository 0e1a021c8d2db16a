"""Triage: what a patient should do about the symptoms they report after a session.

Private module behind :mod:`dryneedle.aftercare` (import the public names from there). It holds
the triage levels, the bindings of every triage rule (category ``aftercare``; declared in
``data/rules.toml``, bound with :func:`dryneedle.findings.rule`), :class:`FollowUp` and
:func:`triage`. A new triage rule is declared in ``data/rules.toml`` (``module`` naming this
module), bound here, added to :data:`TRIAGE_RULES` and applied in ``_symptom_reasons`` (and
``_rule_path`` if it points below the symptom).

May import: the model, findings and policy, and the lower aftercare modules
(:mod:`dryneedle._aftercare.plan`, :mod:`dryneedle._aftercare.report`).
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from dryneedle._aftercare.plan import (
    days_text,
    needled_near_lung,
    needled_over_lung,
    threshold_text,
    unreadable_findings,
)
from dryneedle._aftercare.report import (
    SYMPTOM_LABELS,
    SymptomKind,
    SymptomReport,
    SymptomSeverity,
)
from dryneedle._version import __version__
from dryneedle.findings import Finding, Rule, Severity, rule
from dryneedle.model import Session
from dryneedle.policy import DEFAULT_POLICY, Policy

__all__ = [
    "TRIAGE_ORDER",
    "TRIAGE_RULES",
    "FollowUp",
    "TriageLevel",
    "triage",
]


# --- triage ----------------------------------------------------------------------------------


class TriageLevel(enum.StrEnum):
    """What the patient should do about what they report."""

    EXPECTED = "expected"
    CONTACT_CLINIC = "contact_clinic"
    URGENT = "urgent"


TRIAGE_ORDER: Final[Mapping[TriageLevel, int]] = types.MappingProxyType(
    {TriageLevel.EXPECTED: 0, TriageLevel.CONTACT_CLINIC: 1, TriageLevel.URGENT: 2}
)
# Documented in dryneedle.aftercare, which exports it.

_LEVEL_OF_SEVERITY: Final = types.MappingProxyType(
    {
        Severity.INFO: TriageLevel.EXPECTED,
        Severity.WARNING: TriageLevel.CONTACT_CLINIC,
        Severity.ERROR: TriageLevel.URGENT,
    }
)


_R_SORENESS_EXPECTED: Final = rule("aftercare.triage.soreness_expected")
_R_SORENESS_PROLONGED: Final = rule("aftercare.triage.soreness_prolonged")
_R_BRUISING_EXPECTED: Final = rule("aftercare.triage.bruising_expected")
_R_BRUISING_PROLONGED: Final = rule("aftercare.triage.bruising_prolonged")
_R_TIMING_UNKNOWN: Final = rule("aftercare.triage.timing_unknown")
_R_INFECTION: Final = rule("aftercare.triage.infection_signs")
_R_FAINTING: Final = rule("aftercare.triage.fainting")
_R_BLEEDING: Final = rule("aftercare.triage.bleeding")
_R_LUNG: Final = rule("aftercare.triage.lung_symptoms")
_R_CHEST: Final = rule("aftercare.triage.chest_symptoms")
_R_CHEST_SEVERE: Final = rule("aftercare.triage.chest_symptoms_severe")
_R_SEVERE: Final = rule("aftercare.triage.severe_symptom")
_R_UNLISTED: Final = rule("aftercare.triage.unlisted_symptom")

TRIAGE_RULES: Final[tuple[Rule, ...]] = (
    _R_SORENESS_EXPECTED, _R_SORENESS_PROLONGED, _R_BRUISING_EXPECTED, _R_BRUISING_PROLONGED,
    _R_TIMING_UNKNOWN, _R_INFECTION, _R_FAINTING, _R_BLEEDING, _R_LUNG, _R_CHEST,
    _R_CHEST_SEVERE, _R_SEVERE, _R_UNLISTED,
)
# Documented in dryneedle.aftercare, which exports it.

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
        over_lung: Whether the session needled over the lung (``None``: unknown).
        policy: Fingerprint of the policy used.
        version: Library version.
        near_lung: Whether the session needled near the lung: over it, or in the neck or
            shoulder region (``None``: unknown, treated as ``True``). This is what makes
            breathlessness or chest pain urgent.
        findings: What of the session could not be read (``aftercare.input.unreadable``);
            when there is any, the session counts as near the lung.
    """

    level: TriageLevel
    reasons: tuple[Finding, ...]
    over_lung: bool | None
    policy: str = DEFAULT_POLICY.fingerprint
    version: str = __version__
    near_lung: bool | None = None
    findings: tuple[Finding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the follow-up as JSON-ready data."""
        return {
            "level": self.level.value,
            "reasons": [r.as_dict() for r in self.reasons],
            "over_lung": self.over_lung,
            "near_lung": self.near_lung,
            "findings": [f.as_dict() for f in self.findings],
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
        if self.findings:
            tail = (f" ({self.findings[0].code}; sources: {', '.join(self.findings[0].sources)})"
                    if with_sources else "")
            lines.append("- Part of the record of your session could not be read, so it is "
                         f"treated as if needles were placed near the lungs.{tail}")
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


def _is_severe(symptom: object) -> bool:
    """``severe``, or any severity that cannot be read as mild or moderate (fail closed)."""
    severity = getattr(symptom, "severity", None)
    return severity is not None and severity not in (SymptomSeverity.MILD,
                                                     SymptomSeverity.MODERATE)


def _symptom_reasons(
    symptom: object, report_h: float | None, lung: bool | None, policy: Policy
) -> list[tuple[Rule, str]]:
    """Return (rule, message) pairs for one symptom, in :data:`TRIAGE_RULES` order.

    ``lung`` is whether the session needled *near* the lung (over it, neck or shoulder).
    """
    kind = _as_kind(getattr(symptom, "kind", None))
    severe = _is_severe(symptom)
    label = SYMPTOM_LABELS[kind] if kind is not None else SYMPTOM_LABELS[SymptomKind.OTHER]
    out: list[tuple[Rule, str]] = []
    expected: tuple[Rule, str] | None = None
    if kind in _SORENESS_KINDS or kind is SymptomKind.BRUISING:
        elapsed = _elapsed_h(report_h, symptom)
        if kind is SymptomKind.BRUISING:
            days = policy.bruising_expected_max_days
            limit_h = days * 24.0
            longer, within = (_R_BRUISING_PROLONGED, _R_BRUISING_EXPECTED)
            span = days_text(days)
        else:
            limit_h = policy.soreness_expected_max_h
            longer, within = (_R_SORENESS_PROLONGED, _R_SORENESS_EXPECTED)
            span = f"{threshold_text(limit_h)} hours"
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
                                "Get emergency care now."))
    elif kind is SymptomKind.BLEEDING:
        out.append((_R_BLEEDING, "Bleeding after leaving the clinic should be checked. Press on "
                                "the spot and contact the clinic."))
    elif kind in _CHEST_KINDS:
        if lung is False and severe:
            out.append((_R_CHEST_SEVERE, f"Severe {label.lower()} needs emergency care after "
                                         "any session. Get emergency care now."))
        elif lung is False:
            out.append((_R_CHEST, f"{label} is not an expected effect of this session. "
                                 "Contact the clinic."))
        else:
            where = ("needles were placed near the lungs" if lung
                     else "it is not known whether needles were placed near the lungs")
            out.append((_R_LUNG, f"{label} after a session where {where} can be a sign of a "
                                "collapsed lung. Get emergency care now."))
    else:
        out.append((_R_UNLISTED, f"{label} was reported. Contact the clinic."))
    if severe and not (kind in _CHEST_KINDS and lung is False):
        # ``severe`` and any unrecognised severity value: never expected (fail closed).
        out.append((_R_SEVERE, f"{label} was reported as severe. Contact the clinic."))
    if not out and expected is not None:
        out.append(expected)
    return out


def _rule_path(rule: Rule, index: int) -> str:
    if rule is _R_SEVERE or rule is _R_CHEST_SEVERE:
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
    unreadable: Iterable[str] = (),
) -> FollowUp:
    """Classify the symptoms a patient reports after a session.

    Rules (each registered, cited, and with a policy-overridable severity):

    * soreness or stiffness up to 36 h after the session: expected; beyond 36 h: contact
      (policy limit ``soreness_expected_max_h``);
    * bruising up to 7 days: expected; beyond 7 days: contact (policy limit
      ``bruising_expected_max_days``);
    * soreness, stiffness or bruising with no usable timing: contact (fail closed);
    * spreading redness, warmth, pus or fever (signs of infection): contact promptly;
    * fainting after leaving the clinic: urgent, after any session;
    * bleeding after leaving: contact;
    * shortness of breath or chest pain after a session that needled near the lung (over it,
      in the neck or shoulder region, at a muscle not in the catalog, with no session given
      or an unreadable one): urgent; otherwise contact, and urgent when reported as severe;
    * a symptom reported as severe, or of kind ``other``: contact, never expected.

    The emergency rules are safety floors: no policy can lower them.

    Args:
        report: The symptom report.
        session: The session the symptoms follow; ``None`` when not known (then it counts as
            having needled near the lung).
        policy: Policy for the expected-course limits and per-rule severity overrides (the
            level follows the severity: ``info`` expected, ``warning`` contact the clinic,
            ``error`` urgent).
        unreadable: Paths of the session (or its record) that could not be read. When any is
            given, the session counts as near the lung and the follow-up carries one
            ``aftercare.input.unreadable`` finding per path.

    Returns:
        The follow-up: the most urgent level and every reason. Never raises on bad clinical
        data: an unusable number counts as unknown.
    """
    findings = unreadable_findings(unreadable, policy)
    over = None if findings else needled_over_lung(session)
    lung = None if findings else needled_near_lung(session)
    report_h = _hours(getattr(report, "hours_since_session", None))
    reasons: list[Finding] = []
    level = TriageLevel.EXPECTED
    # The annotation is a promise, not a check (a raw dict, ``symptoms=None``): an unreadable
    # report is never "nothing reported" but one symptom of unknown kind (contact, SPEC §5).
    given: object = report
    symptoms = getattr(given, "symptoms", None)
    if not isinstance(given, SymptomReport) or not isinstance(symptoms, tuple | list):
        symptoms = (None,)
    for index, symptom in enumerate(symptoms):
        for applied, message in _symptom_reasons(symptom, report_h, lung, policy):
            severity = policy.severity_of(applied.id, applied.severity)
            reasons.append(Finding(code=applied.id, severity=severity,
                                   path=_rule_path(applied, index), message=message,
                                   sources=applied.sources))
            candidate = _LEVEL_OF_SEVERITY[severity]
            if TRIAGE_ORDER[candidate] > TRIAGE_ORDER[level]:
                level = candidate
    return FollowUp(level=level, reasons=tuple(reasons), over_lung=over,
                    policy=policy.fingerprint, near_lung=lung, findings=findings)
