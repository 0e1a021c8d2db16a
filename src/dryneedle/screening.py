"""Screening a patient for dry needling: contraindications, precautions and site exclusions.

:func:`screen` applies every screening rule to a patient on a given date (and, optionally, to
the sites planned for needling) and returns a :class:`ScreeningResult` with a
:class:`~dryneedle.findings.Decision`, *all* findings with their basis, a per-site decision and
the list of unknown answers that block a decision.

Unknown is never safe: an unanswered question (``None``) can never lead to ``eligible``; it
gives ``needs_review`` and names the answer in :attr:`ScreeningResult.missing`.

Decisions (default policy, seed and za-bn121):

* ``not_eligible`` -- any exclusion: age under 12, pregnancy, bleeding disorder,
  anticoagulant/antiplatelet therapy, compromised immunity, metal allergy, severe needle
  phobia, consent refused, prior abnormal reaction, acute illness; or every planned site is
  excluded by a site finding.
* ``needs_review`` -- no exclusion, but an answer a rule needs is unknown.
* ``eligible_with_precautions`` -- a precaution applies: epilepsy, diabetes, vascular disease,
  lymph node removal, mild needle phobia, age 12-17, a planned site over the lung, or some
  (not all) planned sites excluded.
* ``eligible`` -- none of the above.

>>> from datetime import date, datetime
>>> from dryneedle.model import History, NeedlePhobia, Patient, Sex
>>> from dryneedle.screening import screen
>>> answers = dict(bleeding_disorder=False, anticoagulant_therapy=False,
...     immunocompromised=False, metal_allergy=False, epilepsy=False, diabetes=True,
...     vascular_disease=False, prior_adverse_reaction=False, acute_illness=False,
...     lymph_node_removal=False, needle_phobia=NeedlePhobia.NONE, consent=True)
>>> patient = Patient(patient_id="p-1", birth_date=date(1980, 5, 1), sex=Sex.MALE,
...                   history=History(**answers))
>>> result = screen(patient, on=date(2026, 11, 27), sites=[("upper_trapezius", "left")])
>>> result.decision
<Decision.ELIGIBLE_WITH_PRECAUTIONS: 'eligible_with_precautions'>
>>> [f.code for f in result.findings]
['screening.diabetes', 'screening.over_lung_site']
>>> screen(Patient(patient_id="p-2", sex=Sex.MALE), on=date(2026, 11, 27)).decision
<Decision.NEEDS_REVIEW: 'needs_review'>
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import attrs

from dryneedle._version import __version__
from dryneedle.catalog import MUSCLES
from dryneedle.findings import (
    EFFECT_SEVERITY,
    Decision,
    Effect,
    Finding,
    Rule,
    Severity,
    register,
)
from dryneedle.model import (
    Insertion,
    NeedlePhobia,
    Patient,
    Pregnancy,
    Region,
    Session,
    Sex,
    Side,
    SiteFinding,
    SiteFindingKind,
    SiteSide,
    Technique,
    _opt_technique,
    _req_side,
)
from dryneedle.policy import DEFAULT_POLICY, Policy

__all__ = [
    "PlannedSite",
    "ScreeningResult",
    "SiteDecision",
    "age_on",
    "is_eligible",
    "screen",
    "screen_for_record",
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

_HISTORY_BOOL_RULES: tuple[tuple[str, Rule], ...] = (
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


# --- results ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PlannedSite:
    """A site planned for needling.

    Attributes:
        muscle: Muscle id from the anatomy catalog.
        side: Side of the body.
        technique: Planned technique, if known (unknown counts as deep for bleeding risk).
    """

    muscle: str = attrs.field(validator=attrs.validators.instance_of(str))
    side: Side = attrs.field(converter=_req_side)
    technique: Technique | None = attrs.field(default=None, converter=_opt_technique)


@attrs.frozen(kw_only=True)
class SiteDecision:
    """Whether one planned site may be needled.

    Attributes:
        index: Position of the site in the planned sites (the insertion index).
        path: Path of the site (``session.insertions[i]``).
        muscle: Muscle id.
        side: Side.
        allowed: ``False`` when a site finding or the bleeding-risk rule excludes it.
        findings: The findings about this site.
    """

    index: int
    path: str
    muscle: str
    side: Side
    allowed: bool
    findings: tuple[Finding, ...]


@attrs.frozen(kw_only=True)
class ScreeningResult:
    """The outcome of :func:`screen`.

    Attributes:
        decision: The screening decision.
        findings: Every finding, in rule order (patient-level first, then sites).
        missing: Paths of the unknown answers that block a decision (empty when an exclusion
            holds: no answer could change it).
        on: The evaluation date.
        policy: Fingerprint of the policy used.
        policy_name: Name of the policy used.
        version: Library version.
    """

    decision: Decision
    findings: tuple[Finding, ...]
    missing: tuple[str, ...] = ()
    on: date
    policy: str
    policy_name: str
    version: str = __version__
    _sites: tuple[tuple[Any, ...], ...] = attrs.field(default=(), alias="sites", repr=False)

    @property
    def site_decisions(self) -> tuple[SiteDecision, ...]:
        """One :class:`SiteDecision` per planned site, in order."""
        return tuple(
            SiteDecision(index=i, path=path, muscle=muscle, side=side, allowed=allowed,
                         findings=found)
            for i, path, muscle, side, allowed, found in self._sites
        )

    @property
    def excluded_indices(self) -> frozenset[int]:
        """Indices of the planned sites that must not be needled."""
        return frozenset(row[0] for row in self._sites if not row[4])

    @property
    def excluded_sites(self) -> tuple[SiteDecision, ...]:
        """The planned sites that must not be needled."""
        return tuple(s for s in self.site_decisions if not s.allowed)

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "decision": self.decision.value,
            "on": self.on.isoformat(),
            "missing": list(self.missing),
            "findings": [f.as_dict() for f in self.findings],
            "sites": [
                {
                    "path": s.path,
                    "muscle": s.muscle,
                    "side": s.side.value,
                    "allowed": s.allowed,
                    "codes": [f.code for f in s.findings],
                }
                for s in self.site_decisions
            ],
            "policy": {"name": self.policy_name, "fingerprint": self.policy},
            "version": self.version,
        }


# --- helpers ---------------------------------------------------------------------------------


def age_on(birth_date: date, on: date) -> int:
    """Return the age in whole years on a date (a birthday on ``on`` counts).

    A 29 February birthday is reached on 1 March in common years.

    >>> from datetime import date, datetime
    >>> from dryneedle.screening import age_on
    >>> age_on(date(2014, 11, 27), date(2026, 11, 27))
    12
    >>> age_on(date(2012, 2, 29), date(2025, 2, 28)), age_on(date(2012, 2, 29), date(2025, 3, 1))
    (12, 13)
    """
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


_RANK = {Effect.NOTE: 0, Effect.PRECAUTION: 1, Effect.REVIEW: 2, Effect.EXCLUDE: 3}
_DECISION_BY_RANK = (
    Decision.ELIGIBLE,
    Decision.ELIGIBLE_WITH_PRECAUTIONS,
    Decision.NEEDS_REVIEW,
    Decision.NOT_ELIGIBLE,
)
_CACHE_MAX = 8192

_Hit = tuple[Finding, int]


class _Compiled:
    """Per-policy constants and memo tables for screening.

    Findings and site decisions are immutable values, so equal ones are shared instead of
    rebuilt for every record; the patient-level part of a screen (which does not depend on the
    date or the sites) is memoised by the answers it reads. Tables are bounded.
    """

    __slots__ = ("findings", "patients", "plain_sites", "policy", "rules")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rules: dict[str, tuple[Severity, tuple[str, ...], int]] = {}
        self.findings: dict[tuple[str, str, str], _Hit] = {}
        self.patients: dict[Any, tuple[tuple[Finding, ...], int, tuple[str, ...]]] = {}
        self.plain_sites: dict[Any, tuple[tuple[Any, ...], int]] = {}

    def rule(self, rule: Rule) -> tuple[Severity, tuple[str, ...], int]:
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

    def finding(self, rule: Rule, path: str, message: str) -> _Hit:
        key = (rule.id, path, message)
        hit = self.findings.get(key)
        if hit is None:
            severity, sources, rank = self.rule(rule)
            hit = (Finding(code=rule.id, severity=severity, path=path, message=message,
                           sources=sources), rank)
            if len(self.findings) >= _CACHE_MAX:
                self.findings.clear()
            self.findings[key] = hit
        return hit

    def unknown(self, path: str, what: str, needed_by: Rule) -> _Hit:
        key = ("?" + needed_by.id, path, what)
        hit = self.findings.get(key)
        if hit is None:
            severity, sources, rank = self.rule(UNKNOWN)
            hit = (Finding(code=UNKNOWN.id, severity=severity, path=path,
                           message=f"{what} is unknown: ask before needling",
                           sources=tuple(dict.fromkeys((*needed_by.sources, *sources)))), rank)
            if len(self.findings) >= _CACHE_MAX:
                self.findings.clear()
            self.findings[key] = hit
        return hit


def _compiled(policy: Policy) -> _Compiled:
    memo = policy.memo
    c = memo.get(__name__)
    if c is None:
        c = memo[__name__] = _Compiled(policy)
    return c


def _as_site(site: Any) -> Insertion | PlannedSite:
    """Return a typed site: insertions and planned sites as they are, tuples converted."""
    if isinstance(site, Insertion | PlannedSite):
        return site
    muscle, side, *rest = site
    return PlannedSite(muscle=muscle, side=side, technique=rest[0] if rest else None)


# A lymphoedema finding excludes its whole limb (za-bn121 "area or limb").
_LIMB = {
    Region.ARM: 1, Region.FOREARM: 1, Region.HAND: 1,
    Region.THIGH: 2, Region.KNEE: 2, Region.LEG: 2, Region.ANKLE_FOOT: 2,
}

_LYMPHOEDEMA = SiteFindingKind.LYMPHOEDEMA
_SF_MIDLINE = SiteSide.MIDLINE
_SF_BILATERAL = SiteSide.BILATERAL
_MIDLINE = Side.MIDLINE

_KIND_RULE = {
    SiteFindingKind.LYMPHOEDEMA: SITE_LYMPHOEDEMA,
    SiteFindingKind.SURGERY: SITE_RECENT_SURGERY,
}


def _site_exclusion(
    sf: SiteFinding, on: date, policy: Policy
) -> tuple[Rule, str] | None:
    """Return (rule, message) when a site finding excludes its site on ``on``."""
    rule = _KIND_RULE.get(sf.kind, SITE_FINDING)
    if sf.kind is SiteFindingKind.SURGERY:
        if sf.date is None:
            return rule, "surgery of unknown date in this area counts as recent: do not needle"
        days = (on - sf.date).days
        if days > policy.recent_surgery_days:
            return None
        return rule, (
            f"surgery {days} days before (recent: within {policy.recent_surgery_days} days) "
            "in this area: do not needle"
        )
    return rule, f"{sf.kind.value} in this area: do not needle here"


def _patient_level(
    c: _Compiled, patient: Patient
) -> tuple[tuple[Finding, ...], int, tuple[str, ...]]:
    """Findings that depend only on the answers (not on the date or the sites), memoised."""
    h = patient.history
    key = (h, patient.sex, patient.pregnancy)
    found: list[_Hit] = []
    unknown_paths: list[str] = []
    if patient.pregnancy is Pregnancy.PREGNANT:
        found.append(c.finding(PREGNANCY, "patient.pregnancy", "patient is pregnant"))
    elif patient.sex is not Sex.MALE and patient.pregnancy in (None, Pregnancy.UNKNOWN):
        found.append(c.unknown("patient.pregnancy", "pregnancy status", PREGNANCY))
        unknown_paths.append("patient.pregnancy")
    for name, rule in _HISTORY_BOOL_RULES:
        value = getattr(h, name)
        if value is True:
            path = f"patient.history.{name}"
            found.append(c.finding(rule, path, f"{rule.title.lower()} reported"))
        elif value is None:
            path = f"patient.history.{name}"
            found.append(c.unknown(path, rule.title.lower(), rule))
            unknown_paths.append(path)
    path = "patient.history.needle_phobia"
    if h.needle_phobia is NeedlePhobia.SEVERE:
        found.append(c.finding(NEEDLE_PHOBIA_SEVERE, path, "severe needle phobia reported"))
    elif h.needle_phobia is NeedlePhobia.MILD:
        found.append(c.finding(NEEDLE_PHOBIA_MILD, path, "mild needle phobia reported"))
    elif h.needle_phobia is None:
        found.append(c.unknown(path, "needle phobia", NEEDLE_PHOBIA_SEVERE))
        unknown_paths.append(path)
    path = "patient.history.consent"
    if h.consent is False:
        found.append(c.finding(CONSENT_REFUSED, path, "the patient did not consent"))
    elif h.consent is None:
        found.append(c.unknown(path, "informed consent", CONSENT_REFUSED))
        unknown_paths.append(path)
    known = (
        tuple(f for f, _ in found),
        max((r for _, r in found), default=0),
        tuple(unknown_paths),
    )
    if len(c.patients) >= _CACHE_MAX:
        c.patients.clear()
    c.patients[key] = known
    return known


def _site(
    c: _Compiled,
    i: int,
    site: Any,
    site_path: str,
    site_findings: Sequence[SiteFinding],
    on: date,
    bleeding_risk: bool,
) -> tuple[tuple[Any, ...], int]:
    """Return the row ``(i, path, muscle, side, allowed, findings)`` of one site and its rank."""
    path = f"{site_path}[{i}]"
    muscle = MUSCLES.get(site.muscle)
    here: list[Finding] = []
    rank = 0
    excluded = False
    if muscle is None:
        hit = c.unknown(f"{path}.muscle", "muscle (not in the anatomy catalog)", SITE_FINDING)
        here.append(hit[0])
        rank = hit[1]
        excluded = True
    else:
        region = muscle.region
        side = site.side
        for sf in site_findings:
            if sf.region is not region and (
                sf.kind is not _LYMPHOEDEMA or _LIMB.get(sf.region, 0) != _LIMB.get(region, -1)
            ):
                continue  # another region (a lymphoedema finding covers its whole limb)
            sf_side = sf.side
            if not (sf_side is _SF_MIDLINE or sf_side is _SF_BILATERAL or side is _MIDLINE
                    or sf_side == side):  # str values: SiteSide.LEFT == Side.LEFT
                continue
            exclusion = _site_exclusion(sf, on, c.policy)
            if exclusion is not None:
                hit = c.finding(exclusion[0], path, exclusion[1])
                here.append(hit[0])
                rank = max(rank, hit[1])
                excluded = True
        if (bleeding_risk and not muscle.palpable_haemostasis
                and site.technique is not Technique.SUPERFICIAL):
            hit = c.finding(
                SITE_BLEEDING_RISK, path,
                f"bleeding risk: deep needling of {muscle.id} cannot be controlled by palpation",
            )
            here.append(hit[0])
            rank = max(rank, hit[1])
            excluded = True
        if muscle.over_lung and not excluded:
            hit = c.finding(OVER_LUNG_SITE, path,
                            f"{muscle.id} overlies the lung: superficial technique "
                            "preferred, respect depth limits")
            here.append(hit[0])
            rank = max(rank, hit[1])
    return (i, path, site.muscle, site.side, not excluded, tuple(here)), rank


# --- the screen ------------------------------------------------------------------------------


def screen(
    patient: Patient,
    *,
    on: date,
    sites: Iterable[Insertion | PlannedSite | Sequence[Any]] = (),
    policy: Policy = DEFAULT_POLICY,
    site_path: str = "session.insertions",
) -> ScreeningResult:
    """Screen a patient for dry needling on a date, optionally for planned sites.

    Args:
        patient: The patient.
        on: Evaluation date (ages and surgery windows are computed on it).
        sites: Planned sites: insertions, :class:`PlannedSite` objects or
            ``(muscle, side[, technique])`` tuples.
        policy: The policy (default: seed-conservative).
        site_path: Path prefix of the sites in findings (``<site_path>[i]``).

    Returns:
        The :class:`ScreeningResult`; never raises on clinical data.
    """
    if isinstance(on, datetime):
        on = on.date()
    rank, findings, unknown_paths, site_rows = _screen_parts(
        _compiled(policy), patient, on, sites, site_path
    )
    return ScreeningResult(
        decision=_DECISION_BY_RANK[rank],
        findings=tuple(findings),
        sites=tuple(site_rows),
        missing=() if rank == 3 else tuple(unknown_paths),
        on=on,
        policy=policy.fingerprint,
        policy_name=policy.name,
    )


def _screen_parts(
    c: _Compiled,
    patient: Patient,
    on: date,
    sites: Iterable[Any],
    site_path: str = "session.insertions",
    trusted: bool = False,
) -> tuple[int, list[Finding], list[str], list[tuple[Any, ...]]]:
    """The screen itself: ``(rank, findings, unknown paths, site rows)``.

    The rank indexes ``_DECISION_BY_RANK``; a site row is ``(index, path, muscle, side,
    allowed, findings)``. Used by :func:`screen` and, without building a result object, by the
    record validator (whose sites are insertions: ``trusted``).
    """
    policy = c.policy
    findings: list[Finding] = []
    unknown_paths: list[str] = []
    rank = 0

    # Age (depends on the date).
    bd = patient.birth_date
    hit: _Hit | None = None
    if bd is None:
        hit = c.unknown("patient.birth_date", "birth date", AGE_MINIMUM)
        unknown_paths.append("patient.birth_date")
    elif bd > on:
        hit = c.finding(BIRTH_DATE_IMPLAUSIBLE, "patient.birth_date",
                        "birth date is after the evaluation date: age unknown")
        unknown_paths.append("patient.birth_date")
    else:
        age = age_on(bd, on)
        if age < policy.min_age_years:
            hit = c.finding(AGE_MINIMUM, "patient.birth_date",
                            f"age {age} is under the minimum of {policy.min_age_years}")
        elif age < policy.adult_age_years:
            hit = c.finding(AGE_MINOR, "patient.birth_date",
                            f"age {age} is a minor: guardian consent and extra care")
    if hit is not None:
        findings.append(hit[0])
        rank = hit[1]

    # Answers (memoised: most patients share the same answers).
    h = patient.history
    known_level = c.patients.get((h, patient.sex, patient.pregnancy))
    if known_level is None:
        known_level = _patient_level(c, patient)
    level, level_rank, level_unknown = known_level
    if level:
        findings.extend(level)
        unknown_paths.extend(level_unknown)
        rank = max(rank, level_rank)

    # Sites. Without site findings or bleeding risk, a site's outcome depends only on its
    # position, muscle and side: memoised.
    bleeding_risk = h.bleeding_disorder is True or h.anticoagulant_therapy is True
    site_findings = patient.site_findings
    plain = c.plain_sites if not site_findings and not bleeding_risk else None
    site_rows: list[tuple[Any, ...]] = []
    all_excluded = True
    for i, raw in enumerate(sites):
        site = raw if trusted else _as_site(raw)
        if plain is not None:
            key = (site_path, i, site.muscle, site.side)
            known = plain.get(key)
            if known is None:
                known = _site(c, i, site, site_path, (), on, False)
                if len(plain) >= _CACHE_MAX:
                    plain.clear()
                plain[key] = known
        else:
            known = _site(c, i, site, site_path, site_findings, on, bleeding_risk)
        row, site_rank = known
        if row[4]:
            all_excluded = False
        if row[5]:
            findings.extend(row[5])
            rank = max(rank, site_rank)
        site_rows.append(row)
    if site_rows and all_excluded:
        hit = c.finding(ALL_SITES_EXCLUDED, site_path,
                        "every planned site is excluded: nothing can be needled as planned")
        findings.append(hit[0])
        rank = max(rank, hit[1])
    return rank, findings, unknown_paths, site_rows


def screen_for_record(
    patient: Patient,
    session: Session | None,
    *,
    on: date | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> ScreeningResult | None:
    """Screen the patient of a record, on the session's date, for the session's insertions.

    Args:
        patient: The record's patient.
        session: The record's session (``None`` when it could not be read).
        on: Evaluation date overriding the session's date.
        policy: The policy.

    Returns:
        The result, or ``None`` when no evaluation date is known (no readable session and no
        ``on``): without a date no decision can be made.
    """
    if isinstance(on, datetime):
        on = on.date()
    when = on if on is not None else (session.date if session is not None else None)
    if when is None:
        return None
    sites = session.insertions if session is not None else ()
    return screen(patient, on=when, sites=sites, policy=policy)


def is_eligible(result: ScreeningResult) -> bool:
    """Return ``True`` only for a plain ``eligible`` decision.

    A convenience that hides nothing: it takes the full result, whose findings say why.
    ``eligible_with_precautions`` is *not* plain eligibility.
    """
    return result.decision is Decision.ELIGIBLE


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

