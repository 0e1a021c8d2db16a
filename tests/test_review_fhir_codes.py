"""Pregnancy Observations not coded ``http://loinc.org|82810-3`` that still bear on the answer.

Review finding B8 (SPEC section 8, 1.1: evidence that cannot be read is never silently dropped):
an Observation whose code is 82810-3 without its system or under a misspelt one, whose code is
a pregnancy concept itself, or whose value is a pregnancy-status answer, makes the pregnancy
answer unknown, so a form's "not pregnant" cannot settle it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from dryneedle.fhir import screen_fhir
from dryneedle.findings import Decision

ON = date(2026, 12, 1)
FORM_NO: dict[str, Any] = {
    "pregnancy": "not_pregnant", "bleeding_disorder": False, "anticoagulant_therapy": False,
    "immunocompromised": False, "metal_allergy": False, "epilepsy": False, "diabetes": False,
    "vascular_disease": False, "prior_adverse_reaction": False, "acute_illness": False,
    "lymph_node_removal": False, "needle_phobia": "none", "consent": True,
}
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1990-01-01"}
PREGNANT_LOINC = {"coding": [{"system": "http://loinc.org", "code": "LA15173-0"}]}


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (PATIENT, *resources)]}


def _observation(code: dict[str, Any], **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o1", "status": "final", "code": code,
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-28",
            **value}


def test_the_baseline_form_alone_is_eligible() -> None:
    """Without the Observation the all-"no" form is eligible: the cases below are not."""
    assert screen_fhir(_bundle(), on=ON, answers=FORM_NO).result.decision is Decision.ELIGIBLE


@pytest.mark.parametrize("obs", [
    _observation({"coding": [{"code": "82810-3"}]}, valueCodeableConcept=PREGNANT_LOINC),
    _observation({"coding": [{"system": "https://loinc.org", "code": "82810-3"}]},
                 valueCodeableConcept=PREGNANT_LOINC),
    _observation({"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]},
                 valueBoolean=True),
    _observation({"text": "pregnancy status"}, valueCodeableConcept=PREGNANT_LOINC),
], ids=["no-system", "https-loinc", "snomed-code-boolean", "text-code-pregnant-value"])
def test_a_pregnancy_observation_in_another_coding_is_never_dropped(obs: dict[str, Any]) -> None:
    """The answer is unknown (needs review) and the Observation is named in provenance."""
    result = screen_fhir(_bundle(obs), on=ON, answers=FORM_NO)
    assert result.result.decision not in (Decision.ELIGIBLE, Decision.ELIGIBLE_WITH_PRECAUTIONS)
    assert any(p.resource == "Observation/o1" and p.path == "patient.pregnancy"
               for p in result.inputs.provenance)


def test_an_unrelated_observation_is_still_ignored() -> None:
    """A heart-rate Observation (LOINC 8867-4) has nothing to say about pregnancy."""
    obs = _observation({"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                       valueQuantity={"value": 70, "unit": "/min"})
    assert screen_fhir(_bundle(obs), on=ON, answers=FORM_NO).result.decision is Decision.ELIGIBLE


@pytest.mark.parametrize("text", ["Chromium", "Cobalt", "Stainless steel needles", "Nickel"])
def test_an_allergy_to_a_metal_other_than_nickel_is_a_metal_allergy(text: str) -> None:
    """An active AllergyIntolerance naming a metal or alloy sets the metal allergy answer.

    Review finding B9: only nickel and the word "metal" were read, so "Chromium" or "Cobalt"
    left the form's "no" standing (seed: metal allergies exclude dry needling).
    """
    allergy = {"resourceType": "AllergyIntolerance", "id": "a1",
               "patient": {"reference": "Patient/p1"},
               "clinicalStatus": {"coding": [{"code": "active"}]},
               "code": {"text": text}}
    result = screen_fhir(_bundle(allergy), on=ON, answers=FORM_NO)
    assert result.result.decision is Decision.NOT_ELIGIBLE
    assert result.inputs.patient.history.metal_allergy is True
    assert any(p.resource == "AllergyIntolerance/a1" for p in result.inputs.provenance)
