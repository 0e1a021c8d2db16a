"""Safety hardening, area policy (issue #12 items 1, 2, 11, 12; spec 1.1).

* Item 1 -- a policy can never weaken a safety floor, by any route (severity, effect, limit,
  a rule switched off), and every limit has a type, unit and plausible range;
* item 2 -- the triage emergencies of §5 and the plan's emergency wording;
* item 11 -- unreadable input fails closed: the plan and the triage are still given;
* item 12 -- citations: each rule's sources support it, and grade-C-only rules say so.

Vectors (data, each citing its sources, both sides of each boundary) are in
``tests/data/safety_policy_vectors.json``; each is run under both built-in policies, on the API
and on the CLI. Hypothesis properties: (a) no policy weakens a floor; (d) no policy and no added
symptom lowers the triage level.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.aftercare import (
    TRIAGE_ORDER,
    ReportError,
    TriageLevel,
    aftercare_plan,
    structure_report,
    triage,
    unreadable_findings,
)
from dryneedle.cli import main
from dryneedle.findings import (
    DECISION_ORDER,
    EFFECT_DECISION,
    Decision,
    Effect,
    Finding,
    Rule,
    Severity,
    all_rules,
    get_rule,
)
from dryneedle.policy import (
    DEFAULT_POLICY,
    FAIL_CLOSED,
    GUIDELINE_POLICY,
    POLICIES,
    Policy,
    load_policy,
    loads_policy,
)
from dryneedle.protocol import validate_session
from dryneedle.screening import screen
from dryneedle.sources import SOURCES

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "safety_policy_vectors.json").read_text("utf-8"))
BASES = ("default", "guideline")
ON = date(2026, 11, 27)
_SEV = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}
_LEVEL_OF = {Severity.INFO: TriageLevel.EXPECTED, Severity.WARNING: TriageLevel.CONTACT_CLINIC,
             Severity.ERROR: TriageLevel.URGENT}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_vectors_cite_known_sources() -> None:
    """Every vector cites at least one registered source."""
    for section in ("policy", "triage", "plan"):
        for case in VECTORS[section]:
            assert case["sources"], case["id"]
            assert set(case["sources"]) <= set(SOURCES), case["id"]


# --- item 1: floors and limits -------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("case", VECTORS["policy"], ids=lambda c: c["id"])
def test_policy_vector_api(case: dict[str, Any], base: str) -> None:
    """The loader refuses exactly the weakening / implausible vectors, naming the rule or limit."""
    data = {"base": base, "justification": "safety vector", **case["policy"]}
    if case["refused"] is None:
        policy = load_policy(data)
        for name, value in case["policy"].get("limits", {}).items():
            expected = value["value"] if isinstance(value, dict) else value
            assert getattr(policy, name) == expected
    else:
        with pytest.raises(ValueError, match=case["refused"].replace(".", r"\.")):
            load_policy(data)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("case", [c for c in VECTORS["policy"] if c["refused"]][::3],
                         ids=lambda c: c["id"])
def test_policy_vector_cli(case: dict[str, Any], base: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """``--policy FILE`` with a refused override exits 2 with the rule or limit named."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"base": base, "justification": "v", **case["policy"]}))
    code, out, err = run(capsys, "rules", "--policy", str(path))
    assert code == 2
    assert out == ""
    assert case["refused"] in err


def test_reported_route_is_closed_on_the_cli(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The reproduction: effect ``note`` on lung symptoms no longer makes chest pain expected."""
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"justification": "x", "rules": {
        "aftercare.triage.lung_symptoms": {"effect": "note"}}}))
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"hours_since_session": 2, "symptoms": [{"kind": "chest_pain"}]}))
    session = tmp_path / "s.json"
    session.write_text(json.dumps(_session_json(["pectoralis_major"])))
    code, out, err = run(capsys, "triage", str(report), "--session", str(session),
                         "--policy", str(policy))
    assert code == 2
    assert "This is expected" not in out
    assert "aftercare.triage.lung_symptoms" in err
    code, out, _ = run(capsys, "triage", str(report), "--session", str(session))
    assert code == 1
    assert out.startswith("Get emergency care now.")


def test_direct_construction_cannot_weaken_a_floor_either() -> None:
    """Policy(...) and RuleOverride routes are checked too, not only load_policy."""
    from dryneedle.policy import RuleOverride  # noqa: PLC0415

    with pytest.raises(ValueError, match="fainting"):
        Policy(rule_overrides=(RuleOverride(rule_id="aftercare.triage.fainting",
                                            effect=Effect.NOTE, justification="x"),))
    with pytest.raises(ValueError, match="min_age_years"):
        Policy(min_age_years=5)
    with pytest.raises(ValueError, match="over_lung_max_depth_mm"):
        Policy(over_lung_max_depth_mm=40.0)


def test_floors_are_data() -> None:
    """Floors are declared in rules.toml: the unknown-answer rules, physical impossibilities and
    triage emergencies are floors; FAIL_CLOSED is derived from the registry."""
    floors = {r.id for r in all_rules() if r.floor}
    assert set(FAIL_CLOSED) == floors
    for rid in ("screening.unknown_answer", "screening.birth_date_implausible",
                "protocol.depth.beyond_needle", "protocol.depth.not_positive",
                "protocol.depth.unknown", "protocol.muscle.unknown",
                "aftercare.triage.lung_symptoms", "aftercare.triage.fainting",
                "aftercare.triage.chest_symptoms_severe", "aftercare.triage.infection_signs",
                "aftercare.triage.severe_symptom", "aftercare.triage.timing_unknown",
                "aftercare.input.unreadable"):
        assert rid in floors, rid
    for r in all_rules():  # every "unknown" rule is a floor
        if r.id.endswith(".unknown") or r.id.endswith("_unknown"):
            assert r.floor, r.id
    for policy in POLICIES.values():  # the built-in policies keep every floor
        for o in policy.rule_overrides:
            assert not get_rule(o.rule_id).floor


def test_every_limit_has_a_documented_range_type_and_direction() -> None:
    """Each limit has a type, unit, plausible range; floors have a direction; defaults fit."""
    for lim in DEFAULT_POLICY.limits():
        assert lim.kind in ("int", "float"), lim.name
        assert lim.minimum is not None, lim.name
        assert lim.maximum is not None, lim.name
        assert lim.minimum <= lim.default <= lim.maximum, lim.name
        assert isinstance(lim.default, int if lim.kind == "int" else float), lim.name
        if lim.floor:
            assert lim.stricter in ("higher", "lower"), lim.name
        assert lim.range_text.startswith(lim.kind), lim.name
    floors = {lim.name: lim.stricter for lim in DEFAULT_POLICY.limits() if lim.floor}
    assert floors == {"min_age_years": "higher", "recent_surgery_days": "higher",
                      "over_lung_max_depth_mm": "lower", "needle_length_max_mm": "lower",
                      "pleura_depth_margin_mm": "higher"}


@pytest.mark.parametrize("content", [b"\0" * 2_000_001, b"[" * 100_000, b"{\"a\":" * 100_000,
                                     b'{"justification": "x", "rules": ' + b"[" * 20 + b"]" * 20
                                     + b"}"])
def test_pathological_policy_files_exit_2_quickly(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Huge or deeply nested policy files are refused quickly (exit 2), never a hang or crash."""
    path = tmp_path / "p.json"
    path.write_bytes(content)
    start = time.perf_counter()
    code, _, err = run(capsys, "rules", "--policy", str(path))
    assert code == 2
    assert "invalid policy file" in err
    assert time.perf_counter() - start < 5


def test_dev_zero_policy_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """``--policy /dev/zero`` (an endless stream) is bounded by the size cap."""
    if not Path("/dev/zero").exists():  # pragma: no cover - non-POSIX
        pytest.skip("no /dev/zero")
    code, _, err = run(capsys, "rules", "--policy", "/dev/zero")
    assert code == 2
    assert "at most" in err


def test_loads_policy_accepts_a_normal_file() -> None:
    """A normal policy file loads through the bounded path."""
    p = loads_policy(b'{"base": "guideline", "justification": "j", '
                     b'"limits": {"recent_surgery_days": {"value": 120, "unit": "days"}}}')
    assert (p.recent_surgery_days, p.name) == (120, "guideline+override")


# --- triggers of every floor rule ----------------------------------------------------------------


def _ins(muscle: str = "gluteus_medius", **kw: Any) -> model.Insertion:
    values: dict[str, Any] = {
        "muscle": muscle, "side": model.Side.RIGHT, "technique": model.Technique.DEEP,
        "depth_mm": 30.0, "manipulation": model.Manipulation.PISTONING,
        "needle": model.Needle(diameter_mm=0.3, length_mm=50.0), "guide_tube": True,
    }
    values.update(kw)
    return model.Insertion(**values)


def _sess(*insertions: model.Insertion, **kw: Any) -> model.Session:
    values: dict[str, Any] = {
        "session_id": "s-1", "date": date(2026, 11, 20), "number": 2,
        "practitioner": model.Practitioner(practitioner_id="pt-1", dry_needling_trained=True),
        "pre": model.PreSteps(history_reviewed=True, physical_exam=True, consent=True,
                              skin_disinfected=True),
        "insertions": insertions or (_ins(),),
        "post": model.PostSteps(needles_removed=len(insertions or (1,)), skin_checked=True),
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
    birth = history.pop("birth_date", date(1980, 5, 1))
    answers.update(history)
    return model.Patient(patient_id="p-1", birth_date=birth, sex=model.Sex.MALE,
                         history=model.History(**answers))


def _session_json(muscles: list[str]) -> dict[str, Any]:
    return {"session_id": "s-1", "date": "2026-03-02", "number": 2,
            "practitioner": {"practitioner_id": "pt-1"},
            "insertions": [{"muscle": m, "side": "left", "technique": "superficial",
                            "depth_mm": 8, "manipulation": "static", "dwell_s": 300}
                           for m in muscles],
            "adverse_events": []}


def _symptom_session(muscles: list[str] | None) -> model.Session | None:
    if muscles is None:
        return None
    return _sess(*(_ins(m, technique=model.Technique.SUPERFICIAL, depth_mm=8.0) for m in muscles))


CALF = _symptom_session(["gastrocnemius"])
CHEST = _symptom_session(["pectoralis_major"])


Trigger = Callable[[Policy], tuple[tuple[Finding, ...], Decision | None]]


def _triage(kind: str, *, severity: str | None = None, hours: float | None = 3,
            session: model.Session | None = CALF, unreadable: tuple[str, ...] = ()
            ) -> Trigger:
    symptom: dict[str, Any] = {"kind": kind}
    if severity is not None:
        symptom["severity"] = severity
    report = structure_report({"hours_since_session": hours, "symptoms": [symptom]})

    def fire(policy: Policy) -> tuple[tuple[Finding, ...], Decision | None]:
        follow = triage(report, session=session, policy=policy, unreadable=unreadable)
        return (*follow.reasons, *follow.findings), None
    return fire


def _protocol(session: model.Session, patient: model.Patient | None) -> Trigger:
    def fire(policy: Policy) -> tuple[tuple[Finding, ...], Decision | None]:
        return validate_session(session, patient=patient, policy=policy, on=ON).findings, None
    return fire


def _screening(patient: model.Patient, sites: list[Any] | None = None) -> Trigger:
    def fire(policy: Policy) -> tuple[tuple[Finding, ...], Decision | None]:
        result = screen(patient, on=ON, sites=sites or (), policy=policy)
        return result.findings, result.decision
    return fire


_PRE_STEP_NAMES = ("history_reviewed", "physical_exam", "consent", "skin_disinfected")
_UNKNOWN_PRE = model.PreSteps(history_reviewed=None, physical_exam=None, consent=None,
                              skin_disinfected=None)
TRIGGERS: dict[str, Trigger] = {
    "aftercare.triage.timing_unknown": _triage("soreness", hours=None),
    "aftercare.triage.infection_signs": _triage("fever"),
    "aftercare.triage.fainting": _triage("fainting"),
    "aftercare.triage.bleeding": _triage("bleeding"),
    "aftercare.triage.lung_symptoms": _triage("chest_pain", session=CHEST),
    "aftercare.triage.chest_symptoms": _triage("breathlessness", severity="mild"),
    "aftercare.triage.chest_symptoms_severe": _triage("chest_pain", severity="severe"),
    "aftercare.triage.severe_symptom": _triage("soreness", severity="severe", hours=10),
    "aftercare.triage.unlisted_symptom": _triage("other"),
    "aftercare.input.unreadable": _triage("soreness", hours=10, unreadable=("patient.sex",)),
    "protocol.muscle.unknown": _protocol(_sess(_ins("no_such_muscle")), _patient()),
    "protocol.depth.unknown": _protocol(_sess(_ins(depth_mm=None)), _patient()),
    "protocol.depth.not_positive": _protocol(_sess(_ins(depth_mm=-1.0)), _patient()),
    "protocol.depth.beyond_needle": _protocol(
        _sess(_ins(depth_mm=45.0, needle=model.Needle(diameter_mm=0.3, length_mm=40.0))),
        _patient()),
    "protocol.lung.depth_limit": _protocol(_sess(_ins("rhomboid_major", depth_mm=25.0)),
                                           _patient()),
    "protocol.lung.both_sides": _protocol(
        _sess(_ins("rhomboid_major", depth_mm=12.0, side=model.Side.LEFT),
              _ins("rhomboid_major", depth_mm=12.0, side=model.Side.RIGHT)), _patient()),
    "protocol.dwell.unknown": _protocol(
        _sess(_ins(manipulation=model.Manipulation.STATIC, dwell_s=None)), _patient()),
    "protocol.dwell.range": _protocol(
        _sess(_ins(manipulation=model.Manipulation.STATIC, dwell_s=-1.0)), _patient()),
    "protocol.bleeding.no_palpable_haemostasis": _protocol(
        _sess(_ins("psoas", depth_mm=40.0, needle=model.Needle(diameter_mm=0.3,
                                                              length_mm=75.0))),
        _patient(anticoagulant_therapy=True)),
    "protocol.bleeding.unknown": _protocol(
        _sess(_ins("psoas", depth_mm=40.0, needle=model.Needle(diameter_mm=0.3,
                                                              length_mm=75.0))),
        _patient(anticoagulant_therapy=None)),
    "protocol.practitioner.unknown": _protocol(
        _sess(practitioner=model.Practitioner(practitioner_id="pt-1")), _patient()),
    "protocol.pre.history_reviewed.unknown": _protocol(_sess(pre=_UNKNOWN_PRE), _patient()),
    "protocol.pre.physical_exam.unknown": _protocol(_sess(pre=_UNKNOWN_PRE), _patient()),
    "protocol.pre.consent.unknown": _protocol(_sess(pre=_UNKNOWN_PRE), _patient()),
    "protocol.pre.skin_disinfected.unknown": _protocol(_sess(pre=_UNKNOWN_PRE), _patient()),
    "protocol.post.needles_removed.unknown": _protocol(
        _sess(post=model.PostSteps(needles_removed=None, skin_checked=True)), _patient()),
    "protocol.post.skin_checked.unknown": _protocol(
        _sess(post=model.PostSteps(needles_removed=1, skin_checked=None)), _patient()),
    # The clinical area's floors (spec 1.1 §4): pleura, physical impossibility, unknowns.
    "protocol.lung.pleura_depth": _protocol(
        _sess(_ins("upper_trapezius", depth_mm=20.0, directed_away_from_lung=None)),
        _patient()),
    "protocol.depth.beyond_longest_needle": _protocol(
        _sess(_ins(depth_mm=160.0, needle=model.Needle(diameter_mm=0.3, length_mm=None))),
        _patient()),
    "protocol.needle.length.unknown": _protocol(
        _sess(_ins(depth_mm=30.0, needle=model.Needle(diameter_mm=0.3, length_mm=None))),
        _patient()),
    "protocol.screening.needs_review": _protocol(_sess(_ins()), _patient(diabetes=None)),
    # Known-bad counterparts of the unknown floors are floors too (never weaker than unknown).
    "protocol.screening.not_eligible": _protocol(_sess(_ins()), _patient(consent=False)),
    "protocol.screening.site_excluded": _protocol(
        _sess(_ins()), model.Patient(
            patient_id="p-1", birth_date=date(1980, 5, 1), sex=model.Sex.MALE,
            history=_patient().history,
            site_findings=(model.SiteFinding(region="pelvis", side="right", kind="tattoo"),))),
    "protocol.practitioner.untrained": _protocol(
        _sess(practitioner=model.Practitioner(practitioner_id="pt-1",
                                              dry_needling_trained=False)), _patient()),
    **{f"protocol.pre.{step}": _protocol(
        _sess(pre=model.PreSteps(**{s: s != step for s in _PRE_STEP_NAMES})), _patient())
       for step in _PRE_STEP_NAMES},
    "protocol.post.needles_removed": _protocol(
        _sess(post=model.PostSteps(needles_removed=0, skin_checked=True)), _patient()),
    "protocol.post.skin_checked": _protocol(
        _sess(post=model.PostSteps(needles_removed=1, skin_checked=False)), _patient()),
    "screening.unknown_answer": _screening(_patient(diabetes=None)),
    "screening.birth_date_implausible": _screening(_patient(birth_date=date(2030, 1, 1))),
    "screening.bleeding_risk_site": _screening(_patient(bleeding_disorder=True),
                                               [("psoas", "right", "deep")]),
}


def _report_unknown_field_fires() -> bool:
    try:
        structure_report({"hours_since_session": 3, "symptoms": [{"kind": "soreness",
                                                                  "sevrity": "mild"}]})
    except ReportError as exc:
        return any(f.code == "aftercare.report.unknown_field" for f in exc.findings)
    return False


def test_every_floor_rule_has_a_trigger() -> None:
    """The property below covers every floor rule (the report rule is policy-independent)."""
    assert set(TRIGGERS) | {"aftercare.report.unknown_field"} == set(FAIL_CLOSED)
    assert _report_unknown_field_fires()


def _check_floors(policy: Policy) -> None:
    """Every floor rule fires on its trigger at >= its built-in severity (and decision)."""
    for rule_id, fire in TRIGGERS.items():
        rule: Rule = get_rule(rule_id)
        findings, decision = fire(policy)
        mine = [f for f in findings if f.code == rule_id]
        assert mine, (rule_id, policy.as_dict())
        assert max(_SEV[f.severity] for f in mine) >= _SEV[rule.severity], rule_id
        if decision is not None and rule.effect is not None:
            wanted = EFFECT_DECISION[rule.effect]
            assert wanted is not None
            assert DECISION_ORDER[decision] >= DECISION_ORDER[wanted], rule_id
    assert _report_unknown_field_fires()


@pytest.mark.parametrize("policy", [DEFAULT_POLICY, GUIDELINE_POLICY], ids=lambda p: p.name)
def test_floor_triggers_fire_under_the_built_in_policies(policy: Policy) -> None:
    """Under both built-in policies every floor fires at its built-in strength."""
    _check_floors(policy)


# --- property (a): no policy weakens a floor -----------------------------------------------------

_RULE_IDS = sorted(r.id for r in all_rules())
_FLOOR_IDS = sorted(FAIL_CLOSED)
_LIMITS = [lim.name for lim in DEFAULT_POLICY.limits()]
_JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=4),
                  st.lists(st.integers(), max_size=2),
                  st.floats(allow_nan=True, allow_infinity=True))
_NUMBERS = st.one_of(st.integers(-1000, 5000), st.floats(-1e3, 1e4, allow_nan=False),
                     st.sampled_from([0, 1, 2, 7, 10, 12, 18, 25, 31, 36, 90, 150, 1200, 1e308]))
_PLAUSIBLE = st.sampled_from([lim.value for lim in DEFAULT_POLICY.limits()]).flatmap(
    lambda v: st.sampled_from([v, v * 0.9, v * 1.1, v + 1, v - 1]))
_LIMIT_VALUES = st.one_of(_PLAUSIBLE, _PLAUSIBLE, _PLAUSIBLE, _NUMBERS, _JUNK,
                          st.fixed_dictionaries({"value": _NUMBERS,
                                                 "unit": st.sampled_from(["mm", "s", "cm"])}))
_SEVERITIES = st.one_of(*[st.sampled_from([s.value for s in Severity])] * 4, _JUNK)
_EFFECTS = st.one_of(*[st.sampled_from([e.value for e in Effect])] * 4, _JUNK)
_OVERRIDE = st.fixed_dictionaries({}, optional={"severity": _SEVERITIES, "effect": _EFFECTS})
policy_files = st.fixed_dictionaries(
    {"justification": st.sampled_from(["clinic board decision"] * 5 + [""])},
    optional={
        "base": st.sampled_from(["default", "guideline"] * 3 + ["lenient"]),
        "limits": st.dictionaries(st.sampled_from([*_LIMITS, "bogus_limit"]), _LIMIT_VALUES,
                                  max_size=3),
        "rules": st.dictionaries(st.one_of(st.sampled_from(_FLOOR_IDS),
                                           st.sampled_from(_RULE_IDS)), _OVERRIDE, max_size=3),
    },
)


@settings(max_examples=150)
@given(policy_files)
def test_no_policy_weakens_a_floor(data: dict[str, Any]) -> None:
    """Property (a): the loader refuses the file, or every floor still fires at full strength."""
    try:
        policy = load_policy(data)
    except (ValueError, KeyError):
        return
    _check_floors(policy)
    for lim in policy.limits():  # accepted limits are plausible and floors kept
        assert lim.minimum is not None
        assert lim.maximum is not None
        assert lim.minimum <= lim.value <= lim.maximum, lim.name
        if lim.floor:
            weaker = lim.value < lim.default if lim.stricter == "higher" else (
                lim.value > lim.default)
            assert not weaker, lim.name


# --- property (d): triage level never lowered ----------------------------------------------------

_KINDS = ["soreness", "stiffness", "bruising", "spreading_redness", "warmth", "pus", "fever",
          "fainting", "bleeding", "breathlessness", "chest_pain", "other"]
symptoms = st.fixed_dictionaries(
    {"kind": st.sampled_from(_KINDS)},
    optional={"severity": st.sampled_from(["mild", "moderate", "severe"]),
              "duration_h": st.one_of(st.none(), st.floats(0, 400))},
)
_SESSIONS = [None, CALF, CHEST, _symptom_session(["levator_scapulae"]),
             _symptom_session(["deltoid"]), _symptom_session(["not_in_catalog"]),
             _symptom_session(["vastus_lateralis", "masseter"])]


def _floor_level(report: Any, session: model.Session | None) -> int:
    """The level the floor rules alone give under their built-in severities."""
    follow = triage(report, session=session)
    levels = [TRIAGE_ORDER[_LEVEL_OF[get_rule(r.code).severity]]
              for r in follow.reasons if get_rule(r.code).floor]
    return max(levels, default=0)


@settings(max_examples=150)
@given(policy_files, st.lists(symptoms, max_size=3), symptoms,
       st.sampled_from(range(len(_SESSIONS))), st.one_of(st.none(), st.floats(0, 400)))
def test_no_policy_and_no_added_symptom_lowers_the_level(
    data: dict[str, Any], listed: list[dict[str, Any]], extra: dict[str, Any], which: int,
    hours: float | None,
) -> None:
    """Property (d): under any accepted policy the level is at least the floors' built-in level,
    and adding a symptom never lowers it."""
    try:
        policy = load_policy(data)
    except (ValueError, KeyError):
        policy = DEFAULT_POLICY
    session = _SESSIONS[which]
    report = structure_report({"hours_since_session": hours, "symptoms": listed})
    more = structure_report({"hours_since_session": hours, "symptoms": [*listed, extra]})
    level = TRIAGE_ORDER[triage(report, session=session, policy=policy).level]
    assert level >= _floor_level(report, session)
    assert TRIAGE_ORDER[triage(more, session=session, policy=policy).level] >= level
    for builtin in POLICIES.values():
        assert TRIAGE_ORDER[triage(report, session=session, policy=builtin).level] >= (
            _floor_level(report, session))


# --- item 2: triage emergencies and plan wording -------------------------------------------------


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("case", VECTORS["triage"], ids=lambda c: c["id"])
def test_triage_vector_api(case: dict[str, Any], base: str) -> None:
    """Each triage vector's level, under both built-in policies."""
    report = structure_report(case["report"])
    follow = triage(report, session=_symptom_session(case["muscles"]), policy=POLICIES[base],
                    unreadable=case["unreadable"] or ())
    assert follow.level.value == case["level"]
    for reason in follow.reasons:
        assert reason.sources
    if case["unreadable"]:
        assert [f.code for f in follow.findings] == ["aftercare.input.unreadable"]
        assert follow.near_lung is None


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("case", VECTORS["triage"], ids=lambda c: c["id"])
def test_triage_vector_cli(case: dict[str, Any], base: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """The same vectors through ``dryneedle triage --session`` (a typo makes it unreadable)."""
    report = tmp_path / "r.json"
    report.write_text(json.dumps(case["report"]))
    argv = ["triage", str(report), "--format", "json", "--policy", base]
    if case["muscles"] is not None:
        session = _session_json(case["muscles"])
        if case["unreadable"]:
            record: dict[str, Any] = {
                "format": "dryneedle.session/1", "record_id": "r-1",
                "patient": {"patient_id": "p-1", "sex": "F"}, "session": session}
            if case["unreadable"][0].startswith("session"):
                record["patient"]["sex"] = "male"
                session["insertions"][0]["muscle"] = "no_such_muscle"
            doc: Any = record
        else:
            doc = session
        path = tmp_path / "s.json"
        path.write_text(json.dumps(doc))
        argv += ["--session", str(path)]
    code, out, _ = run(capsys, *argv)
    data = json.loads(out)
    assert data["level"] == case["level"]
    failed = case["level"] != "expected" or bool(case["unreadable"])
    assert code == (1 if failed else 0)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("case", VECTORS["plan"], ids=lambda c: c["id"])
def test_plan_vector_api(case: dict[str, Any], base: str) -> None:
    """Each plan vector's lines present / absent, under both built-in policies."""
    plan = aftercare_plan(_symptom_session(case["muscles"]), policy=POLICIES[base],
                          unreadable=case["unreadable"] or ())
    ids = [i.id for i in plan.instructions]
    for wanted in case["present"]:
        assert wanted in ids, wanted
    for unwanted in case["absent"]:
        assert unwanted not in ids, unwanted
    assert all(i.sources and set(i.sources) <= set(SOURCES) for i in plan.instructions)


@pytest.mark.parametrize("case", VECTORS["plan"], ids=lambda c: c["id"])
def test_plan_vector_cli(case: dict[str, Any], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    """The same vectors through ``dryneedle aftercare`` (exit 1 and a plan when unreadable)."""
    session = _session_json(case["muscles"])
    doc: Any = session
    if case["unreadable"]:
        doc = {"format": "dryneedle.session/1", "record_id": "r-1",
               "patient": {"patient_id": "p-1", "sex": "F"}, "session": session}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "aftercare", str(path), "--format", "json")
    ids = [i["id"] for i in json.loads(out)["instructions"]]
    for wanted in case["present"]:
        assert wanted in ids, wanted
    for unwanted in case["absent"]:
        assert unwanted not in ids, unwanted
    # An unknown muscle is a structural error in a record: unreadable too (exit 1, plan printed).
    assert code == (1 if case["unreadable"] or "not_in_catalog" in case["muscles"] else 0)


def test_every_plan_says_when_to_get_emergency_care() -> None:
    """Every plan says: fainting after leaving, severe chest pain or breathlessness."""
    for muscles in (["gastrocnemius"], ["pectoralis_major"], [], ["not_in_catalog"]):
        plan = aftercare_plan(_symptom_session(muscles))
        text = plan.to_text()
        assert "faint after you leave the clinic" in text
        assert "severe chest pain or severe shortness of breath" in text
        assert "Contact the clinic if you faint" not in text


# --- item 11: no answer at all -------------------------------------------------------------------


def _typo_record() -> dict[str, Any]:
    record: dict[str, Any] = json.loads((DATA / "aftercare_record.json").read_text("utf-8"))
    record["patient"]["sex"] = "F"
    record["session"]["insertions"] = [record["session"]["insertions"][1]]  # calf only
    record["patient"]["history"]["anticoagulant_therapy"] = False
    return record


def test_sex_typo_still_gives_a_fail_closed_plan(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The reproduction: ``"sex": "F"`` used to print nothing; now a full plan, exit 1."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_typo_record()))
    code, out, err = run(capsys, "aftercare", str(path), "--format", "json")
    assert code == 1
    data = json.loads(out)
    ids = [i["id"] for i in data["instructions"]]
    assert {"lung_emergency", "press_if_bleeding", "watch_bleeding", "emergency_care",
            "record_unreadable"} <= set(ids)
    assert [(f["code"], f["path"]) for f in data["findings"]] == [
        ("aftercare.input.unreadable", "patient.sex")]
    assert "patient.sex" in err
    code, out, _ = run(capsys, "aftercare", str(path))
    assert code == 1
    assert "could not be read" in out


def test_sex_typo_still_gives_a_triage(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``triage --session`` with the typo prints the triage, treating the session as near the
    lung (mild chest pain after a calf session is then urgent)."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_typo_record()))
    report = tmp_path / "rep.json"
    report.write_text(json.dumps({"hours_since_session": 3,
                                  "symptoms": [{"kind": "chest_pain", "severity": "mild"}]}))
    code, out, _ = run(capsys, "triage", str(report), "--session", str(path), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["level"] == "urgent"
    assert data["near_lung"] is None
    assert data["findings"][0]["code"] == "aftercare.input.unreadable"


def test_unreadable_finding_is_a_registered_cited_floor() -> None:
    """The finding has its own stable code, a registered rule and sources."""
    (finding,) = unreadable_findings(["patient.sex", "patient.sex"])
    rule = get_rule(finding.code)
    assert rule.floor
    assert rule.sources == ("policy",)
    assert finding.sources == rule.sources
    assert rule.module == "dryneedle._aftercare.plan"


def test_unreadable_plan_without_any_session() -> None:
    """With nothing readable (session None) the plan is the complete fail-closed plan."""
    plan = aftercare_plan(None, unreadable=["session"])
    assert plan.over_lung is None
    assert plan.near_lung is None
    assert plan.bleeding_risk is None
    assert "lung_emergency" in [i.id for i in plan.instructions]


# --- item 12: citations --------------------------------------------------------------------------


def test_corrected_citations() -> None:
    """Each corrected rule cites what its sources support (SOURCES.md 'supports')."""
    assert get_rule("screening.acute_illness").sources == ("policy",)
    assert get_rule("screening.epilepsy").sources == ("policy",)
    assert "munoz-2022" not in get_rule("protocol.lung.depth_limit").sources
    assert get_rule("protocol.depth.deep_minimum").sources == ("seed", "policy")
    for rid in ("protocol.pre.history_reviewed", "protocol.pre.physical_exam",
                "protocol.pre.history_reviewed.unknown", "protocol.pre.physical_exam.unknown",
                "protocol.post.skin_checked", "protocol.post.skin_checked.unknown"):
        assert "za-bn121" not in get_rule(rid).sources, rid  # not in its §3/§4/§5.1/§7 clauses


def test_rules_cli_says_clinic_policy_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Rules whose only basis is grade C say "clinic policy default" in text and JSON."""
    code, text, _ = run(capsys, "rules")
    assert code == 0
    lines = {line.split()[0]: line for line in text.splitlines()}
    code, out, _ = run(capsys, "rules", "--format", "json")
    rows = {r["id"]: r for r in json.loads(out)}
    for r in all_rules():
        only_c = bool(r.sources) and all(SOURCES[s].grade == "C" for s in r.sources)
        assert lines[r.id].endswith("(clinic policy default)") is only_c, r.id
        assert (rows[r.id]["basis"] == "clinic policy default") is only_c, r.id
        assert rows[r.id]["floor"] is r.floor
    assert lines["screening.acute_illness"].endswith("(clinic policy default)")
    assert lines["screening.epilepsy"].endswith("(clinic policy default)")
