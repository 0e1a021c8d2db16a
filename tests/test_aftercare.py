"""Tests for dryneedle.aftercare: plans, triage, the symptom report and adverse-event rates."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle import aftercare as ac
from dryneedle.aftercare import (
    ADVERSE_EVENT_TERMS,
    INSTRUCTIONS,
    PUBLISHED_RATES,
    TRIAGE_ORDER,
    TRIAGE_RULES,
    ReportedSymptom,
    ReportError,
    Section,
    SymptomKind,
    SymptomReport,
    SymptomSeverity,
    TriageLevel,
    adverse_event_rates,
    aftercare_plan,
    bleeding_risk,
    needled_over_lung,
    structure_report,
    triage,
    unstructure_report,
)
from dryneedle.findings import Severity, get_rule
from dryneedle.model import (
    AdverseEvent,
    AdverseEventGrade,
    AdverseEventKind,
    History,
    Insertion,
    Manipulation,
    Patient,
    Practitioner,
    Session,
    SessionRecord,
    Side,
    Technique,
)
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.sources import SOURCES

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "aftercare_vectors.json").read_text("utf-8"))

# Identifiers that must never appear in patient-facing output.
SECRET_IDS = ("sess-XYZ-123", "prac-XYZ-456", "pat-XYZ-789")


def make_session(muscles: list[str] | tuple[str, ...], *, events: tuple[AdverseEvent, ...] = (),
                 session_id: str = SECRET_IDS[0], practitioner_id: str = SECRET_IDS[1]) -> Session:
    return Session(
        session_id=session_id,
        date=date(2026, 3, 2),
        number=2,
        practitioner=Practitioner(practitioner_id=practitioner_id),
        insertions=tuple(
            Insertion(muscle=m, side=Side.LEFT, technique=Technique.SUPERFICIAL,
                      manipulation=Manipulation.STATIC)
            for m in muscles
        ),
        adverse_events=events,
    )


def vector_session(name: str) -> Session | None:
    muscles = VECTORS["sessions"][name]
    return None if muscles is None else make_session(muscles)


CALF = make_session(["gastrocnemius"])
OVER_LUNG = make_session(["upper_trapezius"])


def report(hours: float | None, *symptoms: ReportedSymptom) -> SymptomReport:
    return SymptomReport(hours_since_session=hours, symptoms=symptoms)


def sym(kind: SymptomKind, *, duration_h: float | None = None,
        severity: SymptomSeverity | None = None) -> ReportedSymptom:
    return ReportedSymptom(kind=kind, duration_h=duration_h, severity=severity)


# --- plan vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["plan"], ids=lambda c: c["id"])
def test_plan_vectors(case: dict[str, Any]) -> None:
    """Each plan vector yields exactly its instructions, in order, and the right flags."""
    session = vector_session(case["session"])
    assert session is not None
    history = case["history"]
    patient = None if history is None else Patient(patient_id=SECRET_IDS[2],
                                                   history=History(**history))
    plan = aftercare_plan(session, patient=patient, unreadable=case.get("unreadable", ()))
    assert [i.id for i in plan.instructions] == case["instructions"]
    assert plan.over_lung == case["over_lung"]
    assert plan.bleeding_risk == case["bleeding_risk"]


def test_vectors_cite_known_sources() -> None:
    """Every clinical vector cites at least one source, and only registered ones."""
    for case in (*VECTORS["plan"], *VECTORS["triage"]):
        assert case["sources"], case["id"]
        assert set(case["sources"]) <= set(SOURCES), case["id"]


def test_every_instruction_is_exercised_by_a_vector() -> None:
    """The plan vectors between them produce every instruction the module defines."""
    produced = {i for case in VECTORS["plan"] for i in case["instructions"]}
    assert produced == set(INSTRUCTIONS)


def test_every_instruction_cites_known_sources() -> None:
    """Every patient-facing line carries source ids that are registered."""
    for instruction in INSTRUCTIONS.values():
        assert instruction.sources, instruction.id
        assert set(instruction.sources) <= set(SOURCES), instruction.id


def test_basic_instructions_follow_the_seed() -> None:
    """The basic lines are the seed's after-care, with the 24-36 h and one-week course."""
    plan = aftercare_plan(CALF, patient=Patient(patient_id="p", history=History(
        bleeding_disorder=False, anticoagulant_therapy=False)))
    text = plan.to_text()
    assert "Stand up slowly. If you feel light-headed, sit down." in text
    assert "Drink plenty of water." in text
    assert "Stay active." in text
    assert "24 to 36 hours" in text
    assert "up to a week" in text
    assert INSTRUCTIONS["expect_soreness"].sources == ("seed", "pns-review")
    # SPEC §5 (1.1): every plan says when to get emergency care (fainting after leaving;
    # severe chest pain or breathlessness); the lung line (any of them) only near the lung.
    assert "severe chest pain or severe shortness of breath" in text
    assert "short of breath" not in text


def test_over_lung_plan_has_the_emergency_line_first_in_get_help() -> None:
    """Over the lung, breathlessness or chest pain => emergency care (za-bn121), shown first."""
    plan = aftercare_plan(OVER_LUNG, patient=Patient(patient_id="p", history=History(
        bleeding_disorder=False, anticoagulant_therapy=False)))
    get_help = [i for i in plan.instructions if i.section is Section.GET_HELP]
    assert get_help[0].id == "lung_emergency"
    assert get_help[0].sources == ("za-bn121",)
    assert "emergency care" in get_help[0].text


def test_plan_sections_are_in_order() -> None:
    """Instructions are grouped: what to do, then what to expect, then when to get help."""
    plan = aftercare_plan(OVER_LUNG)
    ranks = [list(Section).index(i.section) for i in plan.instructions]
    assert ranks == sorted(ranks)


def test_plan_renderings() -> None:
    """Text and Markdown carry every line once, under the section headings."""
    plan = aftercare_plan(OVER_LUNG)
    text = plan.to_text()
    md = plan.to_markdown()
    assert text.splitlines()[0] == "After your dry needling session"
    assert md.startswith("# After your dry needling session\n")
    for section in Section:
        assert f"\n{section.heading}\n" in text
        assert f"\n## {section.heading}\n" in md
    for instruction in plan.instructions:
        assert text.count(f"- {instruction.text}\n") == 1
        assert md.count(f"- {instruction.text}\n") == 1
    assert "sources:" not in text
    assert "sources:" not in md


def test_plan_renderings_with_sources() -> None:
    """With sources, every rendered line ends with its source ids."""
    plan = aftercare_plan(OVER_LUNG)
    for rendering in (plan.to_text(with_sources=True), plan.to_markdown(with_sources=True)):
        lines = [line for line in rendering.splitlines() if line.startswith("- ")]
        assert len(lines) == len(plan.instructions)
        for line, instruction in zip(lines, plan.instructions, strict=True):
            assert line.endswith(f"(sources: {', '.join(instruction.sources)})")


def test_plan_as_dict() -> None:
    """The JSON form lists every instruction with its section and sources."""
    plan = aftercare_plan(CALF)
    data = plan.as_dict()
    assert data["over_lung"] is False
    assert data["bleeding_risk"] is None
    assert [i["id"] for i in data["instructions"]] == [i.id for i in plan.instructions]
    assert all(i["sources"] for i in data["instructions"])
    assert set(data["sources"]) == {s for i in plan.instructions for s in i.sources}
    json.dumps(data)  # JSON-ready


identifiers = st.from_regex(r"ID-[A-Za-z0-9]{4,12}", fullmatch=True)


@given(
    session_id=identifiers,
    practitioner_id=identifiers,
    patient_id=identifiers,
    muscles=st.lists(st.sampled_from(["gastrocnemius", "upper_trapezius", "psoas", "x"]),
                     max_size=3),
    history=st.builds(History, bleeding_disorder=st.sampled_from([True, False, None]),
                      anticoagulant_therapy=st.sampled_from([True, False, None])),
)
def test_plan_is_deterministic_and_identifier_free(
    session_id: str, practitioner_id: str, patient_id: str, muscles: list[str], history: History
) -> None:
    """Renderings depend only on clinical content and never contain an identifier."""
    session = make_session(muscles, session_id=session_id, practitioner_id=practitioner_id)
    patient = Patient(patient_id=patient_id, history=history)
    plan = aftercare_plan(session, patient=patient)
    renderings = (plan.to_text(), plan.to_markdown(), plan.to_text(with_sources=True),
                  json.dumps(plan.as_dict()))
    anonymous = aftercare_plan(make_session(muscles),
                               patient=Patient(patient_id="other", history=history))
    assert renderings[:3] == (anonymous.to_text(), anonymous.to_markdown(),
                              anonymous.to_text(with_sources=True))
    for rendering in renderings:
        assert "ID-" not in rendering
        assert "psoas" not in rendering.lower()  # no muscle names (jargon) either


def test_bleeding_risk_is_tri_state() -> None:
    """True if either answer is True, False only if both are False, else unknown (None)."""
    def risk(*, bleeding_disorder: bool | None = None,
             anticoagulant_therapy: bool | None = None) -> bool | None:
        history = History(bleeding_disorder=bleeding_disorder,
                          anticoagulant_therapy=anticoagulant_therapy)
        return bleeding_risk(Patient(patient_id="p", history=history))

    assert risk(bleeding_disorder=True) is True
    assert risk(anticoagulant_therapy=True, bleeding_disorder=False) is True
    assert risk(bleeding_disorder=False, anticoagulant_therapy=False) is False
    assert risk(bleeding_disorder=False) is None
    assert risk() is None
    assert bleeding_risk(None) is None


def test_needled_over_lung_uses_the_catalog_and_fails_closed() -> None:
    """Over-lung comes from the anatomy catalog; unknown muscles or no session are unknown."""
    assert needled_over_lung(CALF) is False
    assert needled_over_lung(OVER_LUNG) is True
    assert needled_over_lung(make_session(["gastrocnemius", "scalenes"])) is True
    assert needled_over_lung(make_session(["no_such_muscle"])) is None
    assert needled_over_lung(make_session(["no_such_muscle", "rhomboid_major"])) is True
    assert needled_over_lung(make_session([])) is False
    assert needled_over_lung(None) is None


# --- triage vectors and boundaries ---------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["triage"], ids=lambda c: c["id"])
def test_triage_vectors(case: dict[str, Any]) -> None:
    """Each triage vector yields its level and exactly its reasons (rule codes, in order)."""
    follow_up = triage(structure_report(case["report"]), session=vector_session(case["session"]))
    assert follow_up.level == case["level"]
    assert [r.code for r in follow_up.reasons] == case["codes"]


def test_every_triage_rule_is_exercised_by_a_vector() -> None:
    """The triage vectors between them fire every triage rule."""
    fired = {code for case in VECTORS["triage"] for code in case["codes"]}
    assert fired == {r.id for r in TRIAGE_RULES}


@pytest.mark.parametrize(("hours", "level"), [
    (35, TriageLevel.EXPECTED),
    (36, TriageLevel.EXPECTED),
    (37, TriageLevel.CONTACT_CLINIC),
])
@pytest.mark.parametrize("kind", [SymptomKind.SORENESS, SymptomKind.STIFFNESS])
def test_soreness_boundary(kind: SymptomKind, hours: float, level: TriageLevel) -> None:
    """Soreness or stiffness at 35 h and 36 h is expected; at 37 h, contact (seed, pns-review)."""
    assert DEFAULT_POLICY.soreness_expected_max_h == 36.0
    assert triage(report(hours, sym(kind)), session=CALF).level is level
    # The same boundary holds when only the symptom's own duration is known.
    assert triage(report(None, sym(kind, duration_h=hours)), session=CALF).level is level


@pytest.mark.parametrize(("days", "level"), [
    (6, TriageLevel.EXPECTED),
    (7, TriageLevel.EXPECTED),
    (8, TriageLevel.CONTACT_CLINIC),
])
def test_bruising_boundary(days: int, level: TriageLevel) -> None:
    """Bruising at 7 days is expected; at 8 days, contact (seed)."""
    assert DEFAULT_POLICY.bruising_expected_max_days == 7.0
    hours = days * 24.0
    assert triage(report(hours, sym(SymptomKind.BRUISING)), session=CALF).level is level
    assert triage(report(None, sym(SymptomKind.BRUISING, duration_h=hours)),
                  session=CALF).level is level


@pytest.mark.parametrize("kind", [SymptomKind.CHEST_PAIN, SymptomKind.BREATHLESSNESS])
def test_chest_symptoms_over_lung_vs_calf(kind: SymptomKind) -> None:
    """After an over-lung session: urgent (za-bn121); after a calf one: contact, never expected."""
    over = triage(report(3, sym(kind)), session=OVER_LUNG)
    calf = triage(report(3, sym(kind)), session=CALF)
    assert over.level is TriageLevel.URGENT
    assert over.reasons[0].code == "aftercare.triage.lung_symptoms"
    assert over.reasons[0].sources == ("za-bn121",)
    assert calf.level is TriageLevel.CONTACT_CLINIC
    assert calf.reasons[0].code == "aftercare.triage.chest_symptoms"


def test_chest_symptoms_without_a_session_are_urgent() -> None:
    """No session known: it counts as over the lung (fail closed)."""
    follow_up = triage(report(3, sym(SymptomKind.CHEST_PAIN)), session=None)
    assert follow_up.level is TriageLevel.URGENT
    assert follow_up.over_lung is None
    assert "not known" in follow_up.reasons[0].message


@pytest.mark.parametrize("kind", [SymptomKind.SPREADING_REDNESS, SymptomKind.WARMTH,
                                  SymptomKind.PUS, SymptomKind.FEVER])
def test_signs_of_infection_mean_contact_promptly(kind: SymptomKind) -> None:
    """Spreading redness, warmth, pus or fever: contact the clinic promptly (seed)."""
    follow_up = triage(report(20, sym(kind, severity=SymptomSeverity.MILD)), session=CALF)
    assert follow_up.level is TriageLevel.CONTACT_CLINIC
    assert [r.code for r in follow_up.reasons] == ["aftercare.triage.infection_signs"]
    assert "promptly" in follow_up.reasons[0].message


def test_fainting_after_leaving_is_urgent() -> None:
    """Fainting after leaving the clinic: urgent after any session (SPEC §5 1.1)."""
    follow_up = triage(report(1, sym(SymptomKind.FAINTING)), session=OVER_LUNG)
    assert follow_up.level is TriageLevel.URGENT
    assert triage(report(1, sym(SymptomKind.FAINTING)), session=CALF).level is (
        TriageLevel.URGENT)
    assert follow_up.reasons[0].sources == ("seed", "za-bn121", "policy")


def test_reason_paths_are_report_rooted() -> None:
    """Reasons point at the symptom (and field) they concern."""
    follow_up = triage(report(None, sym(SymptomKind.SORENESS),
                              sym(SymptomKind.OTHER, severity=SymptomSeverity.SEVERE)),
                       session=CALF)
    assert [(r.code, r.path) for r in follow_up.reasons] == [
        ("aftercare.triage.timing_unknown", "symptoms[0].duration_h"),
        ("aftercare.triage.unlisted_symptom", "symptoms[1].kind"),
        ("aftercare.triage.severe_symptom", "symptoms[1].severity"),
    ]


def test_triage_reason_severities_match_levels() -> None:
    """info = expected, warning = contact the clinic, error = urgent."""
    for r in TRIAGE_RULES:
        assert r.severity in (Severity.INFO, Severity.WARNING, Severity.ERROR)
    assert get_rule("aftercare.triage.lung_symptoms").severity is Severity.ERROR
    assert get_rule("aftercare.triage.soreness_expected").severity is Severity.INFO


def test_triage_rules_are_registered_and_cited() -> None:
    """Every triage rule is registered in the aftercare category with known sources."""
    for rule in TRIAGE_RULES:
        assert get_rule(rule.id) == rule
        assert rule.category == "aftercare"
        assert rule.sources
        assert set(rule.sources) <= set(SOURCES)
    report_rule = get_rule("aftercare.report.unknown_field")
    assert report_rule.category == "aftercare"


def test_thresholds_are_cited_policy_limits() -> None:
    """The 36 h and 7-day thresholds are policy limits with their sources, read by the rules."""
    by_name = {lim.name: lim for lim in DEFAULT_POLICY.limits()}
    assert by_name["soreness_expected_max_h"].value == 36.0
    assert by_name["soreness_expected_max_h"].sources == ("seed", "pns-review")
    assert by_name["bruising_expected_max_days"].value == 7.0
    assert by_name["bruising_expected_max_days"].sources == ("seed",)
    assert get_rule("aftercare.triage.soreness_prolonged").limits == ("soreness_expected_max_h",)
    assert get_rule("aftercare.triage.bruising_prolonged").limits == (
        "bruising_expected_max_days",)
    for rule in TRIAGE_RULES:  # every limit a rule names exists on the policy
        for name in rule.limits:
            assert hasattr(DEFAULT_POLICY, name), (rule.id, name)


def _clinic(**limits: float) -> Policy:
    return DEFAULT_POLICY.override(limits=limits, justification="Clinic X board decision (test).")


def test_overridden_limits_change_plan_wording_and_triage_alike() -> None:
    """A clinic's own limits are quoted by the plan and applied by triage, citing ``policy``."""
    policy = _clinic(soreness_expected_max_h=48, bruising_expected_max_days=10)
    plan = aftercare_plan(CALF, policy=policy)
    lines = {i.id: i for i in plan.instructions}
    assert lines["expect_soreness"].text.startswith(
        "Your muscles may feel sore or stiff for 24 to 48 hours.")
    assert "policy" in lines["expect_soreness"].sources
    assert lines["watch_soreness"].text == (
        "Contact the clinic if soreness or stiffness lasts longer than 48 hours.")
    assert lines["expect_bruising"].text.endswith("It can last up to 10 days.")
    assert lines["watch_bruising"].text.endswith("lasts longer than 10 days.")
    assert plan.policy == policy.fingerprint
    assert triage(report(47, sym(SymptomKind.SORENESS)), session=CALF,
                  policy=policy).level is TriageLevel.EXPECTED
    assert triage(report(49, sym(SymptomKind.SORENESS)), session=CALF,
                  policy=policy).level is TriageLevel.CONTACT_CLINIC
    assert triage(report(240, sym(SymptomKind.BRUISING)), session=CALF,
                  policy=policy).level is TriageLevel.EXPECTED
    assert triage(report(241, sym(SymptomKind.BRUISING)), session=CALF,
                  policy=policy).level is TriageLevel.CONTACT_CLINIC


def test_default_wording_cites_no_policy_for_the_course() -> None:
    """Under the default policy the expected course cites only seed / pns-review."""
    assert INSTRUCTIONS["expect_soreness"].sources == ("seed", "pns-review")
    assert INSTRUCTIONS["expect_bruising"].sources == ("seed",)
    assert INSTRUCTIONS["watch_bruising"].text.endswith("longer than a week (7 days).")


def test_short_soreness_limit_is_worded_sensibly() -> None:
    """A limit below the usual 24 h lower end reads "up to N hours", not "24 to N"."""
    plan = aftercare_plan(CALF, policy=_clinic(soreness_expected_max_h=20))
    text = plan.to_text()
    assert "sore or stiff for up to 20 hours." in text


def test_nan_limit_fails_closed() -> None:
    """A junk (NaN) limit is refused by overrides, and never makes a symptom read as expected."""
    with pytest.raises(ValueError, match="finite"):
        _clinic(soreness_expected_max_h=math.nan)
    with pytest.raises(ValueError, match="finite"):  # the constructor checks it too
        Policy(soreness_expected_max_h=math.nan)
    policy = Policy(name="nan-test")  # forced past every check: the rule still fails closed
    object.__setattr__(policy, "soreness_expected_max_h", math.nan)
    follow_up = triage(report(1, sym(SymptomKind.SORENESS)), session=CALF, policy=policy)
    assert follow_up.level is TriageLevel.CONTACT_CLINIC


def test_policy_override_changes_the_level() -> None:
    """A clinic can override a triage rule's severity (and so its level) with a justification."""
    policy = DEFAULT_POLICY.override(
        rules={"aftercare.triage.soreness_prolonged": {"severity": "info"}},
        justification="Clinic X: soreness to 48 h is expected after deep needling (test).",
    )
    follow_up = triage(report(40, sym(SymptomKind.SORENESS)), session=CALF, policy=policy)
    assert follow_up.level is TriageLevel.EXPECTED
    assert follow_up.reasons[0].severity is Severity.INFO
    assert follow_up.policy == policy.fingerprint != DEFAULT_POLICY.fingerprint


def test_follow_up_renderings() -> None:
    """The follow-up renders as JSON-ready data and as text with a headline."""
    follow_up = triage(report(37, sym(SymptomKind.SORENESS), sym(SymptomKind.CHEST_PAIN)),
                       session=OVER_LUNG)
    data = follow_up.as_dict()
    assert data["level"] == "urgent"
    assert [r["code"] for r in data["reasons"]] == [
        "aftercare.triage.soreness_prolonged", "aftercare.triage.lung_symptoms"]
    json.dumps(data)
    text = follow_up.to_text()
    assert text.splitlines()[0] == "Get emergency care now."
    assert "za-bn121" not in text
    assert "za-bn121" in follow_up.to_text(with_sources=True)
    empty = triage(report(5), session=CALF)
    assert empty.level is TriageLevel.EXPECTED
    assert empty.reasons == ()
    assert "No symptoms were reported." in empty.to_text()


# --- triage properties ---------------------------------------------------------------------------

junk_hours = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10, max_value=10_000),
)
symptoms = st.builds(
    ReportedSymptom,
    kind=st.sampled_from(SymptomKind),
    duration_h=junk_hours,
    severity=st.one_of(st.none(), st.sampled_from(SymptomSeverity)),
)
reports = st.builds(SymptomReport, hours_since_session=junk_hours,
                    symptoms=st.lists(symptoms, max_size=4).map(tuple))
sessions = st.sampled_from([None, CALF, OVER_LUNG, make_session(["unknown"]), make_session([])])


@given(base=reports, extra=symptoms, session=sessions, position=st.integers(0, 4))
def test_adding_a_symptom_never_lowers_the_level(
    base: SymptomReport, extra: ReportedSymptom, session: Session | None, position: int
) -> None:
    """Monotonicity: a report with one more symptom is triaged at least as urgently."""
    items = list(base.symptoms)
    items.insert(min(position, len(items)), extra)
    more = attrs.evolve(base, symptoms=tuple(items))
    before = triage(base, session=session).level
    after = triage(more, session=session).level
    assert TRIAGE_ORDER[after] >= TRIAGE_ORDER[before]


@given(r=reports, session=sessions)
def test_level_is_the_most_urgent_reason(r: SymptomReport, session: Session | None) -> None:
    """The level is the maximum of the reasons' levels; every reason is cited."""
    follow_up = triage(r, session=session)
    level_of = {Severity.INFO: TriageLevel.EXPECTED, Severity.WARNING: TriageLevel.CONTACT_CLINIC,
                Severity.ERROR: TriageLevel.URGENT}
    expected_level = max((level_of[x.severity] for x in follow_up.reasons),
                         key=TRIAGE_ORDER.__getitem__, default=TriageLevel.EXPECTED)
    assert follow_up.level is expected_level
    assert all(x.sources for x in follow_up.reasons)
    assert len({x.path.split("]")[0] for x in follow_up.reasons}) == len(r.symptoms)


@given(r=reports, extra=symptoms, session=sessions)
def test_severe_unlisted_or_untimed_is_never_expected(
    r: SymptomReport, extra: ReportedSymptom, session: Session | None
) -> None:
    """Fail closed: a severe or unlisted symptom, or unusable timing, is never expected."""
    more = attrs.evolve(r, symptoms=(*r.symptoms, extra))
    level = triage(more, session=session).level
    if extra.severity is SymptomSeverity.SEVERE or extra.kind is SymptomKind.OTHER:
        assert level is not TriageLevel.EXPECTED
    timed = [h for h in (r.hours_since_session, extra.duration_h)
             if h is not None and math.isfinite(h) and h >= 0]
    if extra.kind in (SymptomKind.SORENESS, SymptomKind.STIFFNESS, SymptomKind.BRUISING) \
            and not timed:
        assert level is not TriageLevel.EXPECTED


def test_triage_never_raises_on_junk_objects() -> None:
    """Bad clinical data (wrong types inside the report) gives findings, not exceptions."""
    junk = SymptomReport(
        hours_since_session="soon",  # type: ignore[arg-type]
        symptoms=(ReportedSymptom(kind="tingling", severity="awful"),  # type: ignore[arg-type]
                  ReportedSymptom(kind=SymptomKind.SORENESS, duration_h=True)),
    )
    follow_up = triage(junk, session=make_session([]))
    assert follow_up.level is TriageLevel.CONTACT_CLINIC
    assert [r.code for r in follow_up.reasons] == [
        "aftercare.triage.unlisted_symptom", "aftercare.triage.severe_symptom",
        "aftercare.triage.timing_unknown"]


# --- the symptom report's JSON shape -------------------------------------------------------------


@given(r=st.builds(
    SymptomReport,
    hours_since_session=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
    symptoms=st.lists(st.builds(
        ReportedSymptom, kind=st.sampled_from(SymptomKind),
        duration_h=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
        severity=st.one_of(st.none(), st.sampled_from(SymptomSeverity))), max_size=3).map(tuple),
))
def test_report_round_trips_through_json(r: SymptomReport) -> None:
    """unstructure_report, JSON and structure_report are inverse (cattrs converter)."""
    data = json.loads(json.dumps(unstructure_report(r)))
    assert structure_report(data) == r


def test_report_json_shape() -> None:
    """The documented JSON shape structures into the model."""
    r = structure_report(json.loads((DATA / "aftercare_report.json").read_text("utf-8")))
    assert r.hours_since_session == 37.0
    assert r.symptoms[0] == ReportedSymptom(kind=SymptomKind.SORENESS, duration_h=30.0,
                                            severity=SymptomSeverity.MILD)
    assert r.symptoms[1].kind is SymptomKind.CHEST_PAIN
    assert structure_report({}) == SymptomReport()


@pytest.mark.parametrize(("data", "problems"), [
    ([], [("structure.not_object", "")]),
    ({"symptoms": {"kind": "soreness"}}, [("structure.type", "symptoms")]),
    ({"symptoms": ["soreness"]}, [("structure.type", "symptoms[0]")]),
    ({"symptoms": [{}]}, [("structure.missing", "symptoms[0].kind")]),
    ({"symptoms": [{"kind": "tingling"}]}, [("structure.enum", "symptoms[0].kind")]),
    ({"symptoms": [{"kind": 3}]}, [("structure.type", "symptoms[0].kind")]),
    ({"symptoms": [{"kind": "soreness", "severity": "awful"}]},
     [("structure.enum", "symptoms[0].severity")]),
    ({"symptoms": [{"kind": "soreness", "severty": "severe"}]},
     [("aftercare.report.unknown_field", "symptoms[0].severty")]),
    ({"hours": 3}, [("aftercare.report.unknown_field", "hours")]),
    ({"hours_since_session": True}, [("structure.type", "hours_since_session")]),
    ({"hours_since_session": "37"}, [("structure.type", "hours_since_session")]),
    ({"hours_since_session": -1}, [("structure.range", "hours_since_session")]),
    ({"hours_since_session": math.nan}, [("structure.range", "hours_since_session")]),
    ({"symptoms": [{"kind": "bruising", "duration_h": math.inf}]},
     [("structure.range", "symptoms[0].duration_h")]),
])
def test_report_errors_are_all_collected(data: Any, problems: list[tuple[str, str]]) -> None:
    """structure_report raises ReportError with every problem, by code and path."""
    with pytest.raises(ReportError) as info:
        structure_report(data)
    assert [(f.code, f.path) for f in info.value.findings] == problems
    assert all(f.severity is Severity.ERROR for f in info.value.findings)


def test_report_errors_never_echo_values() -> None:
    """A misplaced value (possibly an identifier) is not echoed in error messages."""
    with pytest.raises(ReportError) as info:
        structure_report({"hours_since_session": "patient Jane Roe",
                          "symptoms": [{"kind": "Jane Roe"}]})
    assert "Jane" not in str(info.value)


# --- adverse-event vocabulary and rates ----------------------------------------------------------


def test_vocabulary_covers_every_kind_with_sources() -> None:
    """Every AdverseEventKind has a label and registered sources."""
    assert set(ADVERSE_EVENT_TERMS) == set(AdverseEventKind)
    for term in ADVERSE_EVENT_TERMS.values():
        assert term.label
        assert term.sources
        assert set(term.sources) <= set(SOURCES)


def test_published_rates_match_the_sources() -> None:
    """The comparison figures are those of brady-2014 and boyce-2020 (SOURCES.md)."""
    figures = {(p.source, p.kind, p.grade): (p.percent, p.bound) for p in PUBLISHED_RATES}
    k, mild, sig = AdverseEventKind, AdverseEventGrade.MILD, AdverseEventGrade.SIGNIFICANT
    assert figures[("brady-2014", None, mild)] == (19.18, "exact")
    assert figures[("brady-2014", k.BRUISING, mild)] == (7.55, "exact")
    assert figures[("brady-2014", k.BLEEDING, mild)] == (4.65, "exact")
    assert figures[("brady-2014", k.PAIN_DURING, mild)] == (3.01, "exact")
    assert figures[("brady-2014", k.PAIN_AFTER, mild)] == (2.19, "exact")
    assert figures[("brady-2014", k.AGGRAVATION, mild)] == (0.88, "exact")
    assert figures[("brady-2014", k.DROWSINESS, mild)] == (0.26, "exact")
    assert figures[("brady-2014", k.HEADACHE, mild)] == (0.14, "exact")
    assert figures[("brady-2014", k.NAUSEA, mild)] == (0.13, "exact")
    assert figures[("brady-2014", None, sig)] == (0.04, "at_most")
    assert figures[("boyce-2020", None, mild)] == (36.7, "exact")
    assert figures[("boyce-2020", k.BLEEDING, mild)] == (16.0, "exact")
    assert figures[("boyce-2020", k.BRUISING, mild)] == (7.7, "exact")
    assert figures[("boyce-2020", k.PAIN_DURING, mild)] == (5.9, "exact")
    assert figures[("boyce-2020", None, sig)] == (0.1, "below")
    assert {p.denominator for p in PUBLISHED_RATES if p.source == "brady-2014"} == {7629}
    assert {p.denominator for p in PUBLISHED_RATES if p.source == "boyce-2020"} == {20464}


def _ae(kind: AdverseEventKind, grade: AdverseEventGrade | None = AdverseEventGrade.MILD
        ) -> AdverseEvent:
    return AdverseEvent(kind=kind, grade=grade)


def test_rates_count_per_kind_and_grade() -> None:
    """Counts, sessions-with, events-per-session rates and grade totals over a small stream."""
    k = AdverseEventKind
    items: list[Session | SessionRecord] = [
        make_session(["gastrocnemius"], events=(_ae(k.BRUISING), _ae(k.BRUISING),
                                                 _ae(k.BLEEDING))),
        SessionRecord(record_id="r", patient=Patient(patient_id="p"),
                      session=make_session([], events=(_ae(k.BRUISING),))),
        make_session([], events=(_ae(k.FAINTING, None),
                                 _ae(k.PNEUMOTHORAX, AdverseEventGrade.SIGNIFICANT))),
        make_session([]),
    ]
    rates = adverse_event_rates(iter(items))
    assert rates.sessions == 4
    assert rates.events == 6
    bruising = rates.kind(k.BRUISING)
    assert (bruising.events, bruising.mild, bruising.sessions_with, bruising.rate) == (3, 3, 2,
                                                                                      0.75)
    assert [p.source for p in bruising.published] == ["brady-2014", "boyce-2020"]
    fainting = rates.kind(k.FAINTING)
    assert (fainting.ungraded, fainting.significant) == (1, 0)
    assert rates.mild.events == 4
    assert rates.mild.rate == 1.0
    assert rates.significant.events == 2  # one significant + one ungraded
    assert rates.significant.rate == 0.5
    assert [p.display() for p in rates.significant.published] == ["<= 0.04 %", "< 0.1 %"]
    assert [x.kind for x in rates.kinds] == list(AdverseEventKind)
    assert rates.kind(k.NAUSEA).rate == 0.0


def test_rates_stream_is_read_once() -> None:
    """The function consumes a one-shot generator (streaming), reading each item once."""
    seen: list[int] = []

    def gen() -> Any:
        for n in range(50):
            seen.append(n)
            yield make_session([], events=(_ae(AdverseEventKind.HEADACHE),) if n % 10 == 0
                               else ())

    rates = adverse_event_rates(gen())
    assert seen == list(range(50))
    assert rates.kind(AdverseEventKind.HEADACHE).rate == pytest.approx(0.1)


def test_rates_of_nothing() -> None:
    """No sessions: counts are zero and rates are unknown (None), not zero."""
    rates = adverse_event_rates([])
    assert rates.sessions == 0
    assert rates.kind(AdverseEventKind.BRUISING).rate is None
    assert rates.mild.rate is None
    assert "-" in rates.to_text()


def test_rates_junk_event_values_fail_safe() -> None:
    """Junk kinds cannot be recorded at all; an ungraded event counts as significant."""
    with pytest.raises(ValueError, match="sneezing"):
        AdverseEvent(kind="sneezing", grade="meh")
    ungraded = AdverseEvent(kind=AdverseEventKind.OTHER)
    rates = adverse_event_rates([make_session([], events=(ungraded,))])
    assert rates.kind(AdverseEventKind.OTHER).events == 1
    assert rates.kind(AdverseEventKind.OTHER).ungraded == 1
    assert rates.significant.events == 1


def test_rates_reject_non_sessions() -> None:
    """Passing something that is not a record or session is a programming error."""
    with pytest.raises(TypeError, match="SessionRecord or a Session"):
        adverse_event_rates([{"session": {}}])  # type: ignore[list-item]


def test_rates_renderings() -> None:
    """The table and the JSON form show observed and published figures with their sources."""
    rates = adverse_event_rates([make_session([], events=(_ae(AdverseEventKind.BRUISING),))])
    text = rates.to_text()
    assert text.splitlines()[0].startswith("Adverse events over 1 session ")
    header = text.splitlines()[1].split()
    assert header == ["kind", "events", "observed", "brady-2014", "boyce-2020"]
    bruising_row = next(line for line in text.splitlines() if line.startswith("bruising"))
    assert "100.00 %" in bruising_row
    assert "7.55 %" in bruising_row
    assert "7.7 %" in bruising_row
    data = rates.as_dict()
    json.dumps(data)
    assert data["sources"] == ["boyce-2020", "brady-2014"]
    assert data["kinds"][0]["kind"] == "bruising"
    assert data["significant"]["published"][0]["bound"] == "at_most"


def test_public_names_are_exported() -> None:
    """__all__ is sorted and every name in it exists."""
    assert list(ac.__all__) == sorted(ac.__all__, key=lambda n: (not n.isupper(), n))
    for name in ac.__all__:
        assert hasattr(ac, name), name


# --- the documentation page stays in sync ----------------------------------------------------

DOC_PAGE = Path(__file__).parent.parent / "docs" / "aftercare.md"


def _doc_rows(marker: str) -> list[str]:
    return [line for line in DOC_PAGE.read_text("utf-8").splitlines()
            if line.startswith("|") and marker in line]


def _sources_in(cell: str) -> tuple[str, ...]:
    return tuple(part.split("`")[1] for part in cell.split("{source}")[1:])


def test_docs_rendered_plan_is_the_library_output() -> None:
    """The rendered plan on the aftercare page is exactly what to_markdown() produces."""
    page = DOC_PAGE.read_text("utf-8")
    block = page.split(":::{admonition} After your dry needling session\n:class: tip\n\n", 1)[1]
    block = block.split("\n:::\n", 1)[0]
    session = make_session(["upper_trapezius"])
    patient = Patient(patient_id="p", history=History(bleeding_disorder=False,
                                                      anticoagulant_therapy=True))
    markdown = aftercare_plan(session, patient=patient).to_markdown()
    body = markdown.split("\n", 2)[2]  # drop the title and the blank line after it
    expected = "\n".join(f"**{line[3:]}**" if line.startswith("## ") else line
                         for line in body.splitlines())
    assert block == expected


def test_docs_triage_table_matches_the_rules() -> None:
    """The page's triage table has one row per rule, with its level and exact sources."""
    level_of = {Severity.INFO: "`expected`", Severity.WARNING: "`contact_clinic`",
                Severity.ERROR: "`urgent`"}
    rows = _doc_rows("{rule}`aftercare.triage.")
    assert len(rows) == len(TRIAGE_RULES)
    for rule in TRIAGE_RULES:
        (row,) = [r for r in rows if f"{{rule}}`{rule.id}`" in r]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1].startswith(level_of[rule.severity]), rule.id
        assert _sources_in(cells[3]) == rule.sources, rule.id


def test_docs_instruction_table_matches_the_instructions() -> None:
    """The page's instruction table cites each instruction's exact sources."""
    rows = [r for r in _doc_rows("|") if r.startswith("| `")]
    seen: set[str] = set()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ids = [part.strip("` ") for part in cells[0].split(",")]
        for instruction_id in ids:
            assert _sources_in(cells[2]) == INSTRUCTIONS[instruction_id].sources, instruction_id
            seen.add(instruction_id)
    assert seen == set(INSTRUCTIONS)
