"""Protocol validation (SPEC §4): vectors per rule at both sides of each boundary, properties."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.findings import Decision, Finding, Severity, get_rule
from dryneedle.policy import DEFAULT_POLICY, GUIDELINE_POLICY, Policy
from dryneedle.protocol import (
    ProtocolReport,
    check_session_findings,
    rule_ids,
    validate_series,
    validate_session,
)
from dryneedle.records import structure_record, validate_records
from dryneedle.sources import SOURCES
from dryneedle.strategies import patients, records, sessions

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "protocol_vectors.json").read_text())
CASES: list[dict[str, Any]] = VECTORS["cases"]

# In a stream, the needle-increase rule is the series index's job (same condition, series code).
STREAM_CODE = {
    "protocol.needles.increase_after_poor_tolerance": "series.needles_after_poor_tolerance",
}


# --- building inputs from the vectors ------------------------------------------------------------


def merge(base: Any, over: Any) -> Any:
    """Merge ``over`` onto ``base``: objects key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value)
        return out
    return copy.deepcopy(over)


def session_data(over: dict[str, Any], insertions: list[dict[str, Any]]) -> dict[str, Any]:
    """A session: base session + overrides, insertions merged over the base insertion."""
    base = VECTORS["base"]
    data: dict[str, Any] = merge(base["session"], {k: v for k, v in over.items()
                                                   if k != "insertions"})
    data["insertions"] = [merge(base["insertion"], x) for x in insertions]
    post = data.setdefault("post", {})
    if "needles_removed" not in over.get("post", {}):
        post["needles_removed"] = len(data["insertions"])
    return data


def build(case: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return (record, previous records) of one vector case."""
    patient = merge(VECTORS["base"]["patient"], case.get("patient", {}))
    previous = []
    for k, prev in enumerate(case.get("previous", [])):
        prev_session = session_data(prev, prev.get("insertions", [{}]))
        previous.append({"format": "dryneedle.session/1", "record_id": f"r-prev-{k}",
                         "patient": patient, "session": prev_session})
    record = {"format": "dryneedle.session/1", "record_id": "r-case", "patient": patient,
              "session": session_data(case.get("session", {}), case["insertions"])}
    return record, previous


def selected(findings: Any, checks: list[str]) -> set[tuple[str, str, str]]:
    """(code, path, severity) of the findings whose code is under test."""
    return {(f.code, f.path, f.severity.value) for f in findings if f.code in checks}


def expected(case: dict[str, Any]) -> set[tuple[str, str, str]]:
    """The case's expected findings as (code, path, severity)."""
    return {(c, p, s) for c, p, s in case["expect"]}


# --- the vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector_validate_session(case: dict[str, Any]) -> None:
    """validate_session gives exactly the expected findings of the rules under test."""
    record, previous = build(case)
    rec = structure_record(record)
    prev = [structure_record(p).session for p in previous]
    report = validate_session(rec.session, patient=rec.patient, previous=prev)
    assert selected(report.findings, case["checks"]) == expected(case)
    assert report.valid is all(f.severity is not Severity.ERROR for f in report.findings)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector_validate_records(case: dict[str, Any]) -> None:
    """validate_records reports the same protocol findings, at the same record-rooted paths."""
    record, previous = build(case)
    *_, report = validate_records([*previous, record])
    checks = [STREAM_CODE.get(c, c) for c in case["checks"]]
    want = {(STREAM_CODE.get(c, c), p, s) for c, p, s in expected(case)}
    assert selected(report.findings, checks) == want


def test_vectors_cite_known_sources_and_rules() -> None:
    """Every vector cites sources of the registry and checks registered rule ids."""
    ids = set(rule_ids())
    seen = set()
    for case in CASES:
        assert case["sources"], case["id"]
        assert set(case["sources"]) <= set(SOURCES), case["id"]
        assert set(case["checks"]) <= ids, case["id"]
        assert {c for c, _, _ in case["expect"]} <= set(case["checks"]), case["id"]
        assert case["id"] not in seen
        seen.add(case["id"])


def test_every_protocol_rule_is_boundary_tested() -> None:
    """Each protocol rule has a vector where it fires and one under test where it does not."""
    fires = {c for case in CASES for c, _, _ in case["expect"]}
    quiet = {c for case in CASES for c in case["checks"]
             if c not in {e[0] for e in case["expect"]}}
    untested_here = {"protocol.muscle.unknown"}  # not expressible in a valid record: see below
    # The fail-closed assumptions about unreadable parts (SPEC section 6, 1.1) fire only on
    # records with structural errors: their vectors are in safety_partial_vectors.json.
    partial = json.loads((DATA / "safety_partial_vectors.json").read_text())
    partial_fires = {c for case in partial["cases"] for exp in case["expect"].values()
                     for c, _, _ in exp}
    partial_quiet = {c for case in partial["cases"] for exp in case["expect"].values()
                     for c in case["checks"] if c not in {e[0] for e in exp}}
    for rid in PARTIAL_RULES:
        assert rid in partial_fires, f"{rid} never fires in the partial vectors"
        assert rid in partial_quiet, f"{rid} is never shown quiet in the partial vectors"
    untested_here |= PARTIAL_RULES
    for rid in rule_ids():
        if rid.startswith("protocol.") and rid not in untested_here:
            assert rid in fires, f"{rid} never fires in the vectors"
            assert rid in quiet, f"{rid} is never shown quiet in the vectors"


PARTIAL_RULES = {
    "protocol.lung.unchecked", "protocol.lung.both_sides_unchecked",
    "protocol.bleeding.unchecked", "protocol.needles.unchecked",
    "protocol.insertions.unchecked",
}


# --- rules and policy ----------------------------------------------------------------------------


def test_rules_are_registered_cited_and_name_policy_limits() -> None:
    """Every rule is registered, cites known sources and names real Policy limits."""
    limit_names = {lim.name for lim in DEFAULT_POLICY.limits()}
    for rid in rule_ids():
        rule = get_rule(rid)
        assert rule.category in {"protocol", "series"}
        assert rule.sources
        assert set(rule.sources) <= set(SOURCES)
        assert set(rule.limits) <= limit_names
        assert rule.rationale


def _gluteus(**kw: Any) -> model.Insertion:
    values: dict[str, Any] = {
        "muscle": "gluteus_medius", "side": model.Side.RIGHT, "technique": model.Technique.DEEP,
        "depth_mm": 30.0, "manipulation": model.Manipulation.PISTONING,
        "needle": model.Needle(diameter_mm=0.3, length_mm=50.0), "guide_tube": True,
    }
    values.update(kw)
    return model.Insertion(**values)


def _session(*insertions: model.Insertion, **kw: Any) -> model.Session:
    values: dict[str, Any] = {
        "session_id": "s-1", "date": date(2026, 11, 20), "number": 1,
        "practitioner": model.Practitioner(practitioner_id="pt-1", dry_needling_trained=True),
        "pre": model.PreSteps(history_reviewed=True, physical_exam=True, consent=True,
                              skin_disinfected=True),
        "insertions": insertions,
        "post": model.PostSteps(needles_removed=len(insertions), skin_checked=True),
    }
    values.update(kw)
    return model.Session(**values)


def _patient(**history: Any) -> model.Patient:
    answers: dict[str, Any] = {
        "bleeding_disorder": False, "anticoagulant_therapy": False, "immunocompromised": False,
        "metal_allergy": False, "epilepsy": False, "diabetes": False, "vascular_disease": False,
        "prior_adverse_reaction": False, "acute_illness": False, "lymph_node_removal": False,
        "needle_phobia": model.NeedlePhobia.NONE, "consent": True,
    }
    answers.update(history)
    return model.Patient(patient_id="p-1", birth_date=date(1980, 5, 1), sex=model.Sex.MALE,
                         history=model.History(**answers))


def codes(report: ProtocolReport | list[Finding]) -> list[str]:
    """The codes of a report's findings, in order."""
    findings = report.findings if isinstance(report, ProtocolReport) else report
    return [f.code for f in findings]


def test_clean_session_has_no_findings() -> None:
    """A session inside every limit, for an eligible patient, gives no finding at all."""
    report = validate_session(_session(_gluteus()), patient=_patient())
    assert report.findings == ()
    assert report.valid
    assert report.decision is Decision.ELIGIBLE
    assert report.policy == DEFAULT_POLICY.fingerprint
    assert report.as_dict()["policy"] == {"name": "default",
                                          "fingerprint": DEFAULT_POLICY.fingerprint}


def test_limits_are_read_from_the_policy() -> None:
    """Changing a limit in the policy moves the boundary (superficial max 10 → 12 mm)."""
    session = _session(_gluteus(technique=model.Technique.SUPERFICIAL, depth_mm=11.0))
    patient = _patient()
    assert codes(validate_session(session, patient=patient)) == [
        "protocol.depth.superficial_range"]
    wider = DEFAULT_POLICY.override(limits={"superficial_max_depth_mm": 12.0},
                                    justification="test: clinic allows 12 mm")
    assert codes(validate_session(session, patient=patient, policy=wider)) == []
    assert codes(validate_session(session, patient=patient)) == [
        "protocol.depth.superficial_range"]


def test_severity_comes_from_the_policy() -> None:
    """A clinic can override a protocol rule's severity; the finding follows it."""
    session = _session(_gluteus(muscle="upper_trapezius", depth_mm=20.0,
                                directed_away_from_lung=True))
    (f,) = validate_session(session, patient=_patient()).findings
    assert (f.code, f.severity) == ("protocol.lung.deep_technique", Severity.WARNING)
    quieter = DEFAULT_POLICY.override(rules={"protocol.lung.deep_technique": {"severity": "info"}},
                                      justification="test")
    (g,) = validate_session(session, patient=_patient(), policy=quieter).findings
    assert g.severity is Severity.INFO
    assert g.sources == get_rule("protocol.lung.deep_technique").sources


def test_override_sources_are_added_to_findings() -> None:
    """Sources recorded on a rule override are carried by its findings."""
    base = DEFAULT_POLICY.override(rules={"protocol.guide_tube.not_used": {"severity": "warning"}},
                                   justification="test")
    (o,) = base.rule_overrides
    policy = attrs.evolve(base, rule_overrides=(attrs.evolve(o, sources=("za-bn121",)),))
    (f,) = validate_session(_session(_gluteus(guide_tube=False)), patient=_patient(),
                            policy=policy).findings
    assert f.severity is Severity.WARNING
    assert f.sources == ("seed", "za-bn121")


def test_unknown_muscle_is_an_error_not_an_exception() -> None:
    """A muscle outside the catalog (possible only through the API) is reported, never raised."""
    report = validate_session(_session(_gluteus(muscle="not_a_muscle")), patient=_patient())
    assert ("protocol.muscle.unknown", "session.insertions[0].muscle") in {
        (f.code, f.path) for f in report.findings}
    assert not report.valid


@pytest.mark.parametrize("depth", [0.0, -0.0, -1.0, -1e300])
def test_non_positive_depth(depth: float) -> None:
    """Zero and negative depths are errors (the model already refuses NaN and infinities)."""
    report = validate_session(_session(_gluteus(depth_mm=depth)), patient=_patient())
    assert codes(report) == ["protocol.depth.not_positive"]


@pytest.mark.parametrize("dwell", [-1.0, 0.0, 1e300])
def test_extreme_dwell(dwell: float) -> None:
    """A negative, zero or huge static dwell is outside the dwell range."""
    session = _session(_gluteus(manipulation=model.Manipulation.STATIC, dwell_s=dwell))
    assert codes(validate_session(session, patient=_patient())) == ["protocol.dwell.range"]


def test_patient_rules_fail_closed_without_a_patient() -> None:
    """Without a patient every answer is unknown (SPEC §4 1.1): bleeding risk unknown on deep
    psoas, and the needled session cannot show a screening review."""
    session = _session(_gluteus(muscle="psoas"))
    assert codes(check_session_findings(session, patient=None, screening=None,
                                        policy=DEFAULT_POLICY)) == [
        "protocol.bleeding.unknown", "protocol.screening.needs_review"]
    with_patient = check_session_findings(session, patient=_patient(anticoagulant_therapy=True),
                                          screening=None, policy=DEFAULT_POLICY)
    assert set(codes(with_patient)) == {
        "protocol.bleeding.no_palpable_haemostasis",
        "protocol.screening.site_excluded",
        "protocol.screening.not_eligible",
    }


def test_screening_result_given_is_used() -> None:
    """check_session_findings uses the caller's screening result rather than re-screening."""
    from dryneedle.screening import screen  # noqa: PLC0415

    session = _session(_gluteus())
    patient = _patient(metal_allergy=True)
    result = screen(patient, on=session.date, sites=session.insertions)
    assert result.decision is Decision.NOT_ELIGIBLE
    found = check_session_findings(session, patient=patient, screening=result,
                                   policy=DEFAULT_POLICY)
    assert [(f.code, f.path) for f in found] == [("protocol.screening.not_eligible", "session")]
    eligible = screen(_patient(), on=session.date, sites=session.insertions)
    assert check_session_findings(session, patient=patient, screening=eligible,
                                  policy=DEFAULT_POLICY) == []


def test_guideline_policy_bleeding_risk() -> None:
    """Guideline policy: antithrombotics are a precaution, but deep psoas stays an error."""
    patient = _patient(anticoagulant_therapy=True)
    session = _session(_gluteus(), _gluteus(muscle="psoas", side=model.Side.LEFT))
    report = validate_session(session, patient=patient, policy=GUIDELINE_POLICY)
    assert report.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS
    assert [(f.code, f.path, f.severity.value) for f in report.findings] == [
        ("protocol.bleeding.precaution", "session.insertions[0]", "warning"),
        ("protocol.bleeding.no_palpable_haemostasis", "session.insertions[1]", "error"),
        ("protocol.screening.site_excluded", "session.insertions[1]", "error"),
    ]


def test_on_date_is_used_for_screening() -> None:
    """``on`` overrides the session date for screening (age on that date)."""
    patient = attrs.evolve(_patient(), birth_date=date(2014, 12, 1))
    session = _session(_gluteus())
    assert validate_session(session, patient=patient).decision is Decision.NOT_ELIGIBLE
    later = validate_session(session, patient=patient, on=date(2027, 1, 1))
    assert later.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS
    assert "protocol.screening.not_eligible" not in codes(later)


def test_series_checks_inside_validate_session() -> None:
    """With ``previous``, validate_session runs the series checks about this session."""
    first = _session(_gluteus(), session_id="s-a", date=date(2026, 11, 1), number=1)
    same_day = _session(_gluteus(), session_id="s-b", date=date(2026, 11, 1), number=2)
    p = _patient()
    assert codes(validate_session(same_day, patient=p, previous=[first])) == ["series.same_day"]
    backwards = _session(_gluteus(), session_id="s-c", date=date(2026, 10, 1), number=2)
    assert codes(validate_session(backwards, patient=p, previous=[first])) == [
        "series.number_order"]
    not_first = _session(_gluteus(), session_id="s-d", date=date(2026, 10, 1), number=3)
    assert codes(validate_session(not_first, patient=p, previous=[_session(
        _gluteus(), session_id="s-e", date=date(2026, 12, 1), number=4)])) == [
        "series.first_session_number"]
    # The session itself inside ``previous`` is ignored; no previous means no series checks.
    assert codes(validate_session(first, patient=p, previous=[first])) == []
    assert codes(validate_session(not_first, patient=p)) == []


def test_duplicate_conflicts_are_reported_once() -> None:
    """Several conflicting previous sessions give one finding per code and path."""
    prev = [_session(_gluteus(), session_id=f"s-{k}", date=date(2026, 11, 20), number=2)
            for k in range(3)]
    this = _session(_gluteus(), date=date(2026, 11, 20), number=2)
    assert codes(validate_session(this, patient=_patient(), previous=prev)) == [
        "series.same_day", "series.number_order"]


def test_latest_previous_session_decides_tolerance() -> None:
    """Only the latest earlier session decides whether needles may be added."""
    bad = model.AdverseEvent(kind=model.AdverseEventKind.FAINTING,
                             grade=model.AdverseEventGrade.SIGNIFICANT)
    old_bad = _session(_gluteus(), session_id="s-1", date=date(2026, 1, 1), number=1,
                       adverse_events=(bad,))
    recent_ok = _session(_gluteus(), session_id="s-2", date=date(2026, 2, 1), number=2)
    future_bad = _session(_gluteus(), session_id="s-4", date=date(2026, 4, 1), number=4,
                          adverse_events=(bad,))
    this = _session(_gluteus(), _gluteus(muscle="piriformis"), date=date(2026, 3, 1), number=3)
    p = _patient()
    assert codes(validate_session(this, patient=p, previous=[future_bad, old_bad, recent_ok])
                 ) == []
    assert codes(validate_session(this, patient=p, previous=[old_bad])) == [
        "protocol.needles.increase_after_poor_tolerance"]


# --- properties ----------------------------------------------------------------------------------

_weird_number = st.sampled_from([-5.0, -0.0, 0.0, 1e308, 1e-300, -1e308])


@st.composite
def adversarial_sessions(draw: st.DrawFn) -> model.Session:
    """Generated sessions, some with extreme depths, dwell times, numbers and unknown muscles."""
    session = draw(sessions())
    out = []
    for original in session.insertions:
        ins = original
        if draw(st.booleans()):
            ins = attrs.evolve(ins, depth_mm=draw(_weird_number),
                               dwell_s=draw(st.none() | _weird_number))
        if draw(st.integers(0, 9)) == 0:
            ins = attrs.evolve(ins, muscle="unknown_muscle")
        out.append(ins)
    number = draw(st.sampled_from([session.number, 1, 10**9]))
    return attrs.evolve(session, insertions=tuple(out), number=number)


@pytest.mark.parametrize("number", [0, -1, None, True, 1.0])
def test_the_model_refuses_impossible_session_numbers(number: object) -> None:
    """A session number is an integer >= 1: anything else cannot reach the rules at all."""
    with pytest.raises((TypeError, ValueError)):
        attrs.evolve(_session(_gluteus()), number=number)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(adversarial_sessions(), st.none() | patients(),
       st.lists(sessions(max_insertions=3), max_size=3),
       st.sampled_from([DEFAULT_POLICY, GUIDELINE_POLICY]))
def test_never_raises_on_generated_sessions(
    session: model.Session, patient: model.Patient | None, previous: list[model.Session],
    policy: Policy,
) -> None:
    """validate_session never raises and its validity is exactly 'no error finding'."""
    report = validate_session(session, patient=patient, previous=previous, policy=policy)
    assert report.valid is all(f.severity is not Severity.ERROR for f in report.findings)
    assert all(f.code.startswith(("protocol.", "series.")) for f in report.findings)
    assert all(set(f.sources) <= set(SOURCES) and f.sources for f in report.findings)
    # Deterministic: same input, same result.
    assert validate_session(session, patient=patient, previous=previous,
                            policy=policy) == report


_INSERTION_PATH = re.compile(r"^session\.insertions\[(\d+)\](.*)$")


def _insertion_errors(report: ProtocolReport, removed: int | None = None) -> set[tuple[str, str]]:
    """Errors about single insertions, with indices mapped back to before ``removed``."""
    out = set()
    for f in report.findings:
        m = _INSERTION_PATH.match(f.path)
        if f.severity is Severity.ERROR and m:
            i = int(m[1])
            if removed is not None and i >= removed:
                i += 1
            out.add((f.code, f"session.insertions[{i}]{m[2]}"))
    return out


@settings(max_examples=150, deadline=None)
@given(sessions(max_insertions=5).filter(lambda s: len(s.insertions) > 0), patients(),
       st.data())
def test_removing_an_insertion_adds_no_error_about_another(
    session: model.Session, patient: model.Patient, data: st.DataObject,
) -> None:
    """Removing insertion k never adds an error about a different insertion."""
    k = data.draw(st.integers(0, len(session.insertions) - 1))
    smaller = attrs.evolve(session,
                           insertions=session.insertions[:k] + session.insertions[k + 1:])
    before = _insertion_errors(validate_session(session, patient=patient))
    after = _insertion_errors(validate_session(smaller, patient=patient), removed=k)
    assert after <= before


_junk = st.one_of(
    st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(records(), _junk), max_size=8))
def test_one_report_per_input(inputs: list[Any]) -> None:
    """validate_records with protocol checks yields exactly one report per input, in order."""
    reports = list(validate_records(inputs))
    assert [r.index for r in reports] == list(range(len(inputs)))


@settings(max_examples=60, deadline=None)
@given(records())
def test_records_path_equals_direct_api(data: dict[str, Any]) -> None:
    """Protocol findings of validate_records equal check_session_findings on the model."""
    (report,) = validate_records([data], checks=("structure", "screening", "protocol"))
    rec = structure_record(data)
    direct = check_session_findings(rec.session, patient=rec.patient, screening=None,
                                    policy=DEFAULT_POLICY)
    assert [f for f in report.findings if f.code.startswith("protocol.")] == direct


# --- examples/sessions.jsonl ----------------------------------------------------------------------

EXAMPLES = ROOT / "examples" / "sessions.jsonl"
_PART = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


def resolve(data: Any, path: str) -> Iterator[Any]:
    """Yield the values along a record-rooted path (raises KeyError/IndexError if absent)."""
    node = data
    for part in path.split("."):
        m = _PART.fullmatch(part)
        assert m, part
        node = node[m[1]]
        if m[2] is not None:
            node = node[int(m[2])]
        yield node


@pytest.mark.skipif(not EXAMPLES.exists(), reason="examples/sessions.jsonl not generated yet")
def test_examples_report_protocol_findings_with_exact_paths() -> None:
    """validate on the shipped examples reports protocol findings at paths that exist."""
    lines = EXAMPLES.read_bytes().splitlines()
    found: dict[str, int] = {}
    for line, report in zip(lines, validate_records(lines), strict=True):
        for f in report.findings:
            if not f.code.startswith(("protocol.", "series.")):
                continue
            found[f.code] = found.get(f.code, 0) + 1
            data = json.loads(line)
            parent = f.path.rpartition(".")[0]
            list(resolve(data, parent or f.path))
            if not f.code.endswith(".unknown"):
                list(resolve(data, f.path))  # the value the finding is about exists
    # The problems examples/README.md promises, each reported by its protocol rule.
    for code in (
        "protocol.lung.depth_limit", "protocol.depth.superficial_range", "protocol.dwell.range",
        "protocol.needles.first_session", "protocol.lung.both_sides",
        "protocol.practitioner.untrained", "protocol.post.needles_removed",
        "protocol.bleeding.no_palpable_haemostasis",
    ):
        assert found.get(code, 0) > 0, code


@pytest.mark.skipif(not EXAMPLES.exists(), reason="examples/sessions.jsonl not generated yet")
def test_examples_finding_values_match_the_rule() -> None:
    """Each depth/dwell finding on the examples points at a value that breaks its limit."""
    lines = EXAMPLES.read_bytes().splitlines()
    p = DEFAULT_POLICY
    for line, report in zip(lines, validate_records(lines), strict=True):
        for f in report.findings:
            if f.code == "protocol.depth.superficial_range":
                *_, depth = resolve(json.loads(line), f.path)
                assert not p.superficial_min_depth_mm <= depth <= p.superficial_max_depth_mm
            elif f.code == "protocol.dwell.range":
                *_, dwell = resolve(json.loads(line), f.path)
                assert not p.dwell_min_s <= dwell <= p.dwell_max_s
            elif f.code == "protocol.lung.depth_limit":
                *_, depth = resolve(json.loads(line), f.path)
                assert depth > 19.0


# --- untyped callers ---------------------------------------------------------------------------
# The model converts enum strings to members and datetimes to dates, and refuses mistyped
# answers and non-finite numbers at construction; protocol sees what it converted.


def _raw(value: object) -> Any:
    """A plain value where the model declares an enum or a date (as untyped callers pass)."""
    return value


def test_plain_strings_for_enums_match_the_enums() -> None:
    """Enum values passed as plain strings are read exactly like the enum members."""
    typed = _session(
        _gluteus(muscle="psoas", side=model.Side.LEFT),
        _gluteus(muscle="upper_trapezius", side=model.Side.LEFT, depth_mm=35.0),
        _gluteus(muscle="middle_trapezius", side=model.Side.RIGHT,
                 technique=model.Technique.SUPERFICIAL, depth_mm=8.0,
                 manipulation=model.Manipulation.STATIC, dwell_s=1.0),
        number=2,
    )
    untyped = _session(
        _gluteus(muscle="psoas", side=_raw("left"), technique=_raw("deep"),
                 manipulation=_raw("pistoning")),
        _gluteus(muscle="upper_trapezius", side=_raw("left"), technique=_raw("deep"),
                 depth_mm=35.0),
        _gluteus(muscle="middle_trapezius", side=_raw("right"), technique=_raw("superficial"),
                 depth_mm=8.0, manipulation=_raw("static"), dwell_s=1.0),
        number=2,
    )
    patient = _patient(anticoagulant_therapy=True)
    assert codes(validate_session(untyped, patient=patient)) == codes(
        validate_session(typed, patient=patient))
    assert "protocol.bleeding.no_palpable_haemostasis" in codes(
        validate_session(untyped, patient=patient))


def test_datetime_session_dates_are_read_as_dates() -> None:
    """Sessions dated with datetimes (a date subclass) compare with dated ones, no raise."""
    from datetime import datetime  # noqa: PLC0415

    first = _session(_gluteus(), session_id="s-a", date=date(2026, 11, 1))
    later = _session(_gluteus(), session_id="s-b", date=_raw(datetime(2026, 11, 1, 15, 0)),
                     number=2)
    assert codes(validate_session(later, patient=_patient(), previous=[first])) == [
        "series.same_day"]
    assert [f.code for _, f in validate_series([later, first])] == ["series.same_day"]


def test_lung_depth_finding_cites_the_limit_that_applied() -> None:
    """A muscle's own limit cites its source; the policy limit elsewhere does not cite it."""
    rhomboid = _session(_gluteus(muscle="rhomboid_major", depth_mm=25.0))
    # Directed away from the lung: the depth limit applies whatever the direction.
    trapezius = _session(_gluteus(muscle="upper_trapezius", depth_mm=35.0,
                                  directed_away_from_lung=True))
    (r, _) = validate_session(rhomboid, patient=_patient()).findings
    (t, _) = validate_session(trapezius, patient=_patient()).findings
    assert r.code == t.code == "protocol.lung.depth_limit"
    assert "valera-calero-rhomboid" in r.sources
    assert t.sources == ("za-bn121",)  # munoz-2022 (antithrombotics) is no basis for it
