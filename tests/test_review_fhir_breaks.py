"""Regressions for the adversarial review of issue #14 (SPEC §8 (1.1)).

Each case is a minimal hand-made bundle, screened with a form that answers every history
question "no" (and pregnancy "not_pregnant" unless said otherwise): evidence the reader
cannot settle must make the answer unknown, never be dropped, and the resource that bears on
it must be named in the provenance.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import attrs
import pytest

from dryneedle.fhir import patient_from_fhir, screen_fhir
from dryneedle.findings import Decision
from dryneedle.model import History, Pregnancy, Sex

ON = date(2026, 12, 1)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PREGNANT = (LOINC, "LA15173-0")
NOT_PREGNANT = (LOINC, "LA26683-5")
BLOCKED = (Decision.ELIGIBLE, Decision.ELIGIBLE_WITH_PRECAUTIONS)


def form(**overrides: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {f.name: False for f in attrs.fields(History)}
    answers.update(needle_phobia="none", consent=True, pregnancy="not_pregnant")
    answers.update(overrides)
    return answers


def patient(gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "gender": gender, "birthDate": "1990-01-01"}


def bundle(*resources: dict[str, Any], gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (patient(gender), *resources)]}


def pregnancy_obs(*values: tuple[str, str], status: str = "final", rid: str = "preg",
                  when: str = "2026-11-25", subject: str = "Patient/p1",
                  **extra: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": status,
        "subject": {"reference": subject},
        "code": {"coding": [{"system": LOINC, "code": "82810-3"}]},
        "effectiveDateTime": when,
    }
    if values:
        obs["valueCodeableConcept"] = {"coding": [{"system": s, "code": c} for s, c in values]}
    obs.update(extra)
    return obs


def condition(system: str, code: str, *, rid: str = "cond", verification: str | None = None,
              clinical: tuple[str, ...] = ("active",), **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition", "id": rid, "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": system, "code": code}]},
        "clinicalStatus": {"coding": [{"code": c} for c in clinical]},
    }
    if verification is not None:
        res["verificationStatus"] = {"coding": [{"code": verification}]}
    res.update(extra)
    return res


def named(screening: Any, resource: str, path: str | None = None) -> bool:
    return any(p.resource == resource and p.action.value != "ignored"
               and (path is None or p.path == path)
               for p in screening.inputs.provenance)


def assert_blocked(screening: Any, resource: str, path: str | None = None) -> None:
    assert screening.result.decision not in BLOCKED, screening.result.decision
    assert named(screening, resource, path), [p.as_dict() for p in screening.inputs.provenance]


# B1: administrative gender "male" must not waive uncertain pregnancy evidence ---------------

@pytest.mark.parametrize("obs", [
    pregnancy_obs(PREGNANT, status="registered"),
    pregnancy_obs(PREGNANT, status="unknown"),
    pregnancy_obs(valueString="positive"),
    pregnancy_obs(PREGNANT, NOT_PREGNANT),
], ids=["registered", "unknown-status", "unreadable-value", "both-codings"])
@pytest.mark.parametrize("preg", ["not_pregnant", None])
def test_male_gender_does_not_waive_uncertain_pregnancy_observation(
        obs: dict[str, Any], preg: str | None) -> None:
    s = screen_fhir(bundle(obs, gender="male"), on=ON, answers=form(pregnancy=preg))
    assert_blocked(s, "Observation/preg", "patient.pregnancy")
    assert s.inputs.patient.sex is Sex.UNKNOWN
    assert s.inputs.patient.pregnancy in (None, Pregnancy.UNKNOWN)
    assert "patient.pregnancy" in s.result.missing
    sex = [p for p in s.inputs.provenance if p.path == "patient.sex"]
    assert {(p.resource, p.action.value, p.reason) for p in sex} == {
        ("Patient/p1", "superseded", "pregnancy-evidence"),
        ("Observation/preg", "used", "administrative-gender-with-pregnancy-evidence"),
    }


def test_male_gender_does_not_waive_unconfirmed_pregnancy_condition() -> None:
    cond = condition(SNOMED, "77386006", verification="unconfirmed")
    s = screen_fhir(bundle(cond, gender="male"), on=ON, answers=form())
    assert_blocked(s, "Condition/cond", "patient.pregnancy")
    assert s.inputs.patient.sex is Sex.UNKNOWN


def test_male_gender_kept_without_pregnancy_evidence() -> None:
    s = screen_fhir(bundle(gender="male"), on=ON, answers=form(pregnancy=None))
    assert s.inputs.patient.sex is Sex.MALE
    assert s.result.decision is Decision.ELIGIBLE
    # A current "not pregnant" settles it: nothing to waive.
    s = screen_fhir(bundle(pregnancy_obs(NOT_PREGNANT), gender="male"), on=ON, answers=form())
    assert s.inputs.patient.sex is Sex.MALE
    assert s.result.decision is Decision.ELIGIBLE


def test_male_gender_final_pregnant_still_not_eligible() -> None:
    s = screen_fhir(bundle(pregnancy_obs(PREGNANT), gender="male"), on=ON, answers=form())
    assert s.result.decision is Decision.NOT_ELIGIBLE


# B2: ICD-10-CM codes without the dot or in lower case find the answer tables ---------------

@pytest.mark.parametrize(("code", "path"), [
    ("Z7901", "patient.history.anticoagulant_therapy"),
    ("z79.01", "patient.history.anticoagulant_therapy"),
    ("Z331", "patient.pregnancy"),
    ("z33.1", "patient.pregnancy"),
    ("O0990", "patient.pregnancy"),
    (" o09.90", "patient.pregnancy"),
])
def test_icd10cm_code_spelling_does_not_miss_the_answer_tables(code: str, path: str) -> None:
    s = screen_fhir(bundle(condition(ICD10CM, code)), on=ON, answers=form())
    assert s.result.decision is Decision.NOT_ELIGIBLE
    assert named(s, "Condition/cond", path)


def _clinic_table(code: str) -> str:
    import json  # noqa: PLC0415

    return json.dumps({"header": {"description": "test clinic", "sources": ["policy"],
                                  "version": "1", "date": "2026-12-01", "system": ICD10CM},
                       "entries": [{"code": code, "flag": "metal_allergy",
                                    "sources": ["policy"]}]})


@pytest.mark.parametrize(("table_code", "bundle_code"), [
    ("L23.0", "L230"), ("l230", "L23.0"), ("L230", "l23.0"),
])
def test_clinic_icd10cm_table_is_normalised_too(table_code: str, bundle_code: str,
                                                tmp_path: Any) -> None:
    from dryneedle.fhir import read_code_table, read_code_table_file  # noqa: PLC0415

    f = tmp_path / "codes.json"
    f.write_text(_clinic_table(table_code), encoding="utf-8")
    hand_built = {ICD10CM: {table_code: (("metal_allergy", None),)}}
    for table in (read_code_table(_clinic_table(table_code)), read_code_table_file(f),
                  hand_built):
        s = screen_fhir(bundle(condition(ICD10CM, bundle_code)), on=ON, answers=form(),
                        codes=[table])
        assert s.inputs.patient.history.metal_allergy is True
        assert s.result.decision not in BLOCKED
        assert named(s, "Condition/cond", "patient.history.metal_allergy")


# B4: a Condition with an onset after the evaluation date is evidence, not ignored ----------

@pytest.mark.parametrize("onset", ["2026-12-05", "2026-12-02T09:00:00Z"])
@pytest.mark.parametrize(("system", "code", "path"), [
    (ICD10CM, "Z33.1", "patient.pregnancy"),
    (SNOMED, "77386006", "patient.pregnancy"),
    (ICD10CM, "Z79.01", "patient.history.anticoagulant_therapy"),
])
def test_condition_onset_after_evaluation_date_makes_the_answer_unknown(
        onset: str, system: str, code: str, path: str) -> None:
    s = screen_fhir(bundle(condition(system, code, onsetDateTime=onset)), on=ON,
                    answers=form())
    assert_blocked(s, "Condition/cond", path)
    assert any(p.resource == "Condition/cond" and p.action.value == "unread"
               and p.reason == "onset-after-evaluation-date" for p in s.inputs.provenance)


def test_condition_onset_compared_in_utc() -> None:
    # 2026-12-02T09:00+10:00 is 2026-12-01T23:00Z: on the evaluation date, so it counts.
    cond = condition(ICD10CM, "Z33.1", onsetDateTime="2026-12-02T09:00:00+10:00")
    s = screen_fhir(bundle(cond), on=ON, answers=form())
    assert s.result.decision is Decision.NOT_ELIGIBLE
    assert named(s, "Condition/cond", "patient.pregnancy")
    # Abated 2026-12-01T20:00-10:00 is 2026-12-02T06:00Z: not abated on the evaluation date.
    cond = condition(ICD10CM, "Z33.1", abatementDateTime="2026-12-01T20:00:00-10:00")
    s = screen_fhir(bundle(cond), on=ON, answers=form())
    assert s.result.decision is Decision.NOT_ELIGIBLE


# B5: without an evaluation date a "not pregnant" cannot be shown current --------------------

@pytest.mark.parametrize("when", ["2026-11-30", "2020-01-01", "2030-01-01"])
@pytest.mark.parametrize("preg", ["not_pregnant", None])
def test_not_pregnant_without_evaluation_date_is_unknown(when: str, preg: str | None) -> None:
    inputs = patient_from_fhir(bundle(pregnancy_obs(NOT_PREGNANT, when=when)),
                               answers=form(pregnancy=preg))
    assert inputs.patient.pregnancy is Pregnancy.UNKNOWN
    assert [(p.resource, p.action.value, p.reason)
            for p in inputs.provenance_for("patient.pregnancy") if p.resource != "answers"] == [
        ("Observation/preg", "unread", "no-evaluation-date")]
    # A "pregnant" one still counts without a date to check it against.
    inputs = patient_from_fhir(bundle(pregnancy_obs(PREGNANT, when=when)))
    assert inputs.patient.pregnancy is Pregnancy.PREGNANT


# B7: MedicationDispense / MedicationAdministration naming an antithrombotic ----------------

def given(kind: str, status: str, concept: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": kind, "id": "m", "status": status,
            "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": concept}


EDOXABAN_CODE = {"coding": [{"system": RXNORM, "code": "1599538"}]}
EDOXABAN_TEXT = {"text": "Edoxaban 60 mg oral tablet"}  # INN in ANTITHROMBOTIC_NAMES
ATC_WARFARIN = {"coding": [{"system": "http://www.whocc.no/atc", "code": "B01AA03"}]}


@pytest.mark.parametrize("kind", ["MedicationDispense", "MedicationAdministration"])
@pytest.mark.parametrize("status", ["completed", "stopped", "unknown", "in-progress"])
@pytest.mark.parametrize("concept", [EDOXABAN_CODE, EDOXABAN_TEXT, ATC_WARFARIN],
                         ids=["rxnorm", "inn-text", "atc"])
def test_dispense_or_administration_of_an_antithrombotic_is_not_dropped(
        kind: str, status: str, concept: dict[str, Any]) -> None:
    s = screen_fhir(bundle(given(kind, status, concept)), on=ON, answers=form())
    assert_blocked(s, f"{kind}/m", "patient.history.anticoagulant_therapy")
    assert s.inputs.patient.history.anticoagulant_therapy is not False


def test_administration_in_progress_is_current_therapy() -> None:
    s = screen_fhir(bundle(given("MedicationAdministration", "in-progress", EDOXABAN_CODE)),
                    on=ON, answers=form())
    assert s.inputs.patient.history.anticoagulant_therapy is True
    assert s.result.decision is Decision.NOT_ELIGIBLE


@pytest.mark.parametrize(("kind", "status"), [
    ("MedicationDispense", "cancelled"), ("MedicationDispense", "declined"),
    ("MedicationDispense", "entered-in-error"), ("MedicationAdministration", "not-done"),
])
def test_dispense_not_given_is_ignored(kind: str, status: str) -> None:
    s = screen_fhir(bundle(given(kind, status, EDOXABAN_CODE)), on=ON, answers=form())
    assert s.result.decision is Decision.ELIGIBLE
    assert [p.reason for p in s.inputs.provenance if p.resource == f"{kind}/m"] == [
        f"status:{status}"]


def test_dispense_for_another_patient_is_ignored() -> None:
    res = given("MedicationDispense", "completed", EDOXABAN_CODE)
    res["subject"] = {"reference": "Patient/other"}
    s = screen_fhir(bundle(res), on=ON, answers=form())
    assert s.result.decision is Decision.ELIGIBLE


# B11: a malformed subject, or contradictory Condition status codings ----------------------

@pytest.mark.parametrize("subject", ["patient/p1", "Patient/p1 ", "Patient/"])
def test_malformed_subject_makes_the_answers_unknown(subject: str) -> None:
    obs = pregnancy_obs(PREGNANT, subject=subject)
    s = screen_fhir(bundle(obs), on=ON, answers=form())
    assert_blocked(s, "Observation/preg", "patient.pregnancy")
    assert s.inputs.patient.pregnancy is Pregnancy.UNKNOWN
    med = {"resourceType": "MedicationRequest", "id": "mr", "status": "active",
           "intent": "order", "subject": {"reference": subject},
           "medicationCodeableConcept": EDOXABAN_CODE}
    s = screen_fhir(bundle(med), on=ON, answers=form())
    assert_blocked(s, "MedicationRequest/mr", "patient.history.anticoagulant_therapy")
    assert s.inputs.patient.history.anticoagulant_therapy is None
    assert {p.reason for p in s.inputs.provenance if p.resource == "MedicationRequest/mr"} == {
        "subject-unreadable"}


@pytest.mark.parametrize("subject", ["Patient/p1", "https://ehr.example/fhir/Patient/p1",
                                     "Patient/p1/_history/2"])
def test_well_formed_subject_still_counts(subject: str) -> None:
    s = screen_fhir(bundle(pregnancy_obs(PREGNANT, subject=subject)), on=ON, answers=form())
    assert s.result.decision is Decision.NOT_ELIGIBLE


@pytest.mark.parametrize("subject", ["Patient/p2", "Group/g1"])
def test_clearly_other_subject_is_still_ignored(subject: str) -> None:
    s = screen_fhir(bundle(pregnancy_obs(PREGNANT, subject=subject)), on=ON, answers=form())
    assert s.result.decision is Decision.ELIGIBLE


@pytest.mark.parametrize(("clinical", "verification"), [
    (("active", "resolved"), None),
    (("relapse", "inactive"), None),
    (("active",), "unconfirmed|refuted"),
    (("active",), "confirmed|entered-in-error"),
])
def test_contradictory_condition_status_makes_the_answers_unknown(
        clinical: tuple[str, ...], verification: str | None) -> None:
    cond = condition(ICD10CM, "Z33.1", clinical=clinical)
    if verification is not None:
        cond["verificationStatus"] = {"coding": [{"code": c} for c in verification.split("|")]}
    s = screen_fhir(bundle(cond), on=ON, answers=form())
    assert_blocked(s, "Condition/cond", "patient.pregnancy")
    assert [p.reason for p in s.inputs.provenance if p.resource == "Condition/cond"] == [
        "contradictory-status"]


def test_consistent_resolved_or_refuted_condition_is_still_ignored() -> None:
    for cond in (condition(ICD10CM, "Z33.1", clinical=("resolved",)),
                 condition(ICD10CM, "Z33.1", verification="refuted")):
        s = screen_fhir(bundle(cond), on=ON, answers=form())
        assert s.result.decision is Decision.ELIGIBLE


# B10: pregnancy_status_max_age_days is checked against the policy limit's range ------------

@pytest.mark.parametrize("days", [10**6, 281, -1, 30.5, True, "30"])
def test_pregnancy_status_max_age_outside_the_policy_range_is_refused(days: Any) -> None:
    with pytest.raises(ValueError, match="pregnancy_status_max_age_days"):
        patient_from_fhir(bundle(pregnancy_obs(NOT_PREGNANT)), on=ON,
                          pregnancy_status_max_age_days=days)


@pytest.mark.parametrize("days", [0, 30, 280])
def test_pregnancy_status_max_age_in_range_is_accepted(days: int) -> None:
    inputs = patient_from_fhir(bundle(pregnancy_obs(NOT_PREGNANT, when="2026-12-01")), on=ON,
                               pregnancy_status_max_age_days=days)
    assert inputs.patient.pregnancy is Pregnancy.NOT_PREGNANT


# An open-ended effectivePeriod is ongoing (fhir-r4, Period): an old start does not end it ----


def _period_obs(value: tuple[str, str], start: str, end: str | None = None, *,
                rid: str = "preg-period", status: str = "final") -> dict[str, Any]:
    obs = pregnancy_obs(value, rid=rid, status=status)
    del obs["effectiveDateTime"]
    obs["effectivePeriod"] = {"start": start} if end is None else {"start": start, "end": end}
    return obs


def test_an_ongoing_pregnant_status_started_long_ago_beats_a_recent_not_pregnant() -> None:
    """"Pregnant" since 40 days ago, no end: still pregnant, whatever a later test says."""
    old_start = _period_obs(PREGNANT, "2026-10-22")
    recent_no = pregnancy_obs(NOT_PREGNANT, rid="no", when="2026-11-28")
    s = screen_fhir(bundle(old_start, recent_no), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT
    assert s.result.decision not in BLOCKED
    actions = {(p.resource, p.action.value) for p in s.inputs.provenance
               if p.path == "patient.pregnancy"}
    assert ("Observation/preg-period", "used") in actions
    assert ("Observation/no", "superseded") in actions


def test_an_ongoing_pregnant_status_counts_alone() -> None:
    s = screen_fhir(bundle(_period_obs(PREGNANT, "2026-06-01")), on=ON,
                    answers=form(pregnancy=None))
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT


def test_a_closed_pregnancy_period_that_ended_long_ago_is_superseded() -> None:
    """With an end, the period applies when it ended: an old one gives way to a later "no"."""
    ended = _period_obs(PREGNANT, "2025-01-01", "2025-09-30")
    recent_no = pregnancy_obs(NOT_PREGNANT, rid="no", when="2026-11-28")
    s = screen_fhir(bundle(ended, recent_no), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.NOT_PREGNANT


def test_an_ongoing_not_pregnant_status_is_dated_by_its_start() -> None:
    """"Not pregnant" since 40 days ago proves nothing today: stale, so unknown (fail closed)."""
    s = screen_fhir(bundle(_period_obs(NOT_PREGNANT, "2026-10-22")), on=ON,
                    answers=form(pregnancy=None))
    assert s.inputs.patient.pregnancy in (None, Pregnancy.UNKNOWN)
    assert "patient.pregnancy" in s.result.missing


def test_unread_ongoing_pregnancy_evidence_overrides_a_recent_not_pregnant() -> None:
    """An ongoing status the reader cannot settle (status 'registered') could say "pregnant"."""
    unsure = _period_obs(PREGNANT, "2026-09-01", status="registered")
    recent_no = pregnancy_obs(NOT_PREGNANT, rid="no", when="2026-11-28")
    s = screen_fhir(bundle(unsure, recent_no), on=ON, answers=form())
    assert_blocked(s, "Observation/preg-period", "patient.pregnancy")
    assert s.inputs.patient.pregnancy in (None, Pregnancy.UNKNOWN)


# Review of the ongoing-period rule: every reading of a period agrees -------------------------

OLD_START = "2026-06-01"


def _recent_no() -> dict[str, Any]:
    return pregnancy_obs(NOT_PREGNANT, rid="no", when="2026-11-28")


@pytest.mark.parametrize("end", ["", 0, False, {}, []])
def test_an_empty_end_leaves_a_pregnant_period_ongoing(end: Any) -> None:
    obs = _period_obs(PREGNANT, OLD_START)
    obs["effectivePeriod"]["end"] = end
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT


@pytest.mark.parametrize("other", [
    {"effectiveDateTime": "2026-06-01"}, {"effectiveInstant": "2026-06-01T10:00:00Z"}])
def test_an_ongoing_period_beside_an_old_effective_date_still_counts(
        other: dict[str, Any]) -> None:
    """Two effective[x] (invalid FHIR): the cautious one, the ongoing period, is read."""
    obs = _period_obs(PREGNANT, "2026-11-20")
    obs.update(other)
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT


def test_a_period_ending_before_it_starts_is_undated() -> None:
    """End before start (invalid Period): undated, so "pregnant" counts as current."""
    obs = _period_obs(PREGNANT, "2026-11-29", "2026-01-01")
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT
    alone = _period_obs(NOT_PREGNANT, "2026-11-29", "2026-01-01")
    s = screen_fhir(bundle(alone), on=ON, answers=form(pregnancy=None))
    assert "patient.pregnancy" in s.result.missing


@pytest.mark.parametrize("coding", [
    {"code": "82810-3"},  # no system
    {"system": "http://example.org", "code": "82810-3"},  # another system
    {"system": LOINC, "code": "11449-6"},  # another LOINC code with a pregnant value
])
def test_unrecognised_ongoing_pregnancy_evidence_makes_a_recent_no_unknown(
        coding: dict[str, str]) -> None:
    obs = _period_obs(PREGNANT, OLD_START)
    obs["code"] = {"coding": [coding]}
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert_blocked(s, "Observation/preg-period", "patient.pregnancy")
    assert s.inputs.patient.pregnancy in (None, Pregnancy.UNKNOWN)


def test_a_pregnant_value_at_a_body_site_is_not_dropped() -> None:
    """A pregnancy value on an Observation with a body site is still pregnancy evidence."""
    obs = pregnancy_obs(PREGNANT, rid="site", when="2026-11-29")
    obs["code"] = {"coding": [{"system": LOINC, "code": "11449-6"}]}
    obs["bodySite"] = {"coding": [{"system": SNOMED, "code": "000000"}]}
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert_blocked(s, "Observation/site", "patient.pregnancy")


# Second review: dates that cannot be trusted are undated (read cautiously) --------------------


@pytest.mark.parametrize("start", ["2026-11", "2027", "2026-11-29T25:00:00Z", ""])
def test_a_period_whose_start_cannot_be_read_does_not_date_it_by_its_end(start: str) -> None:
    obs = _period_obs(PREGNANT, "x", "2026-06-01")
    obs["effectivePeriod"]["start"] = start
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT
    unsure = dict(obs, code={"coding": [{"code": "82810-3"}]})  # no system: unread evidence
    s = screen_fhir(bundle(unsure, _recent_no()), on=ON, answers=form())
    assert_blocked(s, "Observation/preg-period", "patient.pregnancy")


@pytest.mark.parametrize("other", [
    {"effectiveDateTime": "2026-06-01"}, {"effectiveInstant": "2026-06-01T00:00:00Z"}])
def test_several_effective_dates_make_an_observation_undated(other: dict[str, Any]) -> None:
    """An old date beside a closed recent period (invalid FHIR): neither is trusted."""
    obs = _period_obs(PREGNANT, "2026-11-01", "2026-11-25")
    obs.update(other)
    s = screen_fhir(bundle(obs, _recent_no()), on=ON, answers=form())
    assert s.inputs.patient.pregnancy is Pregnancy.PREGNANT
    no = _period_obs(NOT_PREGNANT, "2026-11-01", "2026-11-25", rid="no2")
    no.update(other)  # an undated "not pregnant" does not count: unknown
    s = screen_fhir(bundle(no), on=ON, answers=form(pregnancy=None))
    assert "patient.pregnancy" in s.result.missing
