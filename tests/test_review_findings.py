"""Adversarial clinical-safety review of the #12 hardening: each test is one break found.

Every test gives the minimal input that got a more permissive answer than SPEC 1.1 allows and
the fail-closed answer it must get instead (the SPEC paragraph is cited). Tests marked
``xfail(strict=True)`` are breaks left open: their reason says why the fix is not local.
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dryneedle import model
from dryneedle.aftercare import (
    ReportedSymptom,
    SymptomKind,
    SymptomReport,
    TriageLevel,
    aftercare_plan,
    structure_report,
    triage,
)
from dryneedle.cli import main
from dryneedle.findings import Severity
from dryneedle.policy import DEFAULT_POLICY, GUIDELINE_POLICY, Policy, load_policy, loads_policy
from dryneedle.protocol import validate_session
from dryneedle.records import validate_records

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "sessions.jsonl"
ON = date(2026, 11, 20)


def _record() -> dict[str, Any]:
    record: dict[str, Any] = json.loads(EXAMPLES.read_text(encoding="utf-8").splitlines()[0])
    return record


def _glute_record() -> dict[str, Any]:
    """A valid record whose only insertion is far from the lung (gluteus maximus)."""
    record = _record()
    record["session"]["insertions"] = [{
        "muscle": "gluteus_maximus", "side": "left", "technique": "deep", "depth_mm": 30.0,
        "manipulation": "pistoning", "dwell_s": None,
        "needle": {"diameter_mm": 0.25, "length_mm": 50.0}, "guide_tube": True,
        "twitch_response": True, "ultrasound_guided": False}]
    record["session"]["post"]["needles_removed"] = 1
    return record


def _session(*insertions: model.Insertion) -> model.Session:
    return model.Session(
        session_id="s-1", date=ON, number=1,
        practitioner=model.Practitioner(practitioner_id="pt-1", dry_needling_trained=True),
        pre=model.PreSteps(history_reviewed=True, physical_exam=True, consent=True,
                           skin_disinfected=True),
        insertions=insertions,
        post=model.PostSteps(needles_removed=len(insertions), skin_checked=True))


def _insertion(muscle: str = "gluteus_maximus", **kw: Any) -> model.Insertion:
    fields: dict[str, Any] = {
        "muscle": muscle, "side": model.Side.LEFT, "technique": model.Technique.DEEP,
        "depth_mm": 20.0, "manipulation": model.Manipulation.PISTONING,
        "needle": model.Needle(diameter_mm=0.3, length_mm=50.0), "guide_tube": True,
        "ultrasound_guided": False}
    fields.update(kw)
    return model.Insertion(**fields)


_CHEST_PAIN = SymptomReport(hours_since_session=2.0,
                            symptoms=(ReportedSymptom(kind=SymptomKind.CHEST_PAIN),))


# --- (1) policy: every route checks every limit ----------------------------------------------


@pytest.mark.parametrize("limits", [
    {"min_age_years": math.nan},          # a 6-year-old read as old enough (age < NaN is False)
    {"recent_surgery_days": math.nan},
    {"over_lung_max_depth_mm": math.nan},
    {"needle_length_max_mm": math.nan},
    {"pleura_depth_margin_mm": math.nan},
    {"dwell_max_s": -5.0},
    {"max_age_years": 1_000_000},
    {"over_lung_max_depth_mm": "31"},
    {"min_age_years": None},
    {"min_age_years": True},
], ids=repr)
def test_policy_constructor_checks_every_limit(limits: dict[str, Any]) -> None:
    """SPEC §1 (1.1): a value outside the plausible range, or of the wrong type, is refused
    with an error naming the limit -- by every route, the constructor included (it only
    checked the floor direction, and skipped NaN)."""
    (name,) = limits
    with pytest.raises(ValueError, match=name):
        Policy(**limits)


def test_nan_minimum_age_cannot_make_a_child_eligible() -> None:
    """SPEC §3: age < 12 is an exclusion; no Policy object can carry a NaN minimum age."""
    record = _record()
    record["patient"]["birth_date"] = "2020-01-01"
    (report,) = validate_records([record])
    assert report.decision is not None
    assert report.decision.value == "not_eligible"
    with pytest.raises(ValueError, match="min_age_years"):
        validate_records([record], policy=Policy(min_age_years=math.nan))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["min_age_years", "dwell_max_s", "over_lung_max_depth_mm"])
def test_integer_beyond_a_double_is_refused_naming_the_limit(name: str, tmp_path: Path) -> None:
    """SPEC §1 (1.1): an implausible value is refused with an error naming the limit (exit 2 in
    the CLI) -- not an OverflowError traceback (exit 1)."""
    huge = 10**400
    with pytest.raises(ValueError, match=name):
        load_policy({"justification": "x", "limits": {name: huge}})
    with pytest.raises(ValueError, match=name):
        loads_policy(f'{{"justification": "x", "limits": {{"{name}": {huge}}}}}')
    policy = tmp_path / "policy.json"
    policy.write_text(f'{{"justification": "x", "limits": {{"{name}": {huge}}}}}',
                      encoding="utf-8")
    record = tmp_path / "r.jsonl"
    record.write_text(json.dumps(_record()) + "\n", encoding="utf-8")
    assert main(["validate", "--policy", str(policy), str(record)]) == 2


# --- (1) the dwell range is a floor (physical impossibility, SPEC §4 1.1 "error otherwise") ---


def test_policy_cannot_make_a_negative_dwell_weaker_than_an_unrecorded_one() -> None:
    """SPEC §1 (1.1) floors include the physical impossibilities, and §4 (1.1): a recorded dwell
    must be >= 0 and <= the static maximum (error otherwise). ``protocol.dwell.range`` could be
    overridden to ``info``, so a -1 s dwell read weaker than an unrecorded one (whose rule,
    ``protocol.dwell.unknown``, is a floor at ``warning``)."""
    with pytest.raises(ValueError, match=r"protocol\.dwell\.range"):
        load_policy({"justification": "x",
                     "rules": {"protocol.dwell.range": {"severity": "info"}}})
    with pytest.raises(ValueError, match=r"protocol\.dwell\.range"):
        load_policy({"justification": "x",
                     "rules": {"protocol.dwell.range": {"effect": "note"}}})
    session = _session(_insertion(manipulation=model.Manipulation.STATIC, dwell_s=-1.0))
    for policy in (DEFAULT_POLICY, GUIDELINE_POLICY):
        found = [f for f in validate_session(session, policy=policy).findings
                 if f.code == "protocol.dwell.range"]
        assert [f.severity for f in found] == [Severity.ERROR]


# --- (2, 11) triage and aftercare fail closed on unreadable input ----------------------------


@pytest.mark.parametrize("session", [
    {"insertions": [{"muscle": "pectoralis_major"}]}, {}, "s-000001", object(),
], ids=["dict", "empty-dict", "str", "object"])
def test_an_unreadable_session_counts_as_near_the_lung(session: Any) -> None:
    """SPEC §5 (1.1): when the session given to ``aftercare`` or ``triage`` cannot be read, the
    plan includes every conditional line and triage treats it as over the lung. A session that
    is not a Session (a raw dict after pectoral needling) read as "no needles near the lung":
    chest pain was ``contact_clinic`` and the plan had no lung line."""
    follow_up = triage(_CHEST_PAIN, session=session)
    assert follow_up.level is TriageLevel.URGENT
    assert follow_up.near_lung is None
    plan = aftercare_plan(session)
    assert "lung_emergency" in {i.id for i in plan.instructions}
    assert plan.near_lung is None


def test_a_readable_session_far_from_the_lung_is_still_told_apart() -> None:
    """The fix does not over-read: a known gluteal session is not near the lung."""
    follow_up = triage(_CHEST_PAIN, session=_session(_insertion()))
    assert follow_up.level is TriageLevel.CONTACT_CLINIC
    assert "lung_emergency" not in {i.id for i in aftercare_plan(_session()).instructions}


@pytest.mark.parametrize("report", [
    {"hours_since_session": 2, "symptoms": [{"kind": "chest_pain"}]},
    SymptomReport(hours_since_session=2.0, symptoms=None),  # type: ignore[arg-type]
    None,
    "chest pain",
], ids=["dict", "symptoms-None", "None", "str"])
def test_an_unreadable_symptom_report_is_never_expected(report: Any) -> None:
    """SPEC §5: a symptom that cannot be read is ``other`` (contact, never expected); §5 (1.1)
    triage never answers from nothing. A raw dict report of chest pain read as "No symptoms
    were reported ... This is expected"."""
    follow_up = triage(report, session=None)
    assert follow_up.level is not TriageLevel.EXPECTED
    assert follow_up.reasons


def test_an_empty_report_is_still_expected() -> None:
    """``symptoms: []`` (asked, nothing to report) stays ``expected``."""
    assert triage(structure_report({"symptoms": []}), session=None).level is TriageLevel.EXPECTED


@pytest.mark.parametrize("records", [0, 2])
def test_triage_answers_when_the_session_file_holds_no_or_several_records(
        records: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC §5 (1.1): when the session cannot be read, triage treats it as over the lung and
    the command still prints the result, never nothing. ``--session`` with an empty file (or two
    records) was a usage error that printed no triage at all for chest pain."""
    session = tmp_path / "s.jsonl"
    session.write_text("".join(json.dumps(_glute_record()) + "\n" for _ in range(records)),
                       encoding="utf-8")
    report = tmp_path / "report.json"
    report.write_text('{"hours_since_session": 2, "symptoms": [{"kind": "chest_pain"}]}',
                      encoding="utf-8")
    code = main(["triage", str(report), "--session", str(session), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1
    result = json.loads(captured.out)
    assert result["level"] == "urgent"
    assert result["findings"]
    assert "fail closed" in captured.err


# --- open breaks --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["null", "absent"])
def test_unknown_insertions_keep_the_lung_line(how: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC §5 (1.1): a session that cannot be read in part gets every conditional line and
    triage treats it as over the lung; absent/null lists are unknown (§3, §4 1.1)."""
    record = _glute_record()
    if how == "null":
        record["session"]["insertions"] = None
    else:
        del record["session"]["insertions"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    report = tmp_path / "report.json"
    report.write_text('{"hours_since_session": 2, "symptoms": [{"kind": "chest_pain"}]}',
                      encoding="utf-8")
    main(["aftercare", str(path), "--format", "json"])
    plan = json.loads(capsys.readouterr().out)
    assert plan["near_lung"] is None
    main(["triage", "--session", str(path), str(report), "--format", "json"])
    assert json.loads(capsys.readouterr().out)["level"] == "urgent"


def test_duplicate_symptoms_key_never_hides_chest_pain(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """SPEC §6 (1.1): an object with the same key twice is a structural error at that key; a
    report ``{"symptoms": [chest_pain], "symptoms": []}`` printed "This is expected", exit 0."""
    report = tmp_path / "report.json"
    report.write_text('{"hours_since_session": 2, "symptoms": [{"kind": "chest_pain"}], '
                      '"symptoms": []}', encoding="utf-8")
    code = main(["triage", str(report), "--format", "json"])
    out = capsys.readouterr().out
    assert code != 0
    assert not out or json.loads(out)["level"] != "expected"


def test_preliminary_pregnant_counts_as_pregnant_against_a_same_day_not_pregnant() -> None:
    """SPEC §8 (1.1): "a preliminary 'pregnant' counts as pregnant", and a recognised resource
    makes its answer true whatever else says. With a final "not pregnant" the same day the
    decision was ``needs_review`` rather than ``not_eligible`` (default policy)."""
    from dryneedle.fhir import screen_fhir  # noqa: PLC0415

    def obs(rid: str, value: str, status: str) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": rid, "status": status,
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
                "effectiveDateTime": "2026-11-25",
                "valueCodeableConcept": {"coding": [{"system": "http://loinc.org",
                                                     "code": value}]}}
    answers: dict[str, bool | str | None] = dict.fromkeys(
        ("bleeding_disorder", "anticoagulant_therapy", "immunocompromised", "metal_allergy",
         "epilepsy", "diabetes", "vascular_disease", "prior_adverse_reaction", "acute_illness",
         "lymph_node_removal"), False)
    answers.update(needle_phobia="none", consent=True)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in (
        {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01", "gender": "female"},
        obs("o1", "LA26683-5", "final"), obs("o2", "LA15173-0", "preliminary"))]}
    result = screen_fhir(bundle, on=date(2026, 12, 1), answers=answers).result
    assert result.decision is not None
    assert result.decision.value == "not_eligible"


def test_a_not_eligible_patient_needled_never_reads_weaker_than_a_needs_review_one() -> None:
    """SPEC §4 (1.1): a needs_review patient who was needled is a warning at ``session`` (a
    floor); a not_eligible patient is worse, so ``protocol.screening.not_eligible`` (like the
    known-bad counterparts of every unknown floor: steps, training, excluded sites) is a floor
    too: a policy setting it to ``info`` is refused, naming the rule."""
    for rule_id in ("protocol.screening.not_eligible", "protocol.screening.site_excluded",
                    "protocol.practitioner.untrained", "protocol.pre.consent",
                    "protocol.post.needles_removed", "protocol.post.skin_checked"):
        with pytest.raises(ValueError, match=re.escape(rule_id)):
            load_policy({"justification": "x", "rules": {rule_id: {"severity": "info"}}})
    record = copy.deepcopy(_glute_record())
    record["patient"]["pregnancy"] = "pregnant"
    (report,) = validate_records([record])
    session_findings = [f for f in report.findings if f.path == "session"]
    assert any(f.severity is Severity.ERROR for f in session_findings)


def test_a_cds_client_cannot_screen_as_of_a_future_date() -> None:
    """SPEC §3: age < 12 on the evaluation date excludes; §1.7 the date is an argument, but a
    live patient-view is about today. ``"on": "2099-01-01"`` turned a 9-year-old (born 2017)
    into ``eligible`` (an undated-surgery window or a stale pregnancy status move the same
    way)."""
    from dryneedle.service import handle_hook  # noqa: PLC0415

    answers: dict[str, Any] = dict.fromkeys(
        ("bleeding_disorder", "anticoagulant_therapy", "immunocompromised", "metal_allergy",
         "epilepsy", "diabetes", "vascular_disease", "prior_adverse_reaction", "acute_illness",
         "lymph_node_removal"), False)
    answers.update(needle_phobia="none", consent=True, pregnancy="not_pregnant")
    body = {"hook": "patient-view", "hookInstance": "h-1",
            "context": {"patientId": "p1", "userId": "Practitioner/1"},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "p1",
                                     "birthDate": "2017-01-01", "gender": "female"},
                         "medicationRequests": None, "conditions": None, "allergies": None,
                         "pregnancy": None},
            "extension": {"io.readthedocs.dryneedle": {"answers": answers,
                                                        "on": "2099-01-01"}}}
    status, out = handle_hook("dryneedle-screening", body, today=lambda: date(2026, 12, 1),
                              always=True)
    assert status == 400 or all("not eligible" in c["summary"] for c in out["cards"])
