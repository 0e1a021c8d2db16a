"""Screening rules: their declarations and the per-policy table the screen reads.

Private module behind :mod:`dryneedle.screening` (import the public names from there). Every
``screening.*`` rule is declared here with ``_rule(...)``, which registers it in
:mod:`dryneedle.findings` when this module is imported; :func:`rule_ids` lists them.
:class:`ScreeningTable` holds, per policy, each rule's severity, sources and decision rank, and
shares equal findings instead of rebuilding them.

A new screening rule is declared here (its id, title, effect, rationale, sources and the policy
limits it reads) and added to :func:`rule_ids`; a history answer rule also to
:data:`HISTORY_BOOL_RULES`. It is applied in :mod:`dryneedle.screening` (patient-level rules)
or :mod:`dryneedle._screening.sites` (site rules).

May import: the model, findings and policy; no other screening module (this is the lowest).
"""

from __future__ import annotations

from typing import Any, Final

from dryneedle.findings import (
    EFFECT_SEVERITY,
    Effect,
    Finding,
    Rule,
    Severity,
    register,
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


def _rule(
    id_: str,
    title: str,
    effect: Effect,
    rationale: str,
    sources: tuple[str, ...],
    limits: tuple[str, ...] = (),
    severity: Severity | None = None,
) -> Rule:
    default_severity = severity or EFFECT_SEVERITY[effect]
    return register(
        Rule(
            id=id_, title=title, severity=default_severity, rationale=rationale,
            sources=sources, effect=effect, limits=limits,
        )
    )


_X, _R, _P = Effect.EXCLUDE, Effect.REVIEW, Effect.PRECAUTION

AGE_MINIMUM = _rule(
    "screening.age_minimum", "Patient younger than the minimum age", _X,
    "Dry needling is not recommended for children under 12.", ("seed",), ("min_age_years",),
)
AGE_MINOR = _rule(
    "screening.age_minor", "Minor patient: guardian consent", _P,
    "Patients from the minimum age up to adulthood need a guardian's consent and extra care "
    "(clinic policy default for the adult age).",
    ("seed", "policy"), ("min_age_years", "adult_age_years"),
)
BIRTH_DATE_IMPLAUSIBLE = _rule(
    "screening.birth_date_implausible", "Birth date after the evaluation date", _R,
    "A birth date after the evaluation date is a data error; the age is unknown and the "
    "patient goes to review (clinic policy default; unknown is never safe).", ("policy",),
)
PREGNANCY = _rule(
    "screening.pregnancy", "Pregnancy", _X,
    "Dry needling is not recommended during pregnancy.", ("seed",),
)
BLEEDING_DISORDER = _rule(
    "screening.bleeding_disorder", "Bleeding or clotting disorder", _X,
    "Blood clotting problems are a contraindication (seed); the guideline sources treat "
    "abnormal bleeding as relative: light technique and haemostasis by palpation.",
    ("seed", "za-bn121", "apta-2013"),
)
ANTICOAGULANT = _rule(
    "screening.anticoagulant_therapy", "Anticoagulant or antiplatelet therapy", _X,
    "Antithrombotic therapy impairs clotting (seed); munoz-2022 finds it is not an absolute "
    "contraindication when deep non-compressible muscles are avoided.",
    ("seed", "za-bn121", "munoz-2022"),
)
IMMUNOCOMPROMISED = _rule(
    "screening.immunocompromised", "Compromised immunity", _X,
    "A compromised immune system raises the risk of infection (seed; relative in za-bn121).",
    ("seed", "za-bn121"),
)
METAL_ALLERGY = _rule(
    "screening.metal_allergy", "Metal allergy", _X,
    "Needles are metal; a metal allergy is a contraindication.", ("seed",),
)
NEEDLE_PHOBIA_SEVERE = _rule(
    "screening.needle_phobia_severe", "Severe needle phobia", _X,
    "Severe needle phobia is a contraindication.", ("seed", "za-bn121"),
)
NEEDLE_PHOBIA_MILD = _rule(
    "screening.needle_phobia_mild", "Mild needle phobia", _P,
    "The seed excludes only severe needle phobia; za-bn121 lists needle phobia of any degree "
    "as absolute. Treating mild phobia as a precaution (explain, lying position, watch for "
    "fainting) is a clinic policy default: a clinic can make it an exclusion.",
    ("seed", "policy"),
)
CONSENT_REFUSED = _rule(
    "screening.consent_refused", "Consent refused", _X,
    "A patient who is unwilling or unable to consent must not be needled.", ("za-bn121",),
)
PRIOR_REACTION = _rule(
    "screening.prior_adverse_reaction", "Prior abnormal reaction to needling or injection", _X,
    "A prior abnormal reaction to dry needling or injection is an absolute contraindication.",
    ("za-bn121",),
)
ACUTE_ILLNESS = _rule(
    "screening.acute_illness", "Acute illness or medical emergency today", _X,
    "Do not needle a patient who is acutely ill or in a medical emergency (SPEC §3 with "
    "za-bn121; the clause is not quoted in our source list, so this is also a clinic policy "
    "default).",
    ("za-bn121", "policy"),
)
EPILEPSY = _rule(
    "screening.epilepsy", "Epilepsy", _P,
    "Epilepsy calls for precautions and supervision. None of our sources states it, so this "
    "is a clinic policy default.",
    ("policy",),
)
DIABETES = _rule(
    "screening.diabetes", "Diabetes", _P,
    "Diabetes is a relative contraindication (healing and infection risk).", ("za-bn121",),
)
VASCULAR = _rule(
    "screening.vascular_disease", "Vascular disease", _P,
    "Vascular disease is a relative contraindication.", ("za-bn121",),
)
LYMPH_NODES = _rule(
    "screening.lymph_node_removal", "Lymph node removal", _P,
    "After lymph node removal, needling is a relative contraindication (lymphoedema risk).",
    ("za-bn121",),
)
UNKNOWN = _rule(
    "screening.unknown_answer", "Screening answer unknown", _R,
    "Unknown is never safe: an unanswered screening question blocks a decision until a "
    "clinician reviews it.",
    ("policy", "fda-cds-2026"),
)
SITE_FINDING = _rule(
    "screening.site_finding",
    "Planned site has a wound, scar, tattoo, injury, infection or implant",
    _P,
    "Do not needle an area with wounds, scars, tattoos or other injuries (seed); infections "
    "and implants are excluded too (clinic policy default). The site is excluded, other sites "
    "remain.",
    ("seed", "policy"), severity=Severity.ERROR,
)
SITE_LYMPHOEDEMA = _rule(
    "screening.site_lymphoedema", "Planned site in a lymphoedema area or limb", _P,
    "Do not needle a lymphoedematous area or limb: a finding in an arm, forearm or hand "
    "region excludes that whole upper limb on its side, one in the thigh, knee, leg or foot "
    "the whole lower limb.", ("za-bn121",), severity=Severity.ERROR,
)
SITE_RECENT_SURGERY = _rule(
    "screening.site_recent_surgery", "Planned site had recent surgery", _P,
    "Recently operated areas are excluded (seed); how recent is a clinic policy default "
    "(undated surgery counts as recent).",
    ("seed", "policy"), ("recent_surgery_days",), severity=Severity.ERROR,
)
SITE_BLEEDING_RISK = _rule(
    "screening.bleeding_risk_site",
    "Deep needling without palpable haemostasis under bleeding risk",
    _P,
    "With a bleeding disorder or antithrombotics, deep needling of a muscle where haemostasis "
    "by palpation is impossible (e.g. psoas, tibialis posterior) is excluded under every policy.",
    ("za-bn121", "apta-2013", "munoz-2022"), severity=Severity.ERROR,
)
ALL_SITES_EXCLUDED = _rule(
    "screening.all_sites_excluded", "Every planned site is excluded", _X,
    "Nothing can be needled as planned when every planned site is excluded.",
    ("seed", "za-bn121"),
)
OVER_LUNG_SITE = _rule(
    "screening.over_lung_site", "Planned site overlies the lung", _P,
    "Over the lung prefer the superficial technique and respect depth limits; direct the "
    "needle away from the lung.",
    ("za-bn121", "kalichman-2010"),
)

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

    __slots__ = ("findings", "patients", "plain_sites", "policy", "rules")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
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
