"""FHIR R4 in and out, and CDS Hooks cards (SPEC §8, ``dryneedle.fhir``).

Inputs are the bundles of ``tests/data/fhir/`` (their expectations and sources in
``cases.json``). Every resource dryneedle emits is parsed and validated by an independent
implementation, the ``fhir.resources`` package (R4B models, FHIR 4.3.0: for Procedure,
DetectedIssue and OperationOutcome the elements we emit are the same as in R4 4.0.1), and must
survive its round trip unchanged. ``fhir.resources`` checks structure, types, cardinality,
choice types and primitive formats but not value-set bindings, so the required bindings of the
codes we emit are checked here against the R4 value sets. CDS Hooks cards are checked against
the CDS Hooks 2.0 card attributes.
"""

from __future__ import annotations

import argparse
import doctest
import json
import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dryneedle.cli import UsageError
from dryneedle.cli._fhir import register
from dryneedle.fhir import (
    ATC,
    CPT,
    EXT_BODY_SIDE,
    EXT_INSERTION,
    FLAG_CODES,
    ICD10CM,
    LOINC,
    SYSTEMS,
    Action,
    FhirInputError,
    cds_cards,
    cds_response,
    detected_issues,
    operation_outcome,
    patient_from_fhir,
    planned_sites_from_fhir,
    procedure,
    rank,
    screen_fhir,
)
from dryneedle.findings import DECISION_ORDER, Decision, Finding, Severity
from dryneedle.model import (
    AdverseEvent,
    AdverseEventKind,
    History,
    Insertion,
    Manipulation,
    NeedlePhobia,
    Patient,
    Practitioner,
    Pregnancy,
    Session,
    Sex,
    Side,
    Technique,
)
from dryneedle.records import converter, structure_record
from dryneedle.screening import screen
from dryneedle.sources import SOURCES
from dryneedle.strategies import patients, sessions

fhir_resources = pytest.importorskip("fhir.resources")
from fhir.resources.R4B.bundle import Bundle  # noqa: E402
from fhir.resources.R4B.detectedissue import DetectedIssue  # noqa: E402
from fhir.resources.R4B.operationoutcome import OperationOutcome  # noqa: E402
from fhir.resources.R4B.procedure import Procedure  # noqa: E402

DATA = Path(__file__).parent / "data" / "fhir"
ROOT = Path(__file__).parent.parent
CASES = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))
ON = date.fromisoformat(CASES["on"])


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


# --- independent validation -------------------------------------------------------------------

MODELS: dict[str, Any] = {"Procedure": Procedure, "DetectedIssue": DetectedIssue,
          "OperationOutcome": OperationOutcome, "Bundle": Bundle}

# Required bindings of the elements we emit (FHIR R4 4.0.1 value sets).
PROCEDURE_STATUS = {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
                    "entered-in-error", "unknown"}
OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                      "entered-in-error", "unknown"}
DETECTED_ISSUE_SEVERITY = {"high", "moderate", "low"}
ISSUE_SEVERITY = {"fatal", "error", "warning", "information"}
ISSUE_TYPE = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-lost", "no-store",
    "exception", "timeout", "incomplete", "throttled", "informational",
}
SIMPLE_FHIRPATH = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?)*")


def _extensions_ok(node: Any) -> None:
    """ext-1: an extension has a value[x] or nested extensions, not both and not neither."""
    if isinstance(node, dict):
        for ext in node.get("extension", []) if isinstance(node.get("extension"), list) else []:
            values = [k for k in ext if k.startswith("value")]
            assert ("extension" in ext) != bool(values), ext
            assert len(values) <= 1
        for v in node.values():
            _extensions_ok(v)
    elif isinstance(node, list):
        for v in node:
            _extensions_ok(v)


def validate(resource: dict[str, Any]) -> None:
    """Validate an emitted resource with fhir.resources (R4B) plus the R4 bindings we emit."""
    model = MODELS[resource["resourceType"]].model_validate(resource)
    assert json.loads(model.model_dump_json(exclude_none=True)) == resource  # lossless
    _extensions_ok(resource)
    kind = resource["resourceType"]
    if kind == "Procedure":
        assert resource["status"] in PROCEDURE_STATUS
    elif kind == "DetectedIssue":
        assert resource["status"] in OBSERVATION_STATUS
        assert resource["severity"] in DETECTED_ISSUE_SEVERITY
    elif kind == "OperationOutcome":
        assert resource["issue"], "OperationOutcome.issue is 1..*"
        for issue in resource["issue"]:
            assert issue["severity"] in ISSUE_SEVERITY
            assert issue["code"] in ISSUE_TYPE
            assert "location" not in issue  # deprecated: expression only
            for expr in issue.get("expression", []):
                assert SIMPLE_FHIRPATH.fullmatch(expr), expr


CARD_KEYS = {"uuid", "summary", "detail", "indicator", "source", "suggestions",
             "selectionBehavior", "overrideReasons", "links", "extension"}


def check_card(card: dict[str, Any]) -> None:
    """Check a card against the CDS Hooks 2.0 card attributes."""
    assert set(card) <= CARD_KEYS
    assert isinstance(card["summary"], str)
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] in {"info", "warning", "critical"}
    assert isinstance(card["source"]["label"], str)
    assert card["source"]["label"]
    assert card["source"].get("url", "https://").startswith("https://")
    topic = card["source"].get("topic")
    if topic is not None:
        assert topic["system"]
        assert topic["code"]
    assert isinstance(card.get("detail", ""), str)
    uuid.UUID(card["uuid"])
    for reason in card.get("overrideReasons", []):
        assert reason["display"]
        assert reason["code"]
        assert reason["system"]
    if "suggestions" in card:
        assert card["selectionBehavior"] in {"at-most-one", "any"}


# --- input vectors ----------------------------------------------------------------------------


BUNDLES = sorted(p.name for p in DATA.glob("*.json") if p.name != "cases.json")


@pytest.mark.parametrize("name", BUNDLES)
def test_input_bundles_are_valid_fhir(name: str) -> None:
    """The test bundles are themselves valid FHIR (R4B models), i.e. realistic inputs."""
    Bundle.model_validate(load(name))


def test_every_case_cites_known_sources() -> None:
    """Each input vector names its sources, all of them in the registry."""
    for case in CASES["cases"]:
        assert case["sources"]
        assert set(case["sources"]) <= set(SOURCES), case["file"]


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["file"] for c in CASES["cases"]])
def test_case_vectors(case: dict[str, Any]) -> None:
    """Each bundle maps to the expected answers, decision, evidence, conflicts and ignores."""
    screening = screen_fhir(load(case["file"]), on=ON, patient_id=case.get("patient_id"))
    inputs = screening.inputs
    got = converter.unstructure(inputs.patient)
    want = case["patient"]
    for key in ("patient_id", "birth_date", "sex", "pregnancy", "conditions"):
        assert got[key] == want[key], key
    expected_history = dict.fromkeys(got["history"]) | want["history"]
    assert got["history"] == expected_history
    assert screening.result.decision.value == case["decision"]
    for path, resources in case["evidence"].items():
        assert list(inputs.evidence_for(path)) == resources, path
    for path, resources in case.get("conflicts", {}).items():
        conflicting = [p.resource for p in inputs.provenance_for(path)
                       if p.action is Action.CONFLICT]
        assert conflicting == resources
    ignored = {p.resource: p.reason for p in inputs.ignored if p.path == ""}
    assert ignored == case["ignored"]


def test_absent_data_is_unknown_never_false() -> None:
    """A bundle with only demographics leaves every answer unknown, and names them missing."""
    inputs = patient_from_fhir(load("missing.json"))
    assert all(v is None for v in converter.unstructure(inputs.patient.history).values())
    result = screen(inputs.patient, on=ON)
    assert result.decision is Decision.NEEDS_REVIEW
    assert "patient.pregnancy" in result.missing
    assert "patient.history.anticoagulant_therapy" in result.missing


def _all_resources() -> list[dict[str, Any]]:
    out = []
    for name in ("realistic.json", "contradictory.json", "undated.json", "inactive.json"):
        for entry in load(name)["entry"]:
            res = json.loads(json.dumps(entry["resource"]))
            if res["resourceType"] == "Patient":
                continue
            for key in ("subject", "patient"):
                if key in res:
                    res[key] = {"reference": "Patient/p-x"}
            out.append(res)
    return out


POOL = _all_resources()
PATIENT_X = {"resourceType": "Patient", "id": "p-x", "gender": "female",
             "birthDate": "1980-05-01"}


@given(st.lists(st.sampled_from(POOL), max_size=12))
def test_fhir_data_never_sets_false(resources: list[dict[str, Any]]) -> None:
    """Whatever resources arrive, FHIR data never turns a history answer to False."""
    inputs = patient_from_fhir([PATIENT_X, *resources])
    for name, value in converter.unstructure(inputs.patient.history).items():
        assert value is not False, name


ANSWER_NAMES = [a for a in converter.unstructure(History()) if a not in ("needle_phobia",
                                                                          "consent")]


@given(
    resources=st.lists(st.sampled_from(POOL), max_size=12),
    flags=st.fixed_dictionaries({n: st.booleans() for n in ANSWER_NAMES}),
    pregnancy=st.sampled_from(list(Pregnancy)),
    phobia=st.sampled_from(list(NeedlePhobia)),
)
def test_fhir_data_only_adds_caution(
    resources: list[dict[str, Any]], flags: dict[str, bool], pregnancy: Pregnancy,
    phobia: NeedlePhobia,
) -> None:
    """With complete form answers, adding FHIR data never moves the decision towards eligible."""
    answers: dict[str, Any] = {**flags, "pregnancy": pregnancy.value,
                               "needle_phobia": phobia.value, "consent": True}
    alone = patient_from_fhir([PATIENT_X], answers=answers)
    merged = patient_from_fhir([PATIENT_X, *resources], answers=answers)
    before = screen(alone.patient, on=ON).decision
    after = screen(merged.patient, on=ON).decision
    assert DECISION_ORDER[after] >= DECISION_ORDER[before]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["resourceType", "id", "status", "code", "coding",
                                       "system", "subject", "entry", "resource", "reference",
                                       "valueCodeableConcept", "clinicalStatus",
                                       "effectiveDateTime", "birthDate", "gender"]),
                      children, max_size=5),
    max_leaves=20,
)
RESOURCE_TYPES = st.sampled_from(["Patient", "Observation", "Condition", "AllergyIntolerance",
                                  "MedicationStatement", "MedicationRequest", "Bundle",
                                  "Medication", "Practitioner"])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(JSON, st.builds(lambda t, body: {**(body if isinstance(body, dict)
                                                               else {}), "resourceType": t},
                                          RESOURCE_TYPES, JSON)), max_size=6))
def test_junk_never_raises(junk: list[Any]) -> None:
    """Malformed resources are ignored and recorded, never raised (with a known patient)."""
    inputs = patient_from_fhir(junk, patient_id="p-1")
    assert inputs.patient.patient_id == "p-1"
    screen(inputs.patient, on=ON)


# --- mapping details --------------------------------------------------------------------------


def _obs(oid: str, answer: str, when: str | None = None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "82810-3"}]},
        "subject": {"reference": "Patient/p-x"},
        "valueCodeableConcept": {"coding": [{"system": LOINC, "code": answer}]},
    }
    if when:
        obs["effectiveDateTime"] = when
    return obs


def test_pregnancy_answer_codes() -> None:
    """LA15173-0 / LA26683-5 / LA4489-6 map to pregnant / not pregnant / unknown."""
    for code, value in (("LA15173-0", Pregnancy.PREGNANT), ("LA26683-5", Pregnancy.NOT_PREGNANT),
                        ("LA4489-6", Pregnancy.UNKNOWN)):
        inputs = patient_from_fhir([PATIENT_X, _obs("o", code, "2026-01-01")],
                                   on=date(2026, 1, 1))
        assert inputs.patient.pregnancy is value


def test_pregnancy_most_recent_instant_wins() -> None:
    """Same day, different times: the later instant wins (time zones respected) between
    statuses other than a current "pregnant" (which always counts, see below)."""
    early = _obs("early", "LA4489-6", "2026-05-01T09:00:00+02:00")  # 07:00 UTC, unknown
    late = _obs("late", "LA26683-5", "2026-05-01T08:00:00Z")
    inputs = patient_from_fhir([PATIENT_X, late, early], on=date(2026, 5, 1))
    assert inputs.patient.pregnancy is Pregnancy.NOT_PREGNANT
    assert inputs.evidence_for("patient.pregnancy") == ("Observation/late",)
    superseded = [p for p in inputs.provenance_for("patient.pregnancy")
                  if p.action is Action.SUPERSEDED]
    assert [p.resource for p in superseded] == ["Observation/early"]
    reverse = patient_from_fhir([PATIENT_X, _obs("late", "LA4489-6", "2026-05-01T08:00:00Z"),
                                 _obs("early", "LA26683-5", "2026-05-01T09:00:00+02:00")],
                                on=date(2026, 5, 1))
    assert reverse.patient.pregnancy is Pregnancy.UNKNOWN


def test_an_earlier_pregnant_status_is_not_superseded_by_a_later_not_pregnant() -> None:
    """SPEC 1.1 §8: any current "pregnant" status counts, in any date order (the cautious
    reading); the "not pregnant" one is named as superseded by it."""
    early = _obs("early", "LA15173-0", "2026-05-01T09:00:00+02:00")
    late = _obs("late", "LA26683-5", "2026-05-01T08:00:00Z")
    inputs = patient_from_fhir([PATIENT_X, late, early], on=date(2026, 5, 1))
    assert inputs.patient.pregnancy is Pregnancy.PREGNANT
    assert inputs.evidence_for("patient.pregnancy") == ("Observation/early",)
    assert [(p.resource, p.action, p.reason) for p in inputs.provenance_for("patient.pregnancy")
            if p.action is not Action.USED] == [
        ("Observation/late", Action.SUPERSEDED, "current-pregnant-status")]


def test_pregnancy_preliminary_and_unknown_values() -> None:
    """SPEC 1.1 §8: a preliminary "pregnant" counts; an unreadable value is unread evidence
    (the status is unknown), a preliminary "not pregnant" too: never silently dropped."""
    prelim = _obs("prelim", "LA15173-0", "2026-05-01") | {"status": "preliminary"}
    assert patient_from_fhir([PATIENT_X, prelim]).patient.pregnancy is Pregnancy.PREGNANT
    absent = _obs("absent", "LA15173-0", "2026-05-01")
    del absent["valueCodeableConcept"]
    prelim_no = _obs("prelim-no", "LA26683-5", "2026-05-01") | {"status": "preliminary"}
    inputs = patient_from_fhir([PATIENT_X, prelim_no, absent],
                               answers={"pregnancy": "not_pregnant"})
    assert inputs.patient.pregnancy is Pregnancy.UNKNOWN
    reasons = {p.resource: p.reason for p in inputs.provenance if p.action is Action.UNREAD}
    assert reasons == {"Observation/prelim-no": "status:preliminary",
                       "Observation/absent": "unmapped-value"}


def test_form_answers_merge_cautiously() -> None:
    """A FHIR True overrides a form False (superseded); a pregnant observation a form 'no'."""
    med = next(r for r in POOL if r.get("id") == "ms-antiplatelet")
    preg = _obs("o", "LA15173-0", "2026-01-01")
    inputs = patient_from_fhir(
        [PATIENT_X, med, preg],
        answers={"anticoagulant_therapy": False, "pregnancy": "not_pregnant", "epilepsy": False},
    )
    assert inputs.patient.history.anticoagulant_therapy is True
    assert inputs.patient.history.epilepsy is False
    assert inputs.patient.pregnancy is Pregnancy.PREGNANT
    form = [p for p in inputs.provenance if p.resource == "answers"]
    assert {(p.path, p.action) for p in form} == {
        ("patient.history.anticoagulant_therapy", Action.SUPERSEDED),
        ("patient.history.epilepsy", Action.USED),
        ("patient.pregnancy", Action.SUPERSEDED),
    }


def test_form_pregnancy_more_cautious_than_fhir_wins() -> None:
    """A form 'pregnant' beats an observed 'not pregnant', which is then superseded."""
    inputs = patient_from_fhir([PATIENT_X, _obs("o", "LA26683-5", "2026-01-01")],
                               answers={"pregnancy": "pregnant"}, on=date(2026, 1, 1))
    assert inputs.patient.pregnancy is Pregnancy.PREGNANT
    obs = inputs.provenance_for("patient.pregnancy")[0]
    assert (obs.resource, obs.action, obs.reason) == (
        "Observation/o", Action.SUPERSEDED, "more-cautious-answer")


def test_complete_answers_give_a_decision() -> None:
    """FHIR data plus the clinic's form answers can reach a decision other than review."""
    answers: dict[str, bool | str | None] = {"needle_phobia": "none", "consent": True}
    answers.update(dict.fromkeys(ANSWER_NAMES, False))
    bundle = load("realistic.json")
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"]["resourceType"] not in ("MedicationStatement",
                                                                "AllergyIntolerance")]
    screening = screen_fhir(bundle, on=ON, answers=answers)
    assert screening.result.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS
    assert [f.code for f in screening.result.findings] == ["screening.diabetes"]


def test_bad_answers_and_tables_raise() -> None:
    """Programming errors (unknown answer names, bad values, unknown flags) raise."""
    with pytest.raises(FhirInputError, match="unknown answer"):
        patient_from_fhir([PATIENT_X], answers={"bleeding": True})
    with pytest.raises(FhirInputError, match="invalid value"):
        patient_from_fhir([PATIENT_X], answers={"diabetes": "yes"})
    with pytest.raises(FhirInputError, match="invalid value"):
        patient_from_fhir([PATIENT_X], answers={"pregnancy": "maybe"})
    with pytest.raises(FhirInputError, match="flag_codes"):
        patient_from_fhir([PATIENT_X], flag_codes={"consent": {ICD10CM: ("Z00",)}})


def test_patient_identity() -> None:
    """One patient is required: several raise, none raise, patient_id selects one."""
    other = {"resourceType": "Patient", "id": "p-y", "gender": "male"}
    with pytest.raises(FhirInputError, match="several patients"):
        patient_from_fhir([PATIENT_X, other])
    with pytest.raises(FhirInputError, match="no Patient"):
        patient_from_fhir([])
    inputs = patient_from_fhir([PATIENT_X, other], patient_id="p-y")
    assert inputs.patient.sex is Sex.MALE
    assert [p.reason for p in inputs.ignored] == ["other-patient"]
    cond_only = [{"resourceType": "Condition", "subject": {"reference": "Patient/p-z"},
                  "code": {"coding": [{"system": ICD10CM, "code": "G40"}]}}]
    assert patient_from_fhir(cond_only).patient.patient_id == "p-z"


def test_gender_maps_one_to_one() -> None:
    """FHIR administrative gender maps 1:1 to Sex; an unknown value stays unknown."""
    for gender in ("male", "female", "other", "unknown"):
        p = patient_from_fhir([PATIENT_X | {"gender": gender}]).patient
        assert p.sex is Sex(gender)
    inputs = patient_from_fhir([PATIENT_X | {"gender": "F"}])
    assert inputs.patient.sex is None
    assert inputs.provenance_for("patient.sex")[0].action is Action.IGNORED


def test_custom_flag_codes_and_allergy_terms() -> None:
    """Integrators pass their own code table and allergy words (clinic policy)."""
    local = "urn:example:clinic-local-codes"
    cond = {"resourceType": "Condition", "subject": {"reference": "Patient/p-x"},
            "code": {"coding": [{"system": local, "code": "VASC-1"}]}}
    allergy = {"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p-x"},
               "code": {"text": "Acupuncture needles"}}  # a clinic's own wording
    inputs = patient_from_fhir(
        [PATIENT_X, cond, allergy],
        flag_codes={**FLAG_CODES, "vascular_disease": {local: ("VASC",)}},
        allergy_terms=("acupuncture needles",),
    )
    assert inputs.patient.history.vascular_disease is True
    assert inputs.patient.history.metal_allergy is True
    assert inputs.provenance_for("patient.history.vascular_disease")[0].sources == ("policy",)
    default = patient_from_fhir([PATIENT_X, cond, allergy])
    assert default.patient.history.vascular_disease is None
    assert default.patient.history.metal_allergy is None


@pytest.mark.parametrize(("code", "flag"), [
    ("D65", "bleeding_disorder"), ("D69.6", "bleeding_disorder"), ("D84.9", "immunocompromised"),
    ("E08.00", "diabetes"), ("E13", "diabetes"), ("G40.909", "epilepsy"), ("G40", "epilepsy"),
])
def test_flag_code_ranges(code: str, flag: str) -> None:
    """Codes inside the policy block ranges set their flag (prefix and range matching)."""
    cond = {"resourceType": "Condition", "subject": {"reference": "Patient/p-x"},
            "code": {"coding": [{"system": ICD10CM, "code": code}]}}
    history = patient_from_fhir([PATIENT_X, cond]).patient.history
    assert getattr(history, flag) is True


def test_empty_patterns_match_nothing() -> None:
    """A blank pattern in a clinic's table matches no code (it never flags everything)."""
    cond = {"resourceType": "Condition", "subject": {"reference": "Patient/p-x"},
            "code": {"coding": [{"system": ICD10CM, "code": "M79.18"}]}}
    inputs = patient_from_fhir([PATIENT_X, cond], flag_codes={"diabetes": {ICD10CM: ("", "-")}})
    assert inputs.patient.history.diabetes is None


@pytest.mark.parametrize("code", ["D64", "D70", "D85", "E07", "E14", "G41", "M79.18"])
def test_codes_outside_ranges_set_nothing(code: str) -> None:
    """Codes just outside the policy block ranges set no flag."""
    cond = {"resourceType": "Condition", "subject": {"reference": "Patient/p-x"},
            "code": {"coding": [{"system": ICD10CM, "code": code}]}}
    history = patient_from_fhir([PATIENT_X, cond]).patient.history
    assert all(v is None for v in converter.unstructure(history).values())


def test_atc_only_under_b01a() -> None:
    """Only ATC codes under B01A count as antithrombotic; other codes are ignored."""
    def med(code: str) -> dict[str, Any]:
        return {"resourceType": "MedicationStatement", "status": "active",
                "subject": {"reference": "Patient/p-x"},
                "medicationCodeableConcept": {"coding": [{"system": ATC, "code": code}]}}
    assert patient_from_fhir([PATIENT_X, med("B01AE")]).patient.history.anticoagulant_therapy
    inputs = patient_from_fhir([PATIENT_X, med("B01B")],
                               answers={"anticoagulant_therapy": False})
    # SPEC 1.1 §8: an active medication nothing classifies is unread evidence, never "no".
    assert inputs.patient.history.anticoagulant_therapy is None
    (unread,) = [p for p in inputs.provenance if p.action is Action.UNREAD]
    assert (unread.path, unread.reason) == ("patient.history.anticoagulant_therapy",
                                            "unclassified-medication")
    assert inputs.unclassified_medications == ("MedicationStatement[1] (http://www.whocc.no/atc|B01B)",)


def test_planned_sites_from_orders() -> None:
    """Draft orders coded with our muscle system become planned sites, with their side."""
    session = Session(session_id="s-1", date=ON, number=1,
                      practitioner=Practitioner(practitioner_id="pt-1"),
                      insertions=(_ins("psoas", Side.LEFT),))
    sites = planned_sites_from_fhir(procedure(session, patient_id="p-x"))
    assert [(s.muscle, s.side) for s in sites] == [("psoas", Side.LEFT)]


# --- Procedure --------------------------------------------------------------------------------


def _ins(muscle: str, side: Side = Side.LEFT) -> Insertion:
    return Insertion(muscle=muscle, side=side, technique=Technique.SUPERFICIAL, depth_mm=8.0,
                     manipulation=Manipulation.STATIC, dwell_s=300.0)


def _session(*ins: Insertion, when: date = ON) -> Session:
    return Session(session_id="s-9", date=when, number=2,
                   practitioner=Practitioner(practitioner_id="pt-1"), insertions=ins)


def test_procedure_from_spec_example_validates() -> None:
    """The record of SPEC §6 becomes a valid Procedure with CPT 20560 and one bodySite."""
    record = structure_record(json.loads((ROOT / "tests" / "data" / "spec_example.json")
                                         .read_text(encoding="utf-8")))
    proc = procedure(record.session, patient_id=record.patient.patient_id)
    validate(proc)
    assert proc["status"] == "completed"
    assert proc["subject"] == {"reference": "Patient/p-001"}
    assert proc["performedDateTime"] == "2026-11-20"
    assert proc["code"]["coding"] == [{"system": CPT, "code": "20560"}]
    assert [s["text"] for s in proc["bodySite"]] == ["Upper trapezius, right"]
    assert proc["bodySite"][0]["extension"] == [{"url": EXT_BODY_SIDE, "valueCode": "right"}]
    (ext,) = proc["extension"]
    assert ext["url"] == EXT_INSERTION
    parts = {e["url"]: e for e in ext["extension"]}
    assert parts["depth"]["valueQuantity"]["value"] == 15.0
    assert parts["technique"]["valueCode"] == "deep"
    assert parts["manipulation"]["valueCode"] == "pistoning"
    assert "p-001" not in proc["note"][0]["text"]


@pytest.mark.parametrize(("muscles", "cpt"), [
    (["deltoid"], "20560"),
    (["deltoid", "deltoid", "infraspinatus"], "20560"),
    (["deltoid", "infraspinatus", "masseter"], "20561"),
])
def test_cpt_by_distinct_muscles(muscles: list[str], cpt: str) -> None:
    """CPT 20560 for one or two distinct muscles, 20561 for three or more (apta-cpt-2020)."""
    proc = procedure(_session(*(_ins(m) for m in muscles)), patient_id="p-1")
    validate(proc)
    assert proc["code"]["coding"][0]["code"] == cpt


def test_cpt_sides_counted_once_by_default() -> None:
    """Left and right of one muscle are one muscle unless the clinic counts sides."""
    s = _session(_ins("deltoid", Side.LEFT), _ins("deltoid", Side.RIGHT), _ins("masseter"))
    default = procedure(s, patient_id="p-1")
    sides = procedure(s, patient_id="p-1", count_sides_separately=True)
    assert default["code"]["coding"][0]["code"] == "20560"
    assert sides["code"]["coding"][0]["code"] == "20561"
    assert len(default["bodySite"]) == 3


def test_no_cpt_before_2020_and_not_done_without_insertions() -> None:
    """CPT 20560/20561 start on 2020-01-01; a session without insertions is not-done."""
    old = procedure(_session(_ins("deltoid"), when=date(2019, 12, 31)), patient_id="p-1")
    validate(old)
    assert "coding" not in old["code"]
    empty = procedure(_session(), patient_id="p-1")
    validate(empty)
    assert empty["status"] == "not-done"
    assert "bodySite" not in empty


def test_non_fhir_patient_id_uses_identifier_reference() -> None:
    """An id that is not a FHIR id becomes a logical (identifier) reference."""
    proc = procedure(_session(_ins("deltoid")), patient_id="patient 1/b")
    validate(proc)
    assert proc["subject"]["identifier"]["value"] == "patient 1/b"


@given(sessions())
def test_every_procedure_validates(session: Session) -> None:
    """Every structurally valid session gives a valid R4 Procedure with the right CPT code."""
    proc = procedure(session, patient_id="p-123")
    validate(proc)
    muscles = {i.muscle for i in session.insertions}
    if muscles and session.date >= date(2020, 1, 1):
        assert proc["code"]["coding"][0]["code"] == ("20560" if len(muscles) <= 2 else "20561")
    assert len(proc.get("extension", [])) == len(session.insertions)


def test_adverse_events_become_complications() -> None:
    """Adverse events are listed as complications (our adverse-event code system)."""
    s = _session(_ins("deltoid"))
    s = Session(session_id=s.session_id, date=s.date, number=s.number,
                practitioner=s.practitioner, insertions=s.insertions,
                adverse_events=(AdverseEvent(kind=AdverseEventKind.PAIN_AFTER),))
    proc = procedure(s, patient_id="p-1")
    validate(proc)
    assert proc["complication"][0]["coding"][0]["code"] == "pain_after"


# --- OperationOutcome -------------------------------------------------------------------------


FINDINGS = st.builds(
    Finding,
    code=st.sampled_from(["structure.missing", "structure.enum", "structure.json",
                          "screening.pregnancy", "protocol.depth", "series.order",
                          "unknown.thing"]),
    severity=st.sampled_from(list(Severity)),
    path=st.sampled_from(["", "session.insertions[0].depth_mm", "patient.history.diabetes",
                          "session", "weird path!"]),
    message=st.text(min_size=1, max_size=30).filter(str.strip),
    sources=st.lists(st.sampled_from(["seed", "za-bn121"]), max_size=2, unique=True).map(tuple),
)


@given(st.lists(FINDINGS, max_size=6))
def test_every_operation_outcome_validates(findings: list[Finding]) -> None:
    """Any findings give a valid OperationOutcome, one issue per finding (or one info)."""
    oo = operation_outcome(findings)
    validate(oo)
    assert len(oo["issue"]) == max(1, len(findings))


def test_operation_outcome_mapping() -> None:
    """Severity and issue type follow the documented tables; the path is the expression."""
    findings = [
        Finding(code="structure.missing", severity=Severity.ERROR, path="session.date",
                message="required field is missing"),
        Finding(code="screening.diabetes", severity=Severity.WARNING,
                path="patient.history.diabetes", message="diabetes reported",
                sources=("za-bn121",)),
        Finding(code="protocol.guide_tube", severity=Severity.INFO, path="", message="note"),
        Finding(code="structure.type", severity=Severity.ERROR, path="bad path",
                message="x"),
    ]
    issues = operation_outcome(findings)["issue"]
    assert [(i["severity"], i["code"]) for i in issues] == [
        ("error", "required"), ("warning", "business-rule"), ("information", "business-rule"),
        ("error", "structure")]
    assert issues[0]["expression"] == ["session.date"]
    assert issues[1]["details"]["coding"] == [{"system": SYSTEMS["rule"],
                                               "code": "screening.diabetes"}]
    assert issues[1]["details"]["text"] == "diabetes reported"
    assert issues[1]["diagnostics"] == "sources: za-bn121"
    assert "expression" not in issues[2]
    assert "expression" not in issues[3]
    assert issues[3]["diagnostics"] == "path: bad path"
    empty = operation_outcome([])
    validate(empty)
    assert empty["issue"][0]["code"] == "informational"


# --- DetectedIssue ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["file"] for c in CASES["cases"]])
def test_detected_issues_validate(case: dict[str, Any]) -> None:
    """Every DetectedIssue of every vector validates; evidence points at the source resources."""
    screening = screen_fhir(load(case["file"]), on=ON, patient_id=case.get("patient_id"))
    issues = screening.detected_issues()
    for issue in issues:
        validate(issue)
    codes = [i["code"]["coding"][0]["code"] for i in issues]
    assert "screening.unknown_answer" not in codes
    by_code = {i["code"]["coding"][0]["code"]: i for i in issues}
    if "screening.anticoagulant_therapy" in by_code:
        issue = by_code["screening.anticoagulant_therapy"]
        assert issue["severity"] == "high"
        refs = [d["reference"] for d in issue["evidence"][0]["detail"]]
        assert refs == case["evidence"]["patient.history.anticoagulant_therapy"]
        assert issue["reference"].startswith("https://")
        assert issue["patient"] == {"reference": f"Patient/{case['patient']['patient_id']}"}


def test_detected_issue_severity_for_precaution() -> None:
    """A precaution is a moderate issue; the source ids are carried as extensions."""
    patient = Patient(patient_id="p-1", birth_date=date(1980, 1, 1), sex=Sex.MALE,
                      history=History(diabetes=True))
    (issue,) = detected_issues(screen(patient, on=ON), patient_id="p-1")
    validate(issue)
    assert issue["severity"] == "moderate"
    assert [e["valueCode"] for e in issue["extension"]] == ["za-bn121"]
    assert "evidence" not in issue


# --- CDS Hooks cards --------------------------------------------------------------------------

KNOWN = dict.fromkeys(ANSWER_NAMES, False)


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["file"] for c in CASES["cases"]])
def test_cards_of_every_vector(case: dict[str, Any]) -> None:
    """Each vector gives one valid card naming every finding code, path and source."""
    screening = screen_fhir(load(case["file"]), on=ON, patient_id=case.get("patient_id"))
    (card,) = screening.cards()
    check_card(card)
    for f in screening.result.findings:
        assert f"`{f.code}`" in card["detail"]
        assert f"`{f.path}`" in card["detail"]
        for source in f.sources:
            assert f"`{source}`" in card["detail"]
    assert case["patient"]["patient_id"] not in json.dumps(card)  # no identifiers


def test_card_indicators_and_summaries() -> None:
    """critical for not eligible, warning for review / precautions, no card for plain eligible."""
    base = Patient(patient_id="p-1", birth_date=date(1980, 1, 1), sex=Sex.MALE,
                   history=History(**KNOWN, needle_phobia=NeedlePhobia.NONE, consent=True))
    eligible = screen(base, on=ON)
    assert eligible.decision is Decision.ELIGIBLE
    assert cds_cards(eligible) == []
    assert cds_response(eligible) == {"cards": []}
    (info,) = cds_cards(eligible, always=True)
    check_card(info)
    assert info["indicator"] == "info"
    assert info["summary"] == "Dry needling: eligible"

    diabetic = screen(Patient(patient_id="p-1", birth_date=date(1980, 1, 1), sex=Sex.MALE,
                              history=History(**KNOWN | {"diabetes": True},
                                              needle_phobia=NeedlePhobia.NONE, consent=True)),
                      on=ON)
    (card,) = cds_cards(diabetic)
    assert card["indicator"] == "warning"
    assert card["summary"] == "Dry needling: eligible with precautions (diabetes)"

    unknown = screen(Patient(patient_id="p-1", sex=Sex.MALE), on=ON)
    (card,) = cds_cards(unknown)
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Dry needling: needs review, 13 answers unknown")


@given(patients())
def test_every_card_is_valid(patient: Patient) -> None:
    """Any patient's card is valid CDS Hooks: summary < 140 characters, displays present."""
    sites = [("psoas", "left"), ("upper_trapezius", "right"), ("deltoid", "left")]
    result = screen(patient, on=ON, sites=sites)
    for card in cds_cards(result, always=True):
        check_card(card)
        assert card["indicator"] == {"not_eligible": "critical", "eligible": "info"}.get(
            result.decision.value, "warning")


def test_card_uuid_is_deterministic() -> None:
    """Same input, same card (byte for byte); the uuid seed makes hook calls distinct."""
    first = screen_fhir(load("realistic.json"), on=ON).cards()
    again = screen_fhir(load("realistic.json"), on=ON).cards()
    assert json.dumps(first) == json.dumps(again)
    seeded = screen_fhir(load("realistic.json"), on=ON).cards(uuid_seed="hook-1")
    assert seeded[0]["uuid"] != first[0]["uuid"]
    assert {k: v for k, v in seeded[0].items() if k != "uuid"} == {
        k: v for k, v in first[0].items() if k != "uuid"}


def test_card_detail_traces_inputs() -> None:
    """The detail names the resources behind each answer and the unusable ones."""
    (card,) = screen_fhir(load("contradictory.json"), on=ON).cards()
    detail = card["detail"]
    assert "MedicationStatement/ms-1 (`http://www.whocc.no/atc|B01AB`)" in detail
    assert "From: Observation/preg-a (`http://loinc.org|LA15173-0`)" in detail
    assert 'Observation/preg-b "not_pregnant" (current-pregnant-status)' in detail
    assert "Patient/p-003" not in detail
    same_day = [_obs("preg-u", "LA4489-6", "2026-11-20"), _obs("preg-n", "LA26683-5", "2026-11-20")]
    (card,) = screen_fhir([PATIENT_X, *same_day], on=ON).cards()
    detail = card["detail"]
    assert "Observation/preg-u (conflicting-pregnancy-status)" in detail
    assert "conflicting data left unknown: `patient.pregnancy`" in detail


def test_summary_truncates_below_140() -> None:
    """Many reasons are shortened with a count, never beyond 139 characters."""
    history = History(**dict.fromkeys(ANSWER_NAMES, True), needle_phobia=NeedlePhobia.SEVERE,
                      consent=False)
    result = screen(Patient(patient_id="p-1", birth_date=date(2020, 1, 1), sex=Sex.FEMALE,
                            pregnancy=Pregnancy.PREGNANT, history=history), on=ON)
    (card,) = cds_cards(result)
    assert len(card["summary"]) < 140
    assert re.search(r"\+[0-9]+ more\)$", card["summary"])


def test_card_detail_lists_the_most_serious_findings_and_counts_the_rest() -> None:
    """Past five findings the detail says "And N more"; every code stays in the extension;
    exclusions come first; the card stays short."""
    history = History(**dict.fromkeys(ANSWER_NAMES, True), needle_phobia=NeedlePhobia.SEVERE,
                      consent=False)
    result = screen(Patient(patient_id="p-1", birth_date=date(2020, 1, 1), sex=Sex.FEMALE,
                            pregnancy=Pregnancy.PREGNANT, history=history), on=ON)
    (card,) = cds_cards(result)
    check_card(card)
    listed = re.findall(r"^- \*\*.*?\*\* \(`([a-z_.]+)`", card["detail"], re.M)
    others = [f for f in result.findings if f.code != "screening.unknown_answer"]
    assert len(listed) == 5 < len(others)
    assert f"- And {len(others) - 5} more findings" in card["detail"]
    assert "rules.html" in card["detail"]
    assert card["extension"]["io.readthedocs.dryneedle"]["codes"] == list(
        dict.fromkeys(f.code for f in sorted(result.findings, key=rank)))
    assert all(f.severity == Severity.ERROR for f in result.findings if f.code in listed[:1])
    assert len(card["detail"].encode()) < 2000


# --- command line -----------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dryneedle")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_fhir_screen(capsys: pytest.CaptureFixture[str]) -> None:
    """`dryneedle fhir screen` prints result, provenance and cards; exit 1 when blocked."""
    code = _run(["fhir", "screen", str(DATA / "realistic.json"), "--on", "2026-11-27"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["result"]["decision"] == "not_eligible"
    assert {"provenance", "cards", "detected_issues", "operation_outcome"} <= set(out)
    check_card(out["cards"]["cards"][0])
    validate(out["operation_outcome"])


def test_cli_fhir_screen_with_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--answers supplies the intake form; eligible with precautions exits 0."""
    bundle = load("realistic.json")
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"]["resourceType"] not in ("MedicationStatement",
                                                                "AllergyIntolerance")]
    (tmp_path / "b.json").write_text(json.dumps(bundle), encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps(KNOWN | {"needle_phobia": "none",
                                                         "consent": True}), encoding="utf-8")
    code = _run(["fhir", "screen", str(tmp_path / "b.json"), "--on", "2026-11-27",
                 "--answers", str(tmp_path / "a.json"), "--output", "cards"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["cards"][0]["indicator"] == "warning"


def test_cli_fhir_procedure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dryneedle fhir procedure` writes a valid Procedure; a bad record an OperationOutcome."""
    assert _run(["fhir", "procedure", str(ROOT / "tests" / "data" / "spec_example.json")]) == 0
    validate(json.loads(capsys.readouterr().out))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"format": "dryneedle.session/1"}, 3]), encoding="utf-8")
    assert _run(["fhir", "procedure", str(bad)]) == 1
    bundle = json.loads(capsys.readouterr().out)
    for entry in bundle["entry"]:
        validate(entry["resource"])
    assert bundle["entry"][0]["resource"]["resourceType"] == "OperationOutcome"


def test_cli_usage_errors() -> None:
    """Unreadable input and an unusable bundle are usage errors (UsageError, exit 2)."""
    with pytest.raises(UsageError):
        _run(["fhir", "screen", str(DATA / "nope.json")])
    with pytest.raises(UsageError, match="no Patient"):
        _run(["fhir", "screen", str(DATA / "transaction.json"), "--on", "2026-11-27"])


def test_cli_serve_defaults_to_localhost() -> None:
    """`dryneedle serve` listens on 127.0.0.1:8080 unless told otherwise."""
    parser = argparse.ArgumentParser(prog="dryneedle")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve"])
    assert (args.host, args.port, args.policy) == ("127.0.0.1", 8080, "default")


# --- documentation ----------------------------------------------------------------------------


def test_integrators_guide_examples_run() -> None:
    """The doctest blocks of docs/integrators.md run and give the shown output."""
    text = (ROOT / "docs" / "integrators.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\{doctest\}\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    globs: dict[str, Any] = {}
    for i, block in enumerate(blocks):
        test = parser.get_doctest(block, globs, f"integrators.md[{i}]", "integrators.md", 0)
        runner.run(test, clear_globs=False)
        globs = test.globs  # the blocks of a page share one namespace, as in Sphinx doctest
    assert runner.summarize(verbose=False).failed == 0


def test_medication_references_and_request_states() -> None:
    """Medications resolve through bundled or contained Medication; unusable orders are ignored."""
    med = {"resourceType": "Medication", "id": "m-1",
           "code": {"coding": [{"system": ATC, "code": "B01AA"}]}}

    def request(rid: str, **kw: Any) -> dict[str, Any]:
        return {"resourceType": "MedicationRequest", "id": rid, "status": "active",
                "intent": "order", "subject": {"reference": "Patient/p-x"}, **kw}

    inputs = patient_from_fhir([
        PATIENT_X, med,
        request("unresolved", medicationReference={"reference": "Medication/nope"}),
        request("refused", doNotPerform=True,
                medicationReference={"reference": "Medication/m-1"}),
        request("no-code", medicationCodeableConcept={"text": "warfarin"}),
        request("draft", status="draft", medicationReference={"reference": "Medication/m-1"}),
    ])
    assert inputs.patient.history.anticoagulant_therapy is True
    assert inputs.evidence_for("patient.history.anticoagulant_therapy") == (
        "MedicationRequest/draft",)
    assert {p.resource: p.reason for p in inputs.ignored} == {
        "MedicationRequest/refused": "doNotPerform",
    }
    # SPEC 1.1 §8: what cannot be classified is unread evidence, listed for the clinician.
    assert {p.resource: p.reason for p in inputs.provenance if p.action is Action.UNREAD} == {
        "MedicationRequest/unresolved": "unclassified-medication",
        "MedicationRequest/no-code": "antithrombotic-name-in-text:warfarin",
    }
    assert inputs.unclassified_medications == (
        "MedicationRequest/unresolved (no code)", "MedicationRequest/no-code (warfarin)")


def test_inputs_serialise_to_json() -> None:
    """Inputs and screenings serialise to JSON (patient in record format, provenance)."""
    screening = screen_fhir(load("realistic.json"), on=ON)
    data = json.loads(json.dumps(screening.inputs.as_dict()))
    assert data["patient"]["history"]["anticoagulant_therapy"] is True
    assert {"path", "value", "resource", "code", "action", "reason", "sources"} == set(
        data["provenance"][0])
    assert json.loads(json.dumps(screening.as_dict()))["result"]["decision"] == "not_eligible"


def test_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid JSON and non-object answers are usage errors; --output result prints the trail."""
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid JSON"):
        _run(["fhir", "screen", str(bad)])
    answers = tmp_path / "answers.json"
    answers.write_text("[]", encoding="utf-8")
    with pytest.raises(UsageError, match="--answers"):
        _run(["fhir", "screen", str(DATA / "missing.json"), "--answers", str(answers)])
    assert _run(["fhir", "screen", str(DATA / "missing.json"), "--on", "2026-11-27",
                 "--output", "result"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"result", "provenance"}
