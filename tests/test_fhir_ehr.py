"""Real EHR data (SPEC 1.1 §8, issue #14): US-coded terminologies, unread evidence, recency,
site findings from body sites, clinic code tables, and the 30 shared Synthea R4 bundles."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dryneedle.cli import main
from dryneedle.fhir import (
    ANSWER_CODES,
    ICD10CM,
    LOINC,
    RXNORM,
    SNOMED,
    Action,
    patient_from_fhir,
    read_code_table,
    screen_fhir,
)
from dryneedle.findings import Decision
from dryneedle.model import Pregnancy, SiteFinding
from dryneedle.screening import screen

SYNTHEA = Path(__file__).parents[2] / "shared" / "fhir" / "synthea"
EXPECT = json.loads((Path(__file__).parent / "data" / "synthea_expectations.json")
                    .read_text(encoding="utf-8"))["bundles"]
ON = date(2026, 11, 27)
RANK = {Decision.ELIGIBLE: 0, Decision.ELIGIBLE_WITH_PRECAUTIONS: 1,
        Decision.NEEDS_REVIEW: 2, Decision.NOT_ELIGIBLE: 3}
ALL_NO: dict[str, bool | str | None] = {
    **dict.fromkeys(["bleeding_disorder", "anticoagulant_therapy", "immunocompromised",
                     "metal_allergy", "epilepsy", "diabetes", "vascular_disease",
                     "prior_adverse_reaction", "acute_illness", "lymph_node_removal"], False),
    "needle_phobia": "none", "consent": True, "pregnancy": "not_pregnant",
}
PATIENT = {"resourceType": "Patient", "id": "p", "gender": "female", "birthDate": "1980-05-01"}
SUBJECT = {"reference": "Patient/p"}


def cond(rid: str, system: str, code: str, **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid, "subject": SUBJECT,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": system, "code": code}]}, **kw}


def med(rid: str, system: str, code: str, status: str | None = "active",
        text: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "MedicationRequest", "id": rid, "intent": "order",
                           "subject": SUBJECT, "medicationCodeableConcept": {
                               "coding": [{"system": system, "code": code}]}}
    if status is not None:
        res["status"] = status
    if text is not None:
        res["medicationCodeableConcept"]["text"] = text
    return res


def preg(rid: str, value: tuple[str, str], when: str | None, status: str = "final") -> dict[
        str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": status, "subject": SUBJECT,
        "code": {"coding": [{"system": LOINC, "code": "82810-3"}]},
        "valueCodeableConcept": {"coding": [{"system": value[0], "code": value[1]}]}}
    if when is not None:
        res["effectiveDateTime"] = when
    return res


# --- terminologies ------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "path"), [
    (med("w", RXNORM, "855332"), "anticoagulant_therapy"),  # Warfarin Sodium 5 MG Oral Tablet
    (med("c", RXNORM, "309362"), "anticoagulant_therapy"),  # clopidogrel 75 MG Oral Tablet
    (med("o", "urn:oid:2.16.840.1.113883.6.73", "B01AA03"), "anticoagulant_therapy"),
    (cond("z", ICD10CM, "Z79.01"), "anticoagulant_therapy"),
    (cond("h", ICD10CM, "B20"), "immunocompromised"),
    (cond("hs", SNOMED, "86406008"), "immunocompromised"),
    (cond("d", SNOMED, "44054006"), "diabetes"),
    (cond("e", SNOMED, "84757009"), "epilepsy"),
    (cond("e2", "urn:oid:2.16.840.1.113883.6.96", "128613002"), "epilepsy"),
])
def test_a_recognised_active_resource_beats_a_form_no(resource: dict[str, Any],
                                                      path: str) -> None:
    """RxNorm, ATC under its OID, ICD-10-CM status codes and SNOMED CT set the answer True,
    whatever the form says; both are named in the provenance."""
    inputs = patient_from_fhir([PATIENT, resource], answers=ALL_NO, on=ON)
    assert getattr(inputs.patient.history, path) is True
    assert inputs.evidence_for(f"patient.history.{path}") == (
        f"{resource['resourceType']}/{resource['id']}",)
    form = [p for p in inputs.provenance_for(f"patient.history.{path}")
            if p.resource == "answers"]
    assert [(p.action, p.reason) for p in form] == [(Action.SUPERSEDED, "fhir-evidence")]
    assert inputs.origin(f"patient.history.{path}") == "fhir+answers"


@pytest.mark.parametrize(("when", "status", "expected"), [
    ("2026-11-20", "final", Pregnancy.NOT_PREGNANT),
    ("2023-05-01", "final", Pregnancy.UNKNOWN),
    (None, "final", Pregnancy.UNKNOWN),
    ("2026-11-20", "preliminary", Pregnancy.UNKNOWN),
])
def test_not_pregnant_in_snomed(when: str | None, status: str, expected: Pregnancy) -> None:
    """SNOMED CT 60001007 (Not pregnant) counts like LOINC LA26683-5: only final and recent."""
    screening = screen_fhir([PATIENT, preg("o", (SNOMED, "60001007"), when, status)], on=ON,
                            answers={**ALL_NO, "pregnancy": None})
    assert screening.inputs.patient.pregnancy is expected
    assert screening.result.decision is (Decision.ELIGIBLE if expected is Pregnancy.NOT_PREGNANT
                                         else Decision.NEEDS_REVIEW)


def test_pregnancy_from_icd10cm_and_snomed() -> None:
    """Z33.1 (Pregnant state, incidental) and a SNOMED 77386006 value make pregnant."""
    for res in (cond("z", ICD10CM, "Z33.1"),
                preg("o", (SNOMED, "77386006"), "2026-11-20")):
        inputs = patient_from_fhir([PATIENT, res], answers=ALL_NO, on=ON)
        assert inputs.patient.pregnancy is Pregnancy.PREGNANT


def _allergy(rid: str, system: str, code: str) -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance", "id": rid, "patient": SUBJECT,
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "confirmed"}]},
            "code": {"coding": [{"system": system, "code": code}]}}


@pytest.mark.parametrize("rxcui", [
    "11289",    # Warfarin (US Core allergy-substance value set, RxNorm TTY IN)
    "1364430",  # apixaban
    "1114195",  # rivaroxaban
    "1037042",  # dabigatran etexilate
    "5224",     # heparin
    "67108",    # Enoxaparin
    "32968",    # clopidogrel
    "1116632",  # Ticagrelor
    "613391",   # prasugrel (HL7 Vulcan RWD ExamplePrasugrelCodes)
    "1191",     # Aspirin
    "1599538",  # edoxaban (OHDSI Phenotype Library and SCYLLA, OMOP RxNorm Ingredient)
    "1546356",  # dabigatran (OHDSI SCYLLA concept set)
    "154",      # acenocoumarol (CPIC drug table)
    "8150",     # phenprocoumon (CPIC drug table)
])
def test_a_medication_coded_by_ingredient_only_is_an_antithrombotic(rxcui: str) -> None:
    """An RxNorm ingredient concept alone (no clinical drug, no text) is recognised: with a
    form's "no", anticoagulant therapy is True and the default policy says not eligible."""
    screening = screen_fhir([PATIENT, med("w", RXNORM, rxcui)], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.history.anticoagulant_therapy is True
    assert screening.inputs.unclassified_medications == ()
    assert screening.inputs.evidence_for("patient.history.anticoagulant_therapy") == (
        "MedicationRequest/w",)
    assert screening.result.decision is Decision.NOT_ELIGIBLE


def test_antiplatelet_status_code_z79_02() -> None:
    """ICD-10-CM Z79.02 (long term use of antithrombotics/antiplatelets) sets the answer."""
    screening = screen_fhir([PATIENT, cond("z", ICD10CM, "Z79.02")], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.history.anticoagulant_therapy is True
    assert screening.result.decision is Decision.NOT_ELIGIBLE


@pytest.mark.parametrize(("system", "code"), [
    (SNOMED, "43921001"),  # Nickel compound (substance)
    (RXNORM, "1311629"),   # nickel
    (RXNORM, "31738"),     # nickel sulfate
])
def test_a_nickel_allergy_coded_only_by_substance(system: str, code: str) -> None:
    """An AllergyIntolerance coded by the nickel substance alone (no text) is a metal allergy."""
    screening = screen_fhir([PATIENT, _allergy("a", system, code)], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.history.metal_allergy is True
    assert screening.inputs.evidence_for("patient.history.metal_allergy") == (
        "AllergyIntolerance/a",)
    assert screening.result.decision is Decision.NOT_ELIGIBLE


def test_nickel_contact_dermatitis_is_a_metal_allergy() -> None:
    """SNOMED CT 93419003 (Contact dermatitis caused by nickel), as an active Condition or an
    AllergyIntolerance, sets the metal allergy; resolved, it does not."""
    for resource in (cond("c", SNOMED, "93419003"), _allergy("c", SNOMED, "93419003")):
        screening = screen_fhir([PATIENT, resource], on=ON, answers=ALL_NO)
        assert screening.inputs.patient.history.metal_allergy is True
        assert screening.inputs.evidence_for("patient.history.metal_allergy") == (
            f"{resource['resourceType']}/c",)
        assert screening.result.decision is Decision.NOT_ELIGIBLE
    resolved = cond("c", SNOMED, "93419003",
                    clinicalStatus={"coding": [{"code": "resolved"}]})
    inputs = patient_from_fhir([PATIENT, resolved], answers=ALL_NO, on=ON)
    assert inputs.patient.history.metal_allergy is False


def test_an_allergy_to_an_antithrombotic_is_not_antithrombotic_therapy() -> None:
    """Allergic to warfarin (substance code) says nothing about taking it; nickel as a
    medication code is no allergy (an unclassified medication instead)."""
    inputs = patient_from_fhir([PATIENT, _allergy("a", RXNORM, "11289")], answers=ALL_NO, on=ON)
    assert inputs.patient.history.anticoagulant_therapy is False
    inputs = patient_from_fhir([PATIENT, med("n", RXNORM, "1311629")], answers=ALL_NO, on=ON)
    assert inputs.patient.history.metal_allergy is False
    assert inputs.patient.history.anticoagulant_therapy is None


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("234246002", "completed", True),   # Selective neck dissection of cervical lymph nodes
    ("446109005", "completed", True),   # Simple mastectomy with excision of axillary lymph nodes
    ("27842006", "unknown", None),      # Radical excision of lymph nodes, status unknown
    ("27842006", "not-done", False),
])
def test_a_lymph_node_removal_procedure(code: str, status: str, expected: bool | None) -> None:
    """A Procedure coded as a lymph node excision/dissection sets lymph_node_removal (a
    precaution); one of unknown status makes it unknown; one not done says nothing."""
    res = {"resourceType": "Procedure", "id": "l", "status": status, "subject": SUBJECT,
           "code": {"coding": [{"system": SNOMED, "code": code}]},
           "performedDateTime": "2019-03-01"}
    screening = screen_fhir([PATIENT, res], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.history.lymph_node_removal is expected
    decision = {True: Decision.ELIGIBLE_WITH_PRECAUTIONS, None: Decision.NEEDS_REVIEW,
                False: Decision.ELIGIBLE}[expected]
    assert screening.result.decision is decision


@pytest.mark.parametrize(("code", "system"), [
    ("230690007", SNOMED),   # Cerebrovascular accident (Cerebrovascular Disease Stroke or TIA)
    ("53741008", SNOMED),    # Coronary arteriosclerosis (Coronary Artery Disease No MI)
    ("I63.9", ICD10CM),      # Cerebral infarction, unspecified
])
def test_stroke_and_coronary_artery_disease_are_vascular_disease(code: str,
                                                                 system: str) -> None:
    """Vascular disease (za-bn121, a precaution) from the VSAC cerebrovascular and coronary
    artery disease value sets."""
    screening = screen_fhir([PATIENT, cond("v", system, code)], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.history.vascular_disease is True
    assert screening.result.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS


# --- unread evidence ------------------------------------------------------------------------


@pytest.mark.parametrize("resource", [
    med("u", RXNORM, "855332", status="unknown"),
    med("n", RXNORM, "855332", status=None),
    med("x", RXNORM, "197361"),  # Amlodipine 5 MG Oral Tablet: not classified by any table
    med("t", "http://example.org/local", "42", text="Warfarin 5 mg"),
])
def test_unread_medication_makes_the_answer_unknown(resource: dict[str, Any]) -> None:
    """Status unknown/none, or a medication no table classifies: anticoagulant therapy is
    unknown (a form's "no" is superseded), the resource named; the screen is review."""
    screening = screen_fhir([PATIENT, resource], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.history.anticoagulant_therapy is None
    unread = [p for p in screening.inputs.provenance
              if p.action is Action.UNREAD and p.path.endswith("anticoagulant_therapy")]
    assert [p.resource for p in unread] == [f"MedicationRequest/{resource['id']}"]
    assert screening.result.decision is Decision.NEEDS_REVIEW
    assert "patient.history.anticoagulant_therapy" in screening.result.missing


def test_unclassified_medications_are_listed_on_the_card() -> None:
    """Every unclassified medication is listed in the result and on the card."""
    meds = [med("a", RXNORM, "197361"), med("b", RXNORM, "312961"),
            med("c", RXNORM, "316049")]
    screening = screen_fhir([PATIENT, *meds], on=ON, answers=ALL_NO)
    assert len(screening.inputs.unclassified_medications) == 3
    (card,) = screening.cards()
    assert "3 medications could not be classified: check for antithrombotics" in card["detail"]
    assert screening.as_dict()["unclassified_medications"] == list(
        screening.inputs.unclassified_medications)


def test_a_recognised_antithrombotic_wins_over_unclassified_ones() -> None:
    """With a recognised antithrombotic the answer is True (not unknown)."""
    inputs = patient_from_fhir([PATIENT, med("w", RXNORM, "855332"),
                                med("x", RXNORM, "197361")], answers=ALL_NO, on=ON)
    assert inputs.patient.history.anticoagulant_therapy is True


def test_a_clinic_table_can_classify_a_medication() -> None:
    """A reviewed code (flag ``none``) is no longer unclassified."""
    table = read_code_table(json.dumps({
        "header": {"description": "Clinic review of common medications.", "sources": ["policy"],
                   "version": "1", "date": "2026-12-01", "system": RXNORM},
        "entries": [{"code": "197361", "flag": "none", "sources": ["policy"]}]}))
    screening = screen_fhir([PATIENT, med("x", RXNORM, "197361")], on=ON, answers=ALL_NO,
                            codes=[table])
    assert screening.inputs.unclassified_medications == ()
    assert screening.inputs.patient.history.anticoagulant_therapy is False


# --- recency and status ------------------------------------------------------------------------


@pytest.mark.parametrize(("obs", "expected"), [
    (preg("o", (LOINC, "LA26683-5"), "2026-11-20"), Pregnancy.NOT_PREGNANT),
    (preg("o", (LOINC, "LA26683-5"), "2023-05-01"), Pregnancy.UNKNOWN),
    (preg("o", (LOINC, "LA26683-5"), None), Pregnancy.UNKNOWN),
    (preg("o", (LOINC, "LA26683-5"), "2026-11-20", "preliminary"), Pregnancy.UNKNOWN),
    (preg("o", (LOINC, "LA15173-0"), "2026-11-26", "preliminary"), Pregnancy.PREGNANT),
])
def test_pregnancy_status_recency(obs: dict[str, Any], expected: Pregnancy) -> None:
    """'Not pregnant' counts only final and within 30 days; a preliminary 'pregnant' counts."""
    screening = screen_fhir([PATIENT, obs], on=ON, answers=ALL_NO)
    assert screening.inputs.patient.pregnancy is expected
    if expected is Pregnancy.UNKNOWN:
        assert screening.result.decision is Decision.NEEDS_REVIEW


_PREGNANT = (LOINC, "LA15173-0")
_NOT_PREGNANT = (LOINC, "LA26683-5")


@pytest.mark.parametrize("status", ["final", "amended", "corrected", "preliminary"])
@pytest.mark.parametrize(("pregnant_on", "not_pregnant_on"), [
    ("2026-11-20", "2026-11-20"),  # same day
    ("2026-11-18", "2026-11-25"),  # "not pregnant" later
    ("2026-11-25", "2026-11-18"),  # "pregnant" later
    (None, "2026-11-25"),          # undated "pregnant": cannot be shown stale
])
def test_a_current_pregnant_status_wins_over_not_pregnant(
        status: str, pregnant_on: str | None, not_pregnant_on: str) -> None:
    """SPEC 1.1 §8: any current "pregnant" status (final, amended, corrected or preliminary)
    makes the patient pregnant against a final "not pregnant", in any date order; both are
    named in the provenance and a form's "no" cannot undo it (default policy: not eligible)."""
    bundle = [PATIENT, preg("yes", _PREGNANT, pregnant_on, status),
              preg("no", _NOT_PREGNANT, not_pregnant_on)]
    screening = screen_fhir(bundle, on=ON, answers=ALL_NO)
    inputs = screening.inputs
    assert inputs.patient.pregnancy is Pregnancy.PREGNANT
    assert inputs.evidence_for("patient.pregnancy") == ("Observation/yes",)
    trail = {(p.resource, p.action, p.reason) for p in inputs.provenance_for("patient.pregnancy")}
    assert ("Observation/no", Action.SUPERSEDED, "current-pregnant-status") in trail
    assert ("answers", Action.SUPERSEDED, "fhir-evidence") in trail
    assert not [p for p in inputs.provenance if p.action is Action.CONFLICT]
    assert screening.result.decision is Decision.NOT_ELIGIBLE


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_a_withdrawn_pregnant_status_never_counts(status: str) -> None:
    """An entered-in-error or cancelled "pregnant" observation is ignored, whatever its date."""
    inputs = patient_from_fhir([PATIENT, preg("yes", _PREGNANT, "2026-11-25", status),
                                preg("no", _NOT_PREGNANT, "2026-11-20")], on=ON)
    assert inputs.patient.pregnancy is Pregnancy.NOT_PREGNANT
    assert inputs.evidence_for("patient.pregnancy") == ("Observation/no",)
    assert ("Observation/yes", f"status:{status}") in {
        (p.resource, p.reason) for p in inputs.ignored}


def test_an_old_pregnant_status_gives_way_to_a_later_current_not_pregnant() -> None:
    """A "pregnant" status older than the window still counts alone (never less cautious),
    but a later current final "not pregnant" supersedes it; two current "pregnant" statuses
    are both the evidence."""
    old = preg("old", _PREGNANT, "2026-05-01")
    assert patient_from_fhir([PATIENT, old], on=ON).patient.pregnancy is Pregnancy.PREGNANT
    inputs = patient_from_fhir([PATIENT, old, preg("no", _NOT_PREGNANT, "2026-11-20")], on=ON)
    assert inputs.patient.pregnancy is Pregnancy.NOT_PREGNANT
    assert ("Observation/old", Action.SUPERSEDED, "older-observation") in {
        (p.resource, p.action, p.reason) for p in inputs.provenance_for("patient.pregnancy")}
    both = patient_from_fhir([PATIENT, old, preg("a", _PREGNANT, "2026-11-20"),
                              preg("b", _PREGNANT, "2026-11-22", "amended"),
                              preg("no", _NOT_PREGNANT, "2026-11-26")], on=ON)
    assert both.patient.pregnancy is Pregnancy.PREGNANT
    assert both.evidence_for("patient.pregnancy") == ("Observation/a", "Observation/b")


def _unreadable(rid: str, when: str | None) -> dict[str, Any]:
    res = preg(rid, _PREGNANT, when)
    res["valueCodeableConcept"] = {"text": "see note"}
    return res


def _contradictory(rid: str, when: str | None) -> dict[str, Any]:
    res = preg(rid, _PREGNANT, when)
    res["valueCodeableConcept"]["coding"].append({"system": LOINC, "code": "LA26683-5"})
    return res


@pytest.mark.parametrize(("doubt", "expected"), [
    (_unreadable("u", "2026-11-25"), Pregnancy.UNKNOWN),
    (_unreadable("u", None), Pregnancy.UNKNOWN),
    (_unreadable("u", "2026-05-01"), Pregnancy.NOT_PREGNANT),  # older than the window
    (_contradictory("u", "2026-11-18"), Pregnancy.UNKNOWN),
    (preg("u", _PREGNANT, "2026-11-25", "registered"), Pregnancy.UNKNOWN),
    (preg("u", _PREGNANT, "2026-11-25", "unknown"), Pregnancy.UNKNOWN),
    (preg("u", _NOT_PREGNANT, "2026-11-25", "preliminary"), Pregnancy.NOT_PREGNANT),
    (preg("u", _NOT_PREGNANT, "2025-01-01"), Pregnancy.NOT_PREGNANT),
    (cond("u", ICD10CM, "Z33.1",
          verificationStatus={"coding": [{"code": "provisional"}]}), Pregnancy.UNKNOWN),
])
def test_unread_evidence_that_could_say_pregnant_beats_not_pregnant(
        doubt: dict[str, Any], expected: Pregnancy) -> None:
    """Unread evidence is never silently dropped (SPEC 1.1 §8): a current pregnancy resource
    that cannot be read (no readable or contradictory value, a status that does not count, a
    provisional pregnancy) could say "pregnant", so a final "not pregnant" cannot settle it;
    unread evidence that can only say "not pregnant", or is older than the window, can."""
    screening = screen_fhir([PATIENT, doubt, preg("no", _NOT_PREGNANT, "2026-11-20")], on=ON,
                            answers=ALL_NO)
    inputs = screening.inputs
    assert inputs.patient.pregnancy is expected
    assert (f"{doubt['resourceType']}/u", Action.UNREAD) in {
        (p.resource, p.action) for p in inputs.provenance_for("patient.pregnancy")}
    if expected is Pregnancy.UNKNOWN:
        assert screening.result.decision is Decision.NEEDS_REVIEW
        assert inputs.origin("patient.pregnancy") == "unread"
        assert ("Observation/no", Action.SUPERSEDED, "unread-fhir-evidence") in {
            (p.resource, p.action, p.reason) for p in inputs.provenance_for("patient.pregnancy")}
    else:
        assert inputs.evidence_for("patient.pregnancy") == ("Observation/no",)


_OBS_STATUS = st.sampled_from(["final", "amended", "corrected", "preliminary", "registered",
                               "entered-in-error", "unknown"])
_OBS_DATE = st.sampled_from([None, "2026-11-27", "2026-11-20", "2026-11-01", "2026-05-01",
                             "2026-11-20T08:00:00Z", "2026-12-03"])
_OBS_VALUE = st.sampled_from([_PREGNANT, _NOT_PREGNANT, (LOINC, "LA4489-6"),
                              (SNOMED, "77386006"), (SNOMED, "60001007"), (LOINC, "LA0000-0")])
_CAUTION = {Pregnancy.NOT_PREGNANT: 0, None: 1, Pregnancy.UNKNOWN: 1, Pregnancy.PREGNANT: 2}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_OBS_VALUE, _OBS_DATE, _OBS_STATUS), max_size=4),
       st.tuples(st.sampled_from([_PREGNANT, (SNOMED, "77386006")]), _OBS_DATE,
                 st.sampled_from(["final", "amended", "corrected", "preliminary"])),
       st.sampled_from([ALL_NO, {**ALL_NO, "pregnancy": None}, {}]))
def test_adding_a_pregnant_status_is_never_more_permissive(
        others: list[tuple[tuple[str, str], str | None, str]],
        added: tuple[tuple[str, str], str | None, str], answers: dict[str, Any]) -> None:
    """Monotonicity: whatever pregnancy observations a bundle holds, adding a "pregnant" one
    (any counting status, any date) never makes the pregnancy status less cautious nor the
    decision more permissive."""
    base = [PATIENT, *(preg(f"o{i}", v, w, s) for i, (v, w, s) in enumerate(others))]
    before = screen_fhir(base, on=ON, answers=answers)
    after = screen_fhir([*base, preg("new", *added)], on=ON, answers=answers)
    assert _CAUTION[after.inputs.patient.pregnancy] >= _CAUTION[before.inputs.patient.pregnancy]
    assert RANK[after.result.decision] >= RANK[before.result.decision]
    if added[1] is None or (ON - date.fromisoformat(added[1][:10])).days <= 30:
        assert after.inputs.patient.pregnancy is Pregnancy.PREGNANT


def test_pregnancy_window_is_the_policy_limit() -> None:
    """``pregnancy_status_max_age_days`` is a policy limit (clinic-policy default 30)."""
    from dryneedle.policy import DEFAULT_POLICY  # noqa: PLC0415

    assert DEFAULT_POLICY.pregnancy_status_max_age_days == 30
    wider = DEFAULT_POLICY.override(justification="test",
                                    limits={"pregnancy_status_max_age_days": 90})
    obs = preg("o", (LOINC, "LA26683-5"), "2026-09-20")
    assert screen_fhir([PATIENT, obs], on=ON, policy=wider).inputs.patient.pregnancy is (
        Pregnancy.NOT_PREGNANT)


def test_conditions_by_status_and_dates() -> None:
    """Refuted and abated are ignored; unconfirmed or a future onset is unknown.

    (1.1, review of #14 B4) A future onset was ignored; it could bear on the answer (SPEC
    §8: evidence it cannot read is never silently dropped), so it is now unknown.
    """
    dm = ("http://snomed.info/sct", "44054006")
    refuted = cond("r", *dm, verificationStatus={"coding": [{"code": "refuted"}]})
    abated = cond("a", *dm, abatementDateTime="2026-01-01")
    for res in (refuted, abated):
        inputs = patient_from_fhir([PATIENT, res], answers=ALL_NO, on=ON)
        assert inputs.patient.history.diabetes is False
    unconfirmed = cond("u", *dm, verificationStatus={"coding": [{"code": "unconfirmed"}]})
    future = cond("f", *dm, onsetDateTime="2027-01-01")
    for res in (unconfirmed, future):
        inputs = patient_from_fhir([PATIENT, res], answers=ALL_NO, on=ON)
        assert inputs.patient.history.diabetes is None
        assert inputs.origin("patient.history.diabetes") == "unread"


# --- site findings --------------------------------------------------------------------------


def _procedure(site: str, when: str | None) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Procedure", "id": "s", "status": "completed",
                           "subject": SUBJECT, "code": {"text": "operation"},
                           "bodySite": [{"coding": [{"system": SNOMED, "code": site}]}]}
    if when:
        res["performedDateTime"] = when
    return res


def test_a_procedure_at_a_body_site_is_a_surgery_there() -> None:
    """A recent Procedure at the left upper arm excludes the left biceps, like validate."""
    sites = [("biceps_brachii", "left")]
    screening = screen_fhir([PATIENT, _procedure("368208006", "2026-11-01")], on=ON,
                            answers=ALL_NO, sites=sites, site_findings=[])
    finding = SiteFinding(region="arm", side="left", kind="surgery", date=date(2026, 11, 1))
    assert screening.inputs.patient.site_findings == (finding,)
    direct = screen(screening.inputs.patient, on=ON, sites=sites)
    assert screening.result.decision is direct.decision is Decision.NOT_ELIGIBLE


def test_a_wound_condition_at_a_body_site_excludes_it() -> None:
    """A laceration Condition at the right elbow excludes the right arm and forearm."""
    wound = cond("w", SNOMED, "283371005",
                 bodySite=[{"coding": [{"system": SNOMED, "code": "368149001"}]}])
    inputs = patient_from_fhir([PATIENT, wound], on=ON)
    assert {(f.region.value, f.side.value, f.kind.value)
            for f in inputs.patient.site_findings or ()} == {
        ("arm", "right", "wound"), ("forearm", "right", "wound")}


@pytest.mark.parametrize(("kind_code", "kind", "site", "planned", "regions"), [
    ("341000119102", "tattoo", "40983000", ("biceps_brachii", "left"), {"arm"}),  # upper arm
    ("341000119102", "tattoo", "77568009", ("lumbar_multifidus", "right"),         # back
     {"upper_back", "lower_back"}),
    ("63130001", "scar", "72696002", None, {"knee"}),                             # knee
    ("125643001", "wound", "45048000", ("levator_scapulae", "left"), {"neck"}),   # neck
    ("12402003", "scar", "16982005", ("infraspinatus", "left"), {"shoulder"}),    # shoulder
    ("312608009", "wound", "68367000", ("vastus_lateralis", "right"), {"thigh"}),  # thigh
    ("125666000", "wound", "661005", ("masseter", "left"), {"jaw"}),              # jaw region
])
def test_a_site_finding_at_a_body_site_excludes_that_site(
        kind_code: str, kind: str, site: str, planned: tuple[str, str] | None,
        regions: set[str]) -> None:
    """A tattoo / scar / wound Condition at a body site (no laterality: both sides) is a site
    finding there; a planned muscle in that region is excluded, so with no other site the
    decision is not eligible."""
    res = cond("t", SNOMED, kind_code, onsetDateTime="2026-10-01",
               bodySite=[{"coding": [{"system": SNOMED, "code": site}]}])
    inputs = patient_from_fhir([PATIENT, res], on=ON)
    found = inputs.patient.site_findings or ()
    assert {(f.region.value, f.side.value, f.kind.value)
            for f in found} == {(r, "bilateral", kind) for r in regions}
    if planned is not None:
        screening = screen_fhir([PATIENT, res], on=ON, answers=ALL_NO, sites=[planned],
                                site_findings=[])
        assert screening.result.decision is Decision.NOT_ELIGIBLE
        (site_decision,) = screening.result.site_decisions
        assert not site_decision.allowed


def test_the_body_site_table_covers_every_region() -> None:
    """Every region of SPEC §2 can be reached from some SNOMED CT body-site code."""
    from dryneedle.fhir._terminology import BODY_SITES  # noqa: PLC0415
    from dryneedle.model import Region  # noqa: PLC0415

    assert {r for regions, _ in BODY_SITES.values() for r in regions} == set(Region)


def test_unknown_side_concerns_both_sides_and_laterality_is_read() -> None:
    """Hip joint without laterality: both sides; with 'Unilateral left': left."""
    hip = {"coding": [{"system": SNOMED, "code": "24136001"}]}
    left = {"coding": [{"system": SNOMED, "code": "24136001"},
                       {"system": SNOMED, "code": "419161000"}]}
    for site, side in ((hip, "bilateral"), (left, "left")):
        res = _procedure("x", "2026-11-01") | {"bodySite": [site]}
        (f,) = patient_from_fhir([PATIENT, res], on=ON).patient.site_findings or ()
        assert (f.region.value, f.side.value) == ("hip", side)


def test_site_findings_unknown_without_inspection_or_with_an_unplaced_site() -> None:
    """No inspection given, or a body site that cannot be placed: planned sites unknown."""
    sites = [("biceps_brachii", "right")]
    plain = screen_fhir([PATIENT], on=ON, answers=ALL_NO, sites=sites)
    assert plain.result.decision is Decision.NEEDS_REVIEW
    assert "patient.site_findings" in plain.result.missing
    inspected = screen_fhir([PATIENT], on=ON, answers=ALL_NO, sites=sites, site_findings=[])
    assert inspected.result.decision is Decision.ELIGIBLE
    unplaced = screen_fhir([PATIENT, _procedure("999999999", "2026-11-01")], on=ON,
                           answers=ALL_NO, sites=sites, site_findings=[])
    assert unplaced.result.decision is Decision.NEEDS_REVIEW
    assert not unplaced.inputs.site_findings_known


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_codes_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--codes FILE`` merges a clinic table; a bad file is a usage error (exit 2)."""
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": PATIENT}, {"resource": med("x", RXNORM, "197361")}]}))
    good = tmp_path / "codes.json"
    good.write_text(json.dumps({
        "header": {"description": "Clinic review of common medications.", "sources": ["policy"],
                   "version": "1", "date": "2026-12-01", "system": RXNORM},
        "entries": [{"code": "197361", "flag": "none", "sources": ["policy"]}]}))
    assert main(["fhir", "screen", str(bundle), "--on", "2026-11-27", "--codes", str(good)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["unclassified_medications"] == []
    main(["fhir", "screen", str(bundle), "--on", "2026-11-27"])
    assert json.loads(capsys.readouterr().out)["unclassified_medications"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"header": {}, "entries": []}))
    assert main(["fhir", "screen", str(bundle), "--codes", str(bad)]) == 2
    assert "--codes" in capsys.readouterr().err


# --- the shared Synthea bundles ------------------------------------------------------------------


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="../shared/fhir/synthea is not present")
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_synthea_bundle(name: str) -> None:
    """Each bundle, with an all-"no" intake form: what it holds decides (never eligible with
    an antithrombotic, pregnancy or HIV; never plain eligible with diabetes or epilepsy), and
    the resources read independently are named as the evidence."""
    bundle = json.loads((SYNTHEA / name).read_text(encoding="utf-8"))
    expect = EXPECT[name]
    screening = screen_fhir(bundle, on=ON, answers=ALL_NO)
    decision, inputs = screening.result.decision, screening.inputs
    assert decision is not Decision.ELIGIBLE or not inputs.unclassified_medications
    if {"antithrombotic", "pregnancy", "hiv"} & set(expect):
        assert RANK[decision] >= RANK[Decision.NEEDS_REVIEW]
    if {"diabetes", "epilepsy"} & set(expect):
        assert decision is not Decision.ELIGIBLE
    paths = {"antithrombotic": "patient.history.anticoagulant_therapy",
             "pregnancy": "patient.pregnancy", "hiv": "patient.history.immunocompromised",
             "diabetes": "patient.history.diabetes", "epilepsy": "patient.history.epilepsy"}
    for key, resources in expect.items():
        assert set(resources) <= set(inputs.evidence_for(paths[key])), key
    if "antithrombotic" in expect or "pregnancy" in expect:
        assert decision is Decision.NOT_ELIGIBLE  # default policy: an exclusion


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="../shared/fhir/synthea is not present")
@pytest.mark.parametrize("name", sorted(EXPECT))
def test_no_synthea_resource_is_silently_dropped(name: str) -> None:
    """SPEC 1.1 §8, "nothing the EHR says is dropped": with an all-"no" form, every resource of
    the bundle is in the provenance (used, unread, superseded, in conflict, or ignored with a
    reason), and no answer with unread or conflicting FHIR evidence is settled by the form's
    "no"."""
    bundle = json.loads((SYNTHEA / name).read_text(encoding="utf-8"))
    inputs = screen_fhir(bundle, on=ON, answers=ALL_NO).inputs
    labels = {f"{e['resource']['resourceType']}/{e['resource']['id']}"
              if e["resource"].get("id") else e["fullUrl"] for e in bundle["entry"]}
    assert labels <= {p.resource for p in inputs.provenance}
    assert all(p.reason for p in inputs.ignored)
    unread = {p.path for p in inputs.provenance
              if p.action in (Action.UNREAD, Action.CONFLICT) and p.resource != "answers"}
    for path in unread:
        if path == "patient.pregnancy":
            assert inputs.patient.pregnancy is not Pregnancy.NOT_PREGNANT
        elif path.startswith("patient.history."):
            assert getattr(inputs.patient.history, path.rsplit(".", 1)[1]) is not False, path
        else:
            assert path == "patient.site_findings"
            assert not inputs.site_findings_known


def test_synthea_expectations_cover_thirty_bundles() -> None:
    """The table was written for all 30 shared bundles."""
    assert len(EXPECT) == 30
    assert sum(1 for e in EXPECT.values() if "antithrombotic" in e) >= 5


# --- property ---------------------------------------------------------------------------------

_RECOGNISED = sorted(
    (system, code, flag) for system, by_code in ANSWER_CODES.items()
    for code, flags in by_code.items() for flag, _ in flags if flag != "none"
)
_BASE = [PATIENT, med("x", RXNORM, "197361"), preg("o", (LOINC, "LA26683-5"), "2026-11-20")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_RECOGNISED), st.booleans(),
       st.sampled_from([ALL_NO, {}, {"needle_phobia": "none", "consent": True}]))
def test_adding_a_recognised_resource_never_moves_toward_eligible(
        coded: tuple[str, str, str], as_med: bool, answers: dict[str, Any]) -> None:
    """Monotonicity (SPEC §3) on the FHIR path: any active resource a value set recognises."""
    system, code, _ = coded
    extra = med("new", system, code) if as_med else cond("new", system, code)
    before = screen_fhir(_BASE, on=ON, answers=answers).result.decision
    after = screen_fhir([*_BASE, extra], on=ON, answers=answers).result.decision
    assert RANK[after] >= RANK[before]
