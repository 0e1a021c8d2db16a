"""Screening rules: their declarations and the per-policy table the screen reads.

Private module behind :mod:`dryneedle.screening` (import the public names from there). Every
``screening.*`` rule is declared in ``data/rules.toml`` and bound here with
:func:`dryneedle.findings.rule`; :func:`rule_ids` lists them.
:class:`ScreeningTable` holds, per policy, each rule's severity, sources and decision rank, and
shares equal findings instead of rebuilding them.

A new screening rule is declared in ``data/rules.toml`` (its id, title, effect, rationale,
sources, the policy limits it reads and ``module``), bound here and added to :func:`rule_ids`; a
history answer rule also to :data:`HISTORY_BOOL_RULES`. It is applied in
:mod:`dryneedle.screening` (patient-level rules) or :mod:`dryneedle._screening.sites` (site
rules).

May import: the model, findings and policy; no other screening module (this is the lowest).
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any, Final

from dryneedle.findings import (
    Effect,
    Finding,
    Rule,
    Severity,
    rule,
)
from dryneedle.policy import Policy

__all__ = [
    "ACUTE_ILLNESS",
    "AGE_MINIMUM",
    "AGE_MINOR",
    "ALL_SITES_EXCLUDED",
    "ANTICOAGULANT",
    "BIRTH_DATE_IMPLAUSIBLE",
    "BLEEDING_DISORDER",
    "CACHE_MAX",
    "CONSENT_REFUSED",
    "DIABETES",
    "EPILEPSY",
    "HISTORY_BOOL_RULES",
    "IMMUNOCOMPROMISED",
    "LYMPH_NODES",
    "METAL_ALLERGY",
    "NEEDLE_PHOBIA_MILD",
    "NEEDLE_PHOBIA_SEVERE",
    "OVER_LUNG_SITE",
    "PREGNANCY",
    "PRIOR_REACTION",
    "SITE_BLEEDING_RISK",
    "SITE_FINDING",
    "SITE_LYMPHOEDEMA",
    "SITE_RECENT_SURGERY",
    "UNKNOWN",
    "VASCULAR",
    "Hit",
    "ScreeningTable",
    "rule_ids",
    "screening_table",
]


# --- rules -----------------------------------------------------------------------------------


AGE_MINIMUM: Final = rule("screening.age_minimum")
AGE_MINOR: Final = rule("screening.age_minor")
BIRTH_DATE_IMPLAUSIBLE: Final = rule("screening.birth_date_implausible")
PREGNANCY: Final = rule("screening.pregnancy")
BLEEDING_DISORDER: Final = rule("screening.bleeding_disorder")
ANTICOAGULANT: Final = rule("screening.anticoagulant_therapy")
IMMUNOCOMPROMISED: Final = rule("screening.immunocompromised")
METAL_ALLERGY: Final = rule("screening.metal_allergy")
NEEDLE_PHOBIA_SEVERE: Final = rule("screening.needle_phobia_severe")
NEEDLE_PHOBIA_MILD: Final = rule("screening.needle_phobia_mild")
CONSENT_REFUSED: Final = rule("screening.consent_refused")
PRIOR_REACTION: Final = rule("screening.prior_adverse_reaction")
ACUTE_ILLNESS: Final = rule("screening.acute_illness")
EPILEPSY: Final = rule("screening.epilepsy")
DIABETES: Final = rule("screening.diabetes")
VASCULAR: Final = rule("screening.vascular_disease")
LYMPH_NODES: Final = rule("screening.lymph_node_removal")
UNKNOWN: Final = rule("screening.unknown_answer")
SITE_FINDING: Final = rule("screening.site_finding")
SITE_LYMPHOEDEMA: Final = rule("screening.site_lymphoedema")
SITE_RECENT_SURGERY: Final = rule("screening.site_recent_surgery")
SITE_BLEEDING_RISK: Final = rule("screening.bleeding_risk_site")
ALL_SITES_EXCLUDED: Final = rule("screening.all_sites_excluded")
OVER_LUNG_SITE: Final = rule("screening.over_lung_site")

HISTORY_BOOL_RULES: tuple[tuple[str, Rule], ...] = (
    ("bleeding_disorder", BLEEDING_DISORDER),
    ("anticoagulant_therapy", ANTICOAGULANT),
    ("immunocompromised", IMMUNOCOMPROMISED),
    ("metal_allergy", METAL_ALLERGY),
    ("prior_adverse_reaction", PRIOR_REACTION),
    ("acute_illness", ACUTE_ILLNESS),
    ("epilepsy", EPILEPSY),
    ("diabetes", DIABETES),
    ("vascular_disease", VASCULAR),
    ("lymph_node_removal", LYMPH_NODES),
)
"""The history answers (``patient.history.<name>``) that fire a rule when ``True``, in order."""


# --- the per-policy table --------------------------------------------------------------------

_RANK = {Effect.NOTE: 0, Effect.PRECAUTION: 1, Effect.REVIEW: 2, Effect.EXCLUDE: 3}
CACHE_MAX: Final = 8192
"""Bound of each memo table (a full table is cleared, not grown)."""

Hit = tuple[Finding, int]
"""A finding and the decision rank of its effect."""


class ScreeningTable:
    """Per-policy constants and memo tables for screening.

    Findings and site decisions are immutable values, so equal ones are shared instead of
    rebuilt for every record; the patient-level part of a screen (which does not depend on the
    date or the sites) is memoised by the answers it reads. Tables are bounded.

    Get it with :func:`screening_table` (which keeps one per policy) and pass it to
    :func:`screen_parts`; its contents are the screen's business.

    Args:
        policy: The policy.
    """

    __slots__ = ("findings", "patients", "plain_sites", "policy", "rules", "windows")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.windows: dict[date | None, tuple[date, date]] = {}
        self.rules: dict[str, tuple[Severity, tuple[str, ...], int]] = {}
        self.findings: dict[tuple[str, str, str], Hit] = {}
        self.patients: dict[Any, tuple[tuple[Finding, ...], int, tuple[str, ...]]] = {}
        self.plain_sites: dict[Any, tuple[tuple[Any, ...], int]] = {}

    def rule(self, rule: Rule) -> tuple[Severity, tuple[str, ...], int]:
        """Return a rule's severity, sources and decision rank under the policy."""
        known = self.rules.get(rule.id)
        if known is None:
            policy = self.policy
            effect = policy.effect_of(rule.id, rule.effect or Effect.NOTE)
            o = policy.rule_override(rule.id)
            sources = rule.sources
            if o is not None and o.sources:
                sources = tuple(dict.fromkeys((*sources, *o.sources)))
            known = (policy.severity_of(rule.id, rule.severity), sources, _RANK[effect])
            self.rules[rule.id] = known
        return known

    def adult_window(self, on: date | None) -> tuple[date, date]:
        """Return ``(lo, hi)``: a birth date ``bd`` with ``lo < bd <= hi`` gives no age finding.

        Those are the birth dates of a plausible adult on ``on``: an age (:func:`age_on
        <dryneedle.screening.age_on>`) of at least the policy's ``min_age_years`` and
        ``adult_age_years`` and at most its ``max_age_years``. Any other birth date takes the
        screen's full age rules, which also apply where no window is known (``on`` unknown,
        or at the ends of the calendar): the window is then empty. Memoised per date.

        >>> from datetime import date
        >>> from dryneedle.policy import DEFAULT_POLICY
        >>> from dryneedle.screening import screening_table
        >>> screening_table(DEFAULT_POLICY).adult_window(date(2026, 2, 28))
        (datetime.date(1905, 2, 28), datetime.date(2008, 2, 28))
        """
        window = self.windows.get(on)
        if window is None:
            policy = self.policy
            too_old = _born_by(on, policy.max_age_years + 1)  # age above the maximum
            adult = _born_by(on, max(policy.min_age_years, policy.adult_age_years))
            if adult is None:
                window = _NO_WINDOW
            else:  # without too_old no one is that old; date.min itself takes the full rules
                window = (date.min if too_old is None else too_old, adult)
            if len(self.windows) >= CACHE_MAX:
                self.windows.clear()
            self.windows[on] = window
        return window

    def finding(self, rule: Rule, path: str, message: str) -> Hit:
        """Return the (shared) finding of ``rule`` at ``path`` and its rank."""
        key = (rule.id, path, message)
        hit = self.findings.get(key)
        if hit is None:
            severity, sources, rank = self.rule(rule)
            hit = (Finding(code=rule.id, severity=severity, path=path, message=message,
                           sources=sources), rank)
            if len(self.findings) >= CACHE_MAX:
                self.findings.clear()
            self.findings[key] = hit
        return hit

    def unknown(self, path: str, what: str, needed_by: Rule) -> Hit:
        """Return the (shared) unknown-answer finding for an answer ``needed_by`` a rule."""
        key = ("?" + needed_by.id, path, what)
        hit = self.findings.get(key)
        if hit is None:
            severity, sources, rank = self.rule(UNKNOWN)
            hit = (Finding(code=UNKNOWN.id, severity=severity, path=path,
                           message=f"{what} is unknown: ask before needling",
                           sources=tuple(dict.fromkeys((*needed_by.sources, *sources)))), rank)
            if len(self.findings) >= CACHE_MAX:
                self.findings.clear()
            self.findings[key] = hit
        return hit


_NO_WINDOW: Final = (date.max, date.min)  # lo < bd <= hi never holds


def _born_by(on: date | None, years: int) -> date | None:
    """Return the latest birth date whose age on ``on`` is at least ``years`` (``None``: none).

    A 29 February ``on`` in a common year of birth gives 28 February (a 29 February birthday
    is reached on 1 March in common years, as :func:`dryneedle.screening.age_on` counts).
    """
    if on is None or years < 0:
        return None  # unknown date, or an implausible limit: no window
    year = on.year - years
    if year < 1:
        return None  # no one born in the calendar is that old
    if on.month == 2 and on.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return on.replace(year=year)


def screening_table(policy: Policy) -> ScreeningTable:
    """Return the screening table of a policy (kept in the policy's memo).

    Args:
        policy: The policy.

    Returns:
        The policy's :class:`ScreeningTable`, built on first use.
    """
    memo = policy.memo
    c = memo.get(__name__)
    if c is None:
        c = memo[__name__] = ScreeningTable(policy)
    return c


def rule_ids() -> tuple[str, ...]:
    """Return the ids of the screening rules (in registration order)."""
    return tuple(
        r.id for r in (
            AGE_MINIMUM, AGE_MINOR, BIRTH_DATE_IMPLAUSIBLE, PREGNANCY, BLEEDING_DISORDER,
            ANTICOAGULANT, IMMUNOCOMPROMISED, METAL_ALLERGY, NEEDLE_PHOBIA_SEVERE,
            NEEDLE_PHOBIA_MILD, CONSENT_REFUSED, PRIOR_REACTION, ACUTE_ILLNESS, EPILEPSY,
            DIABETES, VASCULAR, LYMPH_NODES, UNKNOWN, SITE_FINDING, SITE_LYMPHOEDEMA,
            SITE_RECENT_SURGERY, SITE_BLEEDING_RISK, ALL_SITES_EXCLUDED, OVER_LUNG_SITE,
        )
    )
