"""Clinical safety hardening of issue #12 (spec 1.1): items 5, 6, 7, 8, 10 and 13.

The vectors in ``tests/data/safety_clinical_vectors.json`` patch one base record at both sides
of each boundary (birth dates, depth to the pleura, needle direction, the longest needle,
dwell, limb mapping, the needs-review warning, new catalog muscles) and run under both built-in
policies through :func:`dryneedle.records.validate_records` and ``dryneedle validate``. The
properties check monotonicity for implausible birth dates and that every path to a decision
(records, :func:`~dryneedle.screening.screen`, ``dryneedle screen``, FHIR) agrees.
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.catalog import LIMBS, MUSCLES, limb_of
from dryneedle.cli import main
from dryneedle.fhir import screen_fhir
from dryneedle.findings import Decision, Severity
from dryneedle.policy import DEFAULT_POLICY, GUIDELINE_POLICY, POLICIES, Policy
from dryneedle.protocol import validate_session
from dryneedle.records import structure_record, validate_records
from dryneedle.screening import PlannedSite, screen
from dryneedle.sources import SOURCES
from dryneedle.strategies import patients

DATA = Path(__file__).parent / "data"
VECTORS: list[dict[str, Any]] = json.loads(
    (DATA / "safety_clinical_vectors.json").read_text("utf-8"))["vectors"]
RANK = {Decision.ELIGIBLE: 0, Decision.ELIGIBLE_WITH_PRECAUTIONS: 1, Decision.NEEDS_REVIEW: 2,
        Decision.NOT_ELIGIBLE: 3}
ON = date(2026, 11, 20)
HISTORY: dict[str, bool | str | None] = {
    "bleeding_disorder": False, "anticoagulant_therapy": False, "immunocompromised": False,
    "metal_allergy": False, "epilepsy": False, "diabetes": False, "vascular_disease": False,
    "prior_adverse_reaction": False, "acute_illness": False, "lymph_node_removal": False,
    "needle_phobia": "none", "consent": True,
}


def base_record() -> dict[str, Any]:
    """A fully answered adult male patient, one clean gluteus medius insertion."""
    return {
        "format": "dryneedle.session/1", "record_id": "r-safety",
        "patient": {"patient_id": "p-safety", "birth_date": "1980-05-01", "sex": "male",
                    "pregnancy": None, "history": dict(HISTORY), "site_findings": [],
                    "conditions": ["myofascial_pain_syndrome"]},
        "session": {
            "session_id": "s-safety", "date": ON.isoformat(), "number": 1,
            "practitioner": {"practitioner_id": "pt-1", "dry_needling_trained": True},
            "pre": {"history_reviewed": True, "physical_exam": True, "consent": True,
                    "skin_disinfected": True},
            "insertions": [{"muscle": "gluteus_medius", "side": "left", "technique": "deep",
                            "depth_mm": 30.0, "manipulation": "pistoning", "dwell_s": None,
                            "needle": {"diameter_mm": 0.3, "length_mm": 50.0},
                            "guide_tube": True, "twitch_response": True,
                            "ultrasound_guided": False}],
            "post": {"needles_removed": 1, "skin_checked": True},
            "adverse_events": [],
        },
    }


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def build(vector: dict[str, Any]) -> dict[str, Any]:
    """The base record with the vector's patient and insertion patches."""
    record = base_record()
    _merge(record["patient"], vector.get("patient", {}))
    _merge(record["session"]["insertions"][0], vector.get("insertion", {}))
    return record


def check(vector: dict[str, Any], report: dict[str, Any]) -> None:
    """The vector's expectations hold on one JSON report."""
    found = {(f["code"], f["path"], f["severity"]) for f in report["findings"]}
    for code, path, severity in vector["present"]:
        assert any(c == code and p == path and (severity is None or s == severity)
                   for c, p, s in found), (vector["id"], code, sorted(found))
    codes = {c for c, _, _ in found}
    for code in vector["absent"]:
        assert code not in codes, (vector["id"], code)
    if vector.get("valid") is not None:
        assert report["valid"] is vector["valid"], vector["id"]


IDS = [v["id"] for v in VECTORS]


def test_vectors_cite_registered_sources() -> None:
    """Every vector cites sources of SOURCES.md and has a unique id."""
    assert len(set(IDS)) == len(IDS)
    for v in VECTORS:
        assert v["sources"], v["id"]
        assert set(v["sources"]) <= set(SOURCES), v["id"]


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_vector_api(vector: dict[str, Any], policy: str) -> None:
    """validate_records, on the record as a mapping and as a JSON line (fast path)."""
    record = build(vector)
    for item in (record, json.dumps(record)):
        (report,) = validate_records([item], policy=POLICIES[policy])
        check(vector, report.as_dict())


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_vectors_cli(policy: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """``dryneedle validate`` gives the same findings for every vector."""
    path = tmp_path / "vectors.jsonl"
    path.write_text("".join(json.dumps(build(v)) + "\n" for v in VECTORS), "utf-8")
    main(["validate", str(path), "--policy", policy, "-q"])
    out, _ = capfd.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(VECTORS)
    for vector, row in zip(VECTORS, rows, strict=True):
        check(vector, row)


# --- item 5: birth dates ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [DEFAULT_POLICY, GUIDELINE_POLICY])
@pytest.mark.parametrize("birth", [date(1905, 11, 20), date(1, 1, 1), date(2026, 11, 21)])
def test_implausible_birth_date_is_an_error_and_blocks_the_decision(
    birth: date, policy: Policy) -> None:
    """Error at patient.birth_date, at least needs_review, listed in missing; not an adult."""
    patient = structure_record(base_record()).patient
    result = screen(attrs.evolve(patient, birth_date=birth), on=ON, policy=policy)
    assert result.decision is Decision.NEEDS_REVIEW
    assert "patient.birth_date" in result.missing
    (f,) = [f for f in result.findings if f.path == "patient.birth_date"]
    assert (f.code, f.severity) == ("screening.birth_date_implausible", Severity.ERROR)
    pregnant = attrs.evolve(patient, sex=model.Sex.FEMALE, birth_date=birth,
                            pregnancy=model.Pregnancy.PREGNANT)
    if policy is DEFAULT_POLICY:  # an exclusion still gives not_eligible
        assert screen(pregnant, on=ON, policy=policy).decision is Decision.NOT_ELIGIBLE


def test_max_age_is_a_policy_limit() -> None:
    """A clinic can lower ``max_age_years``; the boundary moves (120 is plausible by default)."""
    patient = attrs.evolve(structure_record(base_record()).patient, birth_date=date(1916, 1, 1))
    assert screen(patient, on=ON).decision is Decision.ELIGIBLE
    strict = DEFAULT_POLICY.override(limits={"max_age_years": 105}, justification="test")
    assert screen(patient, on=ON, policy=strict).decision is Decision.NEEDS_REVIEW


# --- item 6: pleura ----------------------------------------------------------------------------


def test_pleura_margin_makes_the_rule_stricter() -> None:
    """A clinic margin lowers the depth at which the pleura rule fires (means: shallower is
    common)."""
    record = build({"patient": {"sex": "male"},
                    "insertion": {"muscle": "upper_trapezius", "depth_mm": 16.0}})
    (plain,) = validate_records([record])
    assert "protocol.lung.pleura_depth" not in {f.code for f in plain.findings}
    strict = DEFAULT_POLICY.override(limits={"pleura_depth_margin_mm": 2.0},
                                     justification="test: a margin below the chen-2018 means")
    (report,) = validate_records([record], policy=strict)
    (f,) = [f for f in report.findings if f.code == "protocol.lung.pleura_depth"]
    assert f.sources[0] == "chen-2018"


def test_without_a_patient_the_pleura_takes_the_smallest_depth() -> None:
    """No patient: sex unknown, so the 14.6 mm mean applies (fail closed)."""
    session = structure_record(build({"insertion": {"muscle": "upper_trapezius",
                                                    "depth_mm": 15.0}})).session
    codes = {f.code for f in validate_session(session).findings}
    assert "protocol.lung.pleura_depth" in codes


# --- item 8 and 13: catalog -------------------------------------------------------------------


def test_limbs_are_catalog_data_and_cover_the_spec_regions() -> None:
    """Both limbs, as SPEC §3 lists them; every region id of the spec exists."""
    r = model.Region
    assert LIMBS["upper_limb"] == {r.SHOULDER, r.ARM, r.FOREARM, r.HAND}
    assert LIMBS["lower_limb"] == {r.HIP, r.THIGH, r.KNEE, r.LEG, r.ANKLE_FOOT}
    assert limb_of(r.NECK) is None


def test_new_muscles_cite_their_facts() -> None:
    """New muscles: region from travell-simons-2019, lung and haemostasis facts cited."""
    for mid in ("latissimus_dorsi", "first_dorsal_interosseous", "adductor_pollicis",
                "opponens_pollicis", "extensor_digitorum_brevis", "abductor_hallucis"):
        m = MUSCLES[mid]
        assert m.region_sources == ("travell-simons-2019",)
        assert "za-bn121" in m.sources
    assert MUSCLES["latissimus_dorsi"].over_lung
    assert MUSCLES["upper_trapezius"].pleura_sources == ("chen-2018",)


# --- item 10: silent gaps ---------------------------------------------------------------------


def test_unknown_planned_muscle_is_listed_in_missing() -> None:
    """The only unknown is a planned site's muscle: ``missing`` names its path."""
    patient = structure_record(base_record()).patient
    result = screen(patient, on=ON, sites=[PlannedSite(muscle="gluteus_medius", side="left"),
                                           PlannedSite(muscle="latissimus", side="left")])
    assert result.decision is Decision.NEEDS_REVIEW
    assert result.missing == ("session.insertions[1].muscle",)


def test_no_patient_is_every_answer_unknown() -> None:
    """patient=None warns exactly like an all-unknown patient on deep psoas (fail closed)."""
    session = structure_record(build({"insertion": {"muscle": "psoas",
                                                    "depth_mm": 40.0}})).session
    alone = {(f.code, f.path) for f in validate_session(session).findings}
    unknown = validate_session(session, patient=model.Patient(patient_id="p-u"))
    assert {(f.code, f.path) for f in unknown.findings} == alone
    assert ("protocol.bleeding.unknown", "session.insertions[0]") in alone
    assert ("protocol.screening.needs_review", "session") in alone


def test_needs_review_warning_names_the_unknown_answers() -> None:
    """A needs_review patient who was needled: a warning at ``session`` naming the answers."""
    record = build({"patient": {"history": {"consent": None, "diabetes": None}}})
    (report,) = validate_records([record])
    (f,) = [f for f in report.findings if f.code == "protocol.screening.needs_review"]
    assert (f.path, f.severity) == ("session", Severity.WARNING)
    assert "patient.history.diabetes" in f.message
    assert "patient.history.consent" in f.message


# --- properties -------------------------------------------------------------------------------

policies = st.sampled_from([DEFAULT_POLICY, GUIDELINE_POLICY])
adult_dates = st.dates(min_value=date(1920, 1, 1), max_value=date(2000, 1, 1))
on_dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
sites = st.lists(st.builds(PlannedSite, muscle=st.sampled_from(sorted(MUSCLES)),
                           side=st.sampled_from(model.Side)), max_size=3)


@given(patient=patients(), birth=adult_dates, on=on_dates, policy=policies, sites=sites,
       implausible=st.sampled_from(["future", "ancient"]))
def test_monotonic_when_a_known_adult_birth_date_becomes_implausible(
    patient: model.Patient, birth: date, on: date, policy: Policy,
    sites: list[PlannedSite], implausible: str,
) -> None:
    """(c) a known adult birth date turned implausible never moves towards eligible."""
    before = attrs.evolve(patient, birth_date=birth)
    bad = on + timedelta(days=1) if implausible == "future" else date(
        on.year - policy.max_age_years - 1, 1, 1)
    after = attrs.evolve(patient, birth_date=bad)
    r0 = screen(before, on=on, sites=sites, policy=policy)
    r1 = screen(after, on=on, sites=sites, policy=policy)
    assert RANK[r1.decision] >= max(RANK[r0.decision], RANK[Decision.NEEDS_REVIEW]) or (
        r1.decision is Decision.NOT_ELIGIBLE)
    assert r1.decision is not Decision.ELIGIBLE


def _fhir_bundle(patient: model.Patient) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": patient.patient_id}
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    if patient.sex is not None:
        resource["gender"] = patient.sex.value
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}


@given(birth=st.none() | st.dates(min_value=date(1, 1, 1), max_value=date(2040, 1, 1)),
       policy_name=st.sampled_from(sorted(POLICIES)), answers=st.booleans())
def test_every_path_gives_the_same_decision(
    birth: date | None, policy_name: str, answers: bool,
) -> None:
    """(e) records, screen(), ``dryneedle screen`` and FHIR agree on the same patient."""
    policy = POLICIES[policy_name]
    record = base_record()
    record["patient"]["birth_date"] = None if birth is None else birth.isoformat()
    if not answers:
        record["patient"]["history"]["consent"] = None
    record["session"]["insertions"] = []
    record["session"]["post"]["needles_removed"] = 0
    (report,) = validate_records([record], policy=policy)
    patient = structure_record(record).patient
    direct = screen(patient, on=ON, policy=policy)
    assert report.decision is direct.decision
    history: dict[str, bool | str | None] = {**HISTORY, "consent": True if answers else None}
    fhir = screen_fhir(_fhir_bundle(patient), on=ON, policy=policy,
                       answers={**history, "pregnancy": "not_pregnant"})
    assert fhir.result.decision is direct.decision


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("birth", ["1906-11-20", "1905-11-20", "2026-11-20", "2026-11-21",
                                   None])
def test_cli_screen_agrees(birth: str | None, policy: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """(e) ``dryneedle screen`` on the record gives the decision of the record path."""
    record = base_record()
    record["patient"]["birth_date"] = birth
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record), "utf-8")
    main(["screen", str(path), "--format", "json", "--policy", policy])
    out = json.loads(capsys.readouterr().out)
    (report,) = validate_records([record], policy=POLICIES[policy])
    assert report.decision is not None
    assert out["decision"] == report.decision.value
