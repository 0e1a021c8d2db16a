"""Screening from FHIR: map the resources, screen the patient, keep the provenance.

What it is for: :func:`screen_fhir` (:func:`~._inbound.patient_from_fhir` then
:func:`~dryneedle.screening.screen`) and its result :class:`FhirScreening`, whose methods
write the result back as CDS Hooks cards, ``DetectedIssue`` or ``OperationOutcome``.

May import: the standard library, ``attrs``, :mod:`dryneedle.findings`, :mod:`dryneedle.model`,
:mod:`dryneedle.policy`,
:mod:`dryneedle.screening` and, in this package, every other module (it sits on top of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import attrs

from dryneedle.fhir._cds import cds_cards
from dryneedle.fhir._inbound import patient_from_fhir
from dryneedle.fhir._outbound import detected_issues, operation_outcome
from dryneedle.fhir._provenance import FhirPatientInputs
from dryneedle.fhir._terminology import ALLERGY_TERMS, FLAG_CODES
from dryneedle.findings import Decision, Effect, Finding, Severity, get_rule
from dryneedle.model import SiteFinding
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.screening import ScreeningResult, screen

__all__ = ["FhirScreening", "screen_fhir"]


@attrs.frozen(kw_only=True)
class FhirScreening:
    """A screening made from FHIR data, with its inputs' provenance.

    Attributes:
        inputs: The patient and provenance (:func:`patient_from_fhir`).
        result: The screening result.
    """

    inputs: FhirPatientInputs
    result: ScreeningResult

    def cards(self, *, always: bool = False, uuid_seed: str = "") -> list[dict[str, Any]]:
        """Return the CDS Hooks cards (see :func:`cds_cards`)."""
        return cds_cards(self.result, inputs=self.inputs, always=always, uuid_seed=uuid_seed)

    def detected_issues(self) -> list[dict[str, Any]]:
        """Return the ``DetectedIssue`` resources (see :func:`detected_issues`)."""
        return detected_issues(self.result, patient_id=self.inputs.patient.patient_id,
                               inputs=self.inputs)

    def operation_outcome(self) -> dict[str, Any]:
        """Return the findings as an ``OperationOutcome`` (see :func:`operation_outcome`)."""
        return operation_outcome(self.result.findings)

    def as_dict(self) -> dict[str, Any]:
        """Return the result, where each answer came from, and the provenance (JSON-ready)."""
        return {
            "result": self.result.as_dict(),
            "origins": self.inputs.origins(),
            "unclassified_medications": list(self.inputs.unclassified_medications),
            "provenance": [p.as_dict() for p in self.inputs.provenance],
        }


def screen_fhir(
    resources: Mapping[str, Any] | Sequence[Any] | None,
    *,
    on: date,
    sites: Iterable[Any] = (),
    policy: Policy = DEFAULT_POLICY,
    patient_id: str | None = None,
    answers: Mapping[str, bool | str | None] | None = None,
    site_findings: Iterable[SiteFinding] | None = None,
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
    codes: Iterable[Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]] = (),
) -> FhirScreening:
    """Map FHIR resources to a patient and screen it (see :func:`patient_from_fhir`).

    Args:
        resources: Bundle, resource or list of them.
        on: Evaluation date (never read from the clock here).
        sites: Planned sites, as for :func:`~dryneedle.screening.screen`.
        policy: The policy.
        patient_id: The patient's FHIR id (default: found in the input).
        answers: Answers collected outside FHIR.
        site_findings: Site findings from the clinician's inspection (``[]``: inspected,
            none). ``None`` (the default): not inspected; FHIR findings still exclude their
            sites, but with sites planned the site findings are unknown (``needs_review``,
            SPEC §3): FHIR records findings, it never proves their absence.
        flag_codes: Coded data that sets history answers.
        allergy_terms: Words marking a metal allergy.
        codes: A clinic's own answer-code tables (:func:`read_code_table`), merged on top.

    Returns:
        The :class:`FhirScreening`.

    Raises:
        FhirInputError: As :func:`patient_from_fhir`.
    """
    inputs = patient_from_fhir(
        resources, patient_id=patient_id, answers=answers, site_findings=site_findings,
        flag_codes=flag_codes, allergy_terms=allergy_terms, on=on, codes=tuple(codes),
        pregnancy_status_max_age_days=policy.pregnancy_status_max_age_days,
    )
    sites = tuple(sites)
    result = screen(inputs.patient, on=on, sites=sites, policy=policy)
    if sites and not inputs.site_findings_known:
        result = _site_findings_unknown(result, policy)
    return FhirScreening(inputs=inputs, result=result)


_RANK = {Decision.ELIGIBLE: 0, Decision.ELIGIBLE_WITH_PRECAUTIONS: 1,
         Decision.NEEDS_REVIEW: 2, Decision.NOT_ELIGIBLE: 3}
_EFFECT_RANK = {Effect.NOTE: 0, Effect.PRECAUTION: 1, Effect.REVIEW: 2, Effect.EXCLUDE: 3}


_last: tuple[Policy, Finding, Effect] | None = None


def _unknown_sites(policy: Policy) -> tuple[Finding, Effect]:
    """The finding "site findings unknown" under ``policy``, and its effect.

    A function of the (frozen) policy alone: made again only for another policy object (the
    last one kept, one tuple swapped at once, so threads never see half of it).
    """
    global _last  # noqa: PLW0603 - a one-entry cache
    last = _last
    if last is not None and last[0] is policy:
        return last[1], last[2]
    unknown = get_rule("screening.unknown_answer")
    effect = policy.effect_of(unknown.id, Effect.REVIEW)
    finding = Finding(code=unknown.id,
                      severity=policy.severity_of(unknown.id, Severity.WARNING, effect),
                      path="patient.site_findings",
                      message="site findings are unknown: inspect the planned sites before "
                      "needling", sources=tuple(dict.fromkeys(("seed", "za-bn121",
                                                               *unknown.sources))))
    _last = (policy, finding, effect)
    return finding, effect


def _site_findings_unknown(result: ScreeningResult, policy: Policy) -> ScreeningResult:
    """Apply SPEC §3 (1.1): sites planned and the site findings unknown ⇒ at least review.

    The same rule :func:`~dryneedle.screening.screen` applies to ``site_findings: null``
    (rule ``screening.unknown_answer`` at ``patient.site_findings``, its policy effect and
    severity); the FHIR patient cannot carry "unknown" in its tuple of findings, so it is
    applied here. An exclusion still gives ``not_eligible`` (nothing to collect then).
    """
    finding, effect = _unknown_sites(policy)
    rank = max(_RANK[result.decision], _EFFECT_RANK[effect])
    decision = next(d for d, r in _RANK.items() if r == rank)
    missing = () if rank == 3 else (*result.missing, "patient.site_findings")
    return attrs.evolve(result, decision=decision, findings=(*result.findings, finding),
                        missing=missing)

