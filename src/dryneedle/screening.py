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
* ``needs_review`` -- no exclusion, but an answer a rule needs is unknown (including a birth
  date that is absent, after the evaluation date or implies an age above the policy's
  ``max_age_years``, and a planned site whose muscle is not in the catalog).
* ``eligible_with_precautions`` -- a precaution applies: epilepsy, diabetes, vascular disease,
  lymph node removal, mild needle phobia, age 12-17, a planned site over the lung, or some
  (not all) planned sites excluded.
* ``eligible`` -- none of the above.

This module is the public face of screening and holds the screen itself; the rule declarations
and the per-policy table live in :mod:`!dryneedle._screening.rules` and the site rules in
:mod:`!dryneedle._screening.sites`, which it imports (so importing it registers every
screening rule). Import from here. This module may import the model, reference data, findings,
policy and those private modules.

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
from typing import Any, Final

import attrs

from dryneedle._screening.rules import (  # the rules, importable from here as before
    ACUTE_ILLNESS,  # noqa: F401
    AGE_MINIMUM,
    AGE_MINOR,
    ALL_SITES_EXCLUDED,
    ANTICOAGULANT,  # noqa: F401
    BIRTH_DATE_IMPLAUSIBLE,
    BLEEDING_DISORDER,  # noqa: F401
    CACHE_MAX,
    CONSENT_REFUSED,
    DIABETES,  # noqa: F401
    EPILEPSY,  # noqa: F401
    HISTORY_BOOL_RULES,
    IMMUNOCOMPROMISED,  # noqa: F401
    LYMPH_NODES,  # noqa: F401
    METAL_ALLERGY,  # noqa: F401
    NEEDLE_PHOBIA_MILD,
    NEEDLE_PHOBIA_SEVERE,
    OVER_LUNG_SITE,  # noqa: F401
    PREGNANCY,
    PRIOR_REACTION,  # noqa: F401
    SITE_BLEEDING_RISK,  # noqa: F401
    SITE_FINDING,
    SITE_LYMPHOEDEMA,  # noqa: F401
    SITE_RECENT_SURGERY,  # noqa: F401
    UNKNOWN,  # noqa: F401
    VASCULAR,  # noqa: F401
    Hit,
    ScreeningTable,
    rule_ids,
    screening_table,
)
from dryneedle._screening.sites import readable_findings, regions_touched, site_row
from dryneedle._version import __version__
from dryneedle.catalog import MUSCLES
from dryneedle.exports import present_here
from dryneedle.findings import Decision, Finding
from dryneedle.model import (
    Insertion,
    NeedlePhobia,
    Patient,
    Pregnancy,
    Session,
    Sex,
    Side,
    Technique,
    to_side,
    to_technique_or_none,
)
from dryneedle.policy import DEFAULT_POLICY, Policy

__all__ = [
    "DECISION_BY_RANK",
    "PlannedSite",
    "ScreeningResult",
    "ScreeningTable",
    "SiteDecision",
    "age_on",
    "is_eligible",
    "rule_ids",
    "screen",
    "screen_for_record",
    "screen_parts",
    "screening_table",
]

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
    side: Side = attrs.field(converter=to_side)
    technique: Technique | None = attrs.field(default=None, converter=to_technique_or_none)


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


_MUSCLE_IDS: Final = frozenset(MUSCLES)  # a set: faster to ask than the catalog's view
_REGION_OF: Final = {m.id: m.region for m in MUSCLES.values()}
_SUPERFICIAL: Final = Technique.SUPERFICIAL

DECISION_BY_RANK: Final[tuple[Decision, ...]] = (
    Decision.ELIGIBLE,
    Decision.ELIGIBLE_WITH_PRECAUTIONS,
    Decision.NEEDS_REVIEW,
    Decision.NOT_ELIGIBLE,
)
"""The decision of each rank :func:`screen_parts` returns (0 to 3: the most serious effect)."""


def _as_site(site: Any) -> Insertion | PlannedSite:
    """Return a typed site: insertions and planned sites as they are, tuples converted."""
    if isinstance(site, Insertion | PlannedSite):
        return site
    muscle, side, *rest = site
    return PlannedSite(muscle=muscle, side=side, technique=rest[0] if rest else None)


def _patient_level(
    c: ScreeningTable, patient: Patient
) -> tuple[tuple[Finding, ...], int, tuple[str, ...]]:
    """Findings that depend only on the answers (not on the date or the sites), memoised."""
    h = patient.history
    key = (h, patient.sex, patient.pregnancy)
    found: list[Hit] = []
    unknown_paths: list[str] = []
    if patient.pregnancy is Pregnancy.PREGNANT:
        found.append(c.finding(PREGNANCY, "patient.pregnancy", "patient is pregnant"))
    elif patient.sex is not Sex.MALE and patient.pregnancy in (None, Pregnancy.UNKNOWN):
        found.append(c.unknown("patient.pregnancy", "pregnancy status", PREGNANCY))
        unknown_paths.append("patient.pregnancy")
    for name, rule in HISTORY_BOOL_RULES:
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
    if len(c.patients) >= CACHE_MAX:
        c.patients.clear()
    c.patients[key] = known
    return known


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
    rank, findings, unknown_paths, site_rows = screen_parts(
        screening_table(policy), patient, on, sites, site_path
    )
    return ScreeningResult(
        decision=DECISION_BY_RANK[rank],
        findings=tuple(findings),
        sites=tuple(site_rows),
        missing=() if rank == 3 else tuple(unknown_paths),
        on=on,
        policy=policy.fingerprint,
        policy_name=policy.name,
    )


def screen_parts(
    c: ScreeningTable,
    patient: Patient,
    on: date | None,
    sites: Iterable[Any],
    site_path: str = "session.insertions",
    trusted: bool = False,
) -> tuple[int, list[Finding], list[str], list[tuple[Any, ...]]]:
    """The screen itself: ``(rank, findings, unknown paths, site rows)``.

    The rank indexes :data:`DECISION_BY_RANK`; a site row is ``(index, path, muscle, side,
    allowed, findings)``. Used by :func:`screen` and, without building a result object, by the
    record validator (whose sites are insertions: ``trusted``).

    Args:
        c: The policy's table (:func:`screening_table`).
        patient: The patient.
        on: Evaluation date; ``None`` when unknown (a record whose session date could not be
            read): the age is unknown and every surgery counts as recent.
        sites: Planned sites, as for :func:`screen`.
        site_path: Path prefix of the sites in findings (``<site_path>[i]``).
        trusted: The sites are insertions or planned sites already (no conversion), and the
            site findings come from the record reader (model findings or its mirrors, read
            as they are: no part-by-part reading of a caller's own objects).

    Returns:
        The rank, the findings, the unknown answers' paths and one row per site.
    """
    policy = c.policy
    findings: list[Finding] = []
    unknown_paths: list[str] = []
    rank = 0

    # Age (depends on the date).
    bd = patient.birth_date
    hit: Hit | None = None
    window = c.windows.get(on)
    if window is None:
        window = c.adult_window(on)
    if bd is not None and window[0] < bd <= window[1]:
        pass  # a plausible adult age: no age finding (the usual case, decided in one test)
    elif bd is None:
        hit = c.unknown("patient.birth_date", "birth date", AGE_MINIMUM)
        unknown_paths.append("patient.birth_date")
    elif on is None:  # the session date of a record could not be read: age unknown
        hit = c.unknown("session.date", "session date (the age on it)", AGE_MINIMUM)
        unknown_paths.append("session.date")
    elif bd > on:
        hit = c.finding(BIRTH_DATE_IMPLAUSIBLE, "patient.birth_date",
                        "birth date is after the evaluation date: age unknown")
        unknown_paths.append("patient.birth_date")
    else:
        # age_on(bd, on), inlined (one call less per record).
        age = on.year - bd.year - ((on.month, on.day) < (bd.month, bd.day))
        if age > policy.max_age_years:
            hit = c.finding(BIRTH_DATE_IMPLAUSIBLE, "patient.birth_date",
                            f"age {age} is above the plausible maximum of "
                            f"{policy.max_age_years}: birth date is a data error, age unknown")
            unknown_paths.append("patient.birth_date")
        elif age < policy.min_age_years:
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
        if level_unknown:
            unknown_paths.extend(level_unknown)
        rank = max(rank, level_rank)

    # Sites. Without site findings, a site's outcome depends only on its position, muscle and
    # side, and on whether the bleeding-risk rule applies to it (bleeding risk and a technique
    # that is not superficial): memoised.
    bleeding_risk = h.bleeding_disorder is True or h.anticoagulant_therapy is True
    site_findings = patient.site_findings
    if site_findings is None:  # unknown (absent or null): not "inspected, none"
        site_findings = ()
        if sites.__class__ is not tuple and sites.__class__ is not list:
            sites = tuple(sites)
        if sites:
            hit = c.unknown("patient.site_findings",
                            "site findings (inspection of the planned sites)", SITE_FINDING)
            findings.append(hit[0])
            unknown_paths.append("patient.site_findings")
            rank = max(rank, hit[1])
    plain_sites = c.plain_sites
    plain = not site_findings
    # A caller's own objects are read part by part (a part unread: unknown).
    readable = site_findings if plain or trusted else readable_findings(site_findings)
    # With site findings, a site of another region is a plain site too (regions_touched).
    touched = None if plain else regions_touched(readable)
    site_rows: list[tuple[Any, ...]] = []
    all_excluded = True
    for i, raw in enumerate(sites):
        site = raw if trusted else _as_site(raw)
        muscle = site.muscle
        if plain or (touched is not None and _REGION_OF.get(muscle) not in touched):
            key = (site_path, i, muscle, site.side,
                   bleeding_risk and site.technique is not _SUPERFICIAL)
            known = plain_sites.get(key)
            if known is None:
                known = site_row(c, i, site, site_path, (), on, bleeding_risk)
                if len(plain_sites) >= CACHE_MAX:
                    plain_sites.clear()
                plain_sites[key] = known
        else:
            known = site_row(c, i, site, site_path, readable, on, bleeding_risk)
        row, site_rank = known
        if muscle not in _MUSCLE_IDS:  # an unknown planned muscle blocks the decision
            unknown_paths.append(f"{site_path}[{i}].muscle")
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


present_here(globals(), __all__, "dryneedle._screening")
