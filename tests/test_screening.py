"""Screening (SPEC §3): clinical vignettes, helpers, site inputs, results, policies and rules.

The vignettes in ``tests/data/screening_vignettes.json`` are the clinical test vectors: each
names its sources and states the exact decision and the exact set of findings
``(code, path, severity)`` expected. Patients are structured with the generated record-format
walker (``dryneedle.records._structure.WALKERS``), exactly as ``dryneedle validate`` reads them.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

import dryneedle
from dryneedle.catalog import MUSCLES
from dryneedle.cli import main
from dryneedle.findings import Decision, Effect, Finding, Severity, all_rules, get_rule
from dryneedle.model import (
    History,
    Insertion,
    Manipulation,
    NeedlePhobia,
    Patient,
    Pregnancy,
    Region,
    Sex,
    Side,
    SiteFinding,
    SiteFindingKind,
    SiteSide,
    Technique,
)
from dryneedle.policy import DEFAULT_POLICY, GUIDELINE_POLICY, POLICIES, Policy, load_policy
from dryneedle.records import structure_record
from dryneedle.records._structure import BAD, WALKERS
from dryneedle.screening import (
    PlannedSite,
    ScreeningResult,
    age_on,
    is_eligible,
    rule_ids,
    screen,
    screen_for_record,
)
from dryneedle.sources import SOURCES

DATA = Path(__file__).parent / "data"
VIGNETTES: list[dict[str, Any]] = json.loads(
    (DATA / "screening_vignettes.json").read_text(encoding="utf-8")
)
ON = date(2026, 11, 27)
DECISIONS = {d.value for d in Decision}


# --- helpers --------------------------------------------------------------------------------------


def structure_patient(data: dict[str, Any]) -> Patient:
    """Structure a record-format patient object with the generated walker (no errors allowed)."""
    out: list[Finding] = []
    patient = WALKERS[Patient](data, "patient", out)
    errors = [f for f in out if f.severity is Severity.ERROR]
    assert not errors, errors
    assert patient is not BAD
    assert isinstance(patient, Patient)
    return patient


def sites_of(vignette: dict[str, Any]) -> list[tuple[str, ...]]:
    """The planned sites of a vignette as ``(muscle, side[, technique])`` tuples."""
    return [tuple(s) for s in vignette["sites"]]


def run(vignette: dict[str, Any]) -> ScreeningResult:
    """Screen a vignette's patient as the vignette says."""
    return screen(
        structure_patient(vignette["patient"]),
        on=date.fromisoformat(vignette["on"]),
        sites=sites_of(vignette),
        policy=POLICIES[vignette["policy"]],
    )


def triples(findings: tuple[Finding, ...]) -> collections.Counter[tuple[str, str, str]]:
    """The findings as a multiset of ``(code, path, severity)``."""
    return collections.Counter((f.code, f.path, f.severity.value) for f in findings)


def clear_history(**changes: Any) -> History:
    """A history with every answer known and negative, with ``changes`` applied."""
    base = History(
        bleeding_disorder=False, anticoagulant_therapy=False, immunocompromised=False,
        metal_allergy=False, epilepsy=False, diabetes=False, vascular_disease=False,
        prior_adverse_reaction=False, acute_illness=False, lymph_node_removal=False,
        needle_phobia=NeedlePhobia.NONE, consent=True,
    )
    return attrs.evolve(base, **changes)


def clear_patient(**changes: Any) -> Patient:
    """An adult, non-pregnant woman with every answer known and negative."""
    base = Patient(
        patient_id="p-unit-1", birth_date=date(1980, 5, 1), sex=Sex.FEMALE,
        pregnancy=Pregnancy.NOT_PREGNANT, history=clear_history(),
    )
    return attrs.evolve(base, **changes)


def spec_record() -> dict[str, Any]:
    """The example record of SPEC §6."""
    data: dict[str, Any] = json.loads((DATA / "spec_example.json").read_text(encoding="utf-8"))
    return data


# --- the vignettes --------------------------------------------------------------------------------


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_vignette(vignette: dict[str, Any]) -> None:
    """The vignette's decision and its exact set of findings (code, path, severity) hold."""
    result = run(vignette)
    expect = vignette["expect"]
    assert result.decision.value == expect["decision"]
    assert triples(result.findings) == collections.Counter(
        (c, p, s) for c, p, s in expect["codes"]
    )
    if "missing" in expect:
        assert sorted(result.missing) == sorted(expect["missing"])
    if "excluded_sites" in expect:
        assert [s.index for s in result.excluded_sites] == expect["excluded_sites"]
    assert len(result.site_decisions) == len(vignette["sites"])


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_vignette_findings_are_cited_and_free_of_identifiers(vignette: dict[str, Any]) -> None:
    """Every finding cites known sources and its message never contains the patient id."""
    result = run(vignette)
    pid = vignette["patient"]["patient_id"]
    for f in result.findings:
        assert f.sources, f.code
        assert all(s in SOURCES for s in f.sources), (f.code, f.sources)
        assert f.message
        assert pid not in f.message
        assert pid not in json.dumps(f.as_dict())


def test_vignette_file_is_well_formed() -> None:
    """Vignette ids are unique; each cites known sources, a known policy and decision."""
    ids = [v["id"] for v in VIGNETTES]
    assert len(ids) == len(set(ids))
    for v in VIGNETTES:
        assert set(v) == {"id", "description", "sources", "policy", "on", "patient", "sites",
                          "expect"}, v["id"]
        assert v["description"], v["id"]
        assert v["sources"], v["id"]
        assert all(s in SOURCES for s in v["sources"]), v["id"]
        assert v["policy"] in POLICIES, v["id"]
        date.fromisoformat(v["on"])
        assert v["expect"]["decision"] in DECISIONS, v["id"]
        assert all(code.startswith("screening.") for code, _, _ in v["expect"]["codes"])
        for site in v["sites"]:
            assert site[0] in MUSCLES, v["id"]
            assert 2 <= len(site) <= 3, v["id"]


def test_vignettes_cover_every_rule_and_both_policies() -> None:
    """Every screening rule is exercised; each decision and both built-in policies occur."""
    seen = {code for v in VIGNETTES for code, _, _ in v["expect"]["codes"]}
    assert set(rule_ids()) <= seen
    assert {v["expect"]["decision"] for v in VIGNETTES} == DECISIONS
    assert {v["policy"] for v in VIGNETTES} == set(POLICIES)


def test_vignettes_cover_both_policies_for_every_rule_they_treat_differently() -> None:
    """A rule whose effect differs between the built-in policies has a vignette under each."""
    by_policy: dict[str, set[str]] = {name: set() for name in POLICIES}
    for v in VIGNETTES:
        by_policy[v["policy"]].update(code for code, _, _ in v["expect"]["codes"])
    for rid in rule_ids():
        rule = get_rule(rid)
        assert rule.effect is not None
        effects = {p.effect_of(rid, rule.effect) for p in POLICIES.values()}
        if len(effects) > 1:
            for name, codes in by_policy.items():
                assert rid in codes, (rid, name)


def test_vignettes_agree_with_full_record_structuring() -> None:
    """Structuring a vignette's patient inside a whole record gives the same decision."""
    for v in VIGNETTES[:40]:
        record = spec_record()
        record["patient"] = v["patient"]
        rec = structure_record(record)
        got = screen(rec.patient, on=date.fromisoformat(v["on"]), sites=sites_of(v),
                     policy=POLICIES[v["policy"]])
        assert got.decision.value == v["expect"]["decision"], v["id"]


# --- age ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2014, 11, 27), date(2026, 11, 27), 12),  # birthday today counts
        (date(2014, 11, 28), date(2026, 11, 27), 11),  # birthday tomorrow
        (date(2014, 11, 26), date(2026, 11, 27), 12),
        (date(2008, 11, 27), date(2026, 11, 27), 18),
        (date(2012, 2, 29), date(2025, 2, 28), 12),  # leap-day birth, common year
        (date(2012, 2, 29), date(2025, 3, 1), 13),
        (date(2012, 2, 29), date(2024, 2, 28), 11),  # leap year, day before
        (date(2012, 2, 29), date(2024, 2, 29), 12),  # leap year, birthday
        (date(2088, 2, 29), date(2100, 2, 28), 11),  # 2100 is a common year
        (date(2088, 2, 29), date(2100, 3, 1), 12),
        (date(2000, 1, 1), date(2000, 1, 1), 0),
        (date(1999, 12, 31), date(2000, 1, 1), 0),
        (date(1920, 1, 1), date(2030, 12, 31), 110),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    """Age in whole years on a date: a birthday on ``on`` counts; 29 Feb reaches on 1 Mar."""
    assert age_on(birth, on) == age


def test_age_minimum_boundary_follows_the_policy_limit() -> None:
    """The minimum age is read from the policy: raising it to 13 excludes a 12-year-old."""
    patient = clear_patient(birth_date=date(2014, 11, 27))
    assert screen(patient, on=ON).decision is Decision.ELIGIBLE_WITH_PRECAUTIONS
    stricter = DEFAULT_POLICY.override(limits={"min_age_years": 13},
                                       justification="Clinic board decision (test)")
    result = screen(patient, on=ON, policy=stricter)
    assert result.decision is Decision.NOT_ELIGIBLE
    assert [f.code for f in result.findings] == ["screening.age_minimum"]


# --- is_eligible and the result -------------------------------------------------------------------


def test_is_eligible_only_for_plain_eligible() -> None:
    """``is_eligible`` is true for ``eligible`` only, never for precautions, review or exclusion."""
    assert is_eligible(screen(clear_patient(), on=ON))
    for changes in ({"history": clear_history(diabetes=True)},
                    {"history": clear_history(diabetes=None)},
                    {"pregnancy": Pregnancy.PREGNANT}):
        assert not is_eligible(screen(clear_patient(**changes), on=ON)), changes


def test_result_is_stamped_with_policy_date_and_version() -> None:
    """A result names the evaluation date, the policy (name and fingerprint) and the version."""
    for policy in (DEFAULT_POLICY, GUIDELINE_POLICY):
        result = screen(clear_patient(), on=ON, policy=policy)
        assert result.on == ON
        assert result.policy == policy.fingerprint
        assert result.policy_name == policy.name
        assert result.version == dryneedle.__version__
        data = result.as_dict()
        assert data["policy"] == {"name": policy.name, "fingerprint": policy.fingerprint}
        assert data["version"] == dryneedle.__version__
        assert data["on"] == "2026-11-27"


def _busy_result() -> ScreeningResult:
    patient = clear_patient(
        birth_date=date(2011, 6, 1),
        history=clear_history(diabetes=True, vascular_disease=None,
                              needle_phobia=NeedlePhobia.MILD),
        site_findings=(SiteFinding(region=Region.LOWER_BACK, side=SiteSide.LEFT,
                                   kind=SiteFindingKind.TATTOO),),
    )
    return screen(patient, on=ON, sites=[("lumbar_multifidus", "left"),
                                         ("upper_trapezius", "right", "superficial")])


def test_as_dict_is_deterministic_and_json_ready() -> None:
    """Two screenings of the same input serialise byte for byte identically."""
    first = json.dumps(_busy_result().as_dict(), sort_keys=False)
    second = json.dumps(_busy_result().as_dict(), sort_keys=False)
    assert first == second
    data = json.loads(first)
    assert data["decision"] == "needs_review"
    assert data["missing"] == ["patient.history.vascular_disease"]
    assert [s["allowed"] for s in data["sites"]] == [False, True]
    assert [s["path"] for s in data["sites"]] == ["session.insertions[0]",
                                                  "session.insertions[1]"]
    assert {f["code"] for f in data["findings"]} >= {"screening.site_finding",
                                                     "screening.over_lung_site"}


_SUBPROCESS = """
import json
from datetime import date
from dryneedle.model import *
from dryneedle.policy import DEFAULT_POLICY
from dryneedle.screening import screen
p = Patient(patient_id="p-unit-1", birth_date=date(2011, 6, 1), sex=Sex.FEMALE,
            pregnancy=Pregnancy.NOT_PREGNANT,
            history=History(bleeding_disorder=False, anticoagulant_therapy=False,
                            immunocompromised=False, metal_allergy=False, epilepsy=False,
                            diabetes=True, vascular_disease=None, prior_adverse_reaction=False,
                            acute_illness=False, lymph_node_removal=False,
                            needle_phobia=NeedlePhobia.MILD, consent=True),
            site_findings=(SiteFinding(region=Region.LOWER_BACK, side=SiteSide.LEFT,
                                       kind=SiteFindingKind.TATTOO),))
r = screen(p, on=date(2026, 11, 27), sites=[("lumbar_multifidus", "left"),
                                            ("upper_trapezius", "right", "superficial")])
clinic = DEFAULT_POLICY.override(name="clinic", limits={"recent_surgery_days": 180},
                                 justification="test")
print(json.dumps({"result": r.as_dict(), "fingerprint": clinic.fingerprint}))
"""


def test_result_and_fingerprint_are_identical_in_another_process() -> None:
    """A fresh interpreter (another hash seed) gives the same bytes and the same fingerprint."""
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    theirs = json.loads(out)
    clinic = DEFAULT_POLICY.override(name="clinic", limits={"recent_surgery_days": 180},
                                     justification="test")
    assert json.dumps(theirs["result"]) == json.dumps(_busy_result().as_dict())
    assert theirs["fingerprint"] == clinic.fingerprint


def test_missing_is_empty_when_an_exclusion_holds() -> None:
    """When a patient is excluded no answer could change that: ``missing`` is empty."""
    patient = clear_patient(history=clear_history(metal_allergy=True, diabetes=None))
    result = screen(patient, on=ON)
    assert result.decision is Decision.NOT_ELIGIBLE
    assert result.missing == ()
    assert "screening.unknown_answer" in {f.code for f in result.findings}


# --- screen_for_record ----------------------------------------------------------------------------


def test_screen_for_record_uses_the_session_date_and_insertions() -> None:
    """The record's session date is the evaluation date and its insertions are the sites."""
    record = structure_record(spec_record())
    result = screen_for_record(record.patient, record.session)
    assert result is not None
    assert result.on == record.session.date
    assert [s.muscle for s in result.site_decisions] == [
        i.muscle for i in record.session.insertions
    ]
    direct = screen(record.patient, on=record.session.date, sites=record.session.insertions)
    assert result.as_dict() == direct.as_dict()


def test_screen_for_record_on_overrides_the_session_date() -> None:
    """An explicit ``on`` wins over the session's date."""
    record = structure_record(spec_record())
    result = screen_for_record(record.patient, record.session, on=date(2030, 1, 2))
    assert result is not None
    assert result.on == date(2030, 1, 2)


def test_screen_for_record_without_a_session() -> None:
    """Without a readable session: no date gives ``None``; with ``on`` no sites are screened."""
    record = structure_record(spec_record())
    assert screen_for_record(record.patient, None) is None
    result = screen_for_record(record.patient, None, on=ON, policy=GUIDELINE_POLICY)
    assert result is not None
    assert result.site_decisions == ()
    assert result.policy_name == "guideline"


# --- site inputs ----------------------------------------------------------------------------------


def _insertion(muscle: str, side: Side, technique: Technique) -> Insertion:
    return Insertion(muscle=muscle, side=side, technique=technique,
                     manipulation=Manipulation.PISTONING, depth_mm=12.0)


def test_site_inputs_tuple_planned_site_and_insertion_are_equivalent() -> None:
    """Tuples, :class:`PlannedSite` and :class:`Insertion` describe the same planned site."""
    patient = clear_patient(
        history=clear_history(anticoagulant_therapy=True),
        site_findings=(SiteFinding(region=Region.NECK, side=SiteSide.LEFT,
                                   kind=SiteFindingKind.SCAR),),
    )
    forms: list[list[Any]] = [
        [("psoas", "left", "deep"), ("upper_trapezius", "left", "deep"),
         ("upper_trapezius", "right", "deep")],
        [PlannedSite(muscle="psoas", side=Side.LEFT, technique=Technique.DEEP),
         PlannedSite(muscle="upper_trapezius", side=Side.LEFT, technique=Technique.DEEP),
         PlannedSite(muscle="upper_trapezius", side=Side.RIGHT, technique=Technique.DEEP)],
        [_insertion("psoas", Side.LEFT, Technique.DEEP),
         _insertion("upper_trapezius", Side.LEFT, Technique.DEEP),
         _insertion("upper_trapezius", Side.RIGHT, Technique.DEEP)],
    ]
    results = [screen(patient, on=ON, sites=f, policy=GUIDELINE_POLICY).as_dict() for f in forms]
    assert results[0] == results[1] == results[2]
    assert [s["allowed"] for s in results[0]["sites"]] == [False, False, True]
    # Any iterable works, e.g. a generator.
    gen = screen(patient, on=ON, sites=(s for s in forms[0]), policy=GUIDELINE_POLICY)
    assert gen.as_dict() == results[0]


def test_unknown_technique_counts_as_deep_for_bleeding_risk() -> None:
    """A site without a technique is screened as deep (bleeding risk); superficial is not."""
    patient = clear_patient(history=clear_history(bleeding_disorder=True))
    for site in (("psoas", "left"), ("psoas", "left", None),
                 PlannedSite(muscle="psoas", side=Side.LEFT)):
        result = screen(patient, on=ON, sites=[site], policy=GUIDELINE_POLICY)
        assert not result.site_decisions[0].allowed, site
    shallow = screen(patient, on=ON, sites=[("psoas", "left", "superficial")],
                     policy=GUIDELINE_POLICY)
    assert shallow.site_decisions[0].allowed
    assert shallow.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS


def test_site_path_prefix_is_used_in_findings() -> None:
    """``site_path`` sets the prefix of site paths (for callers that are not records)."""
    result = screen(clear_patient(), on=ON, sites=[("upper_trapezius", "left")],
                    site_path="plan.sites")
    assert [f.path for f in result.findings] == ["plan.sites[0]"]
    assert result.site_decisions[0].path == "plan.sites[0]"


def test_muscle_not_in_the_catalog_is_not_screened_as_safe() -> None:
    """A planned muscle the catalog does not know cannot be checked: never ``eligible``."""
    result = screen(clear_patient(), on=ON, sites=[("not_a_muscle", "left"),
                                                   ("deltoid", "left")])
    assert result.decision is not Decision.ELIGIBLE
    assert not result.site_decisions[0].allowed
    assert result.site_decisions[1].allowed
    assert ("screening.unknown_answer", "session.insertions[0].muscle", "warning") in triples(
        result.findings
    )


def test_site_decision_carries_its_findings() -> None:
    """Each site decision holds the findings about that site, and only those."""
    result = _busy_result()
    first, second = result.site_decisions
    assert (first.index, first.muscle, first.side, first.allowed) == (
        0, "lumbar_multifidus", Side.LEFT, False)
    assert [f.code for f in first.findings] == ["screening.site_finding"]
    assert [f.code for f in second.findings] == ["screening.over_lung_site"]
    assert all(f in result.findings for s in result.site_decisions for f in s.findings)


# --- policies -------------------------------------------------------------------------------------


def _surgery_patient(days_ago: int) -> Patient:
    return clear_patient(site_findings=(
        SiteFinding(region=Region.HIP, side=SiteSide.RIGHT, kind=SiteFindingKind.SURGERY,
                    date=date.fromordinal(ON.toordinal() - days_ago)),
    ))


def test_limit_override_moves_the_recent_surgery_window() -> None:
    """With ``recent_surgery_days=180`` a 120-day-old surgery excludes; 181 days does not.

    SPEC §1 (1.1): the window is a safety floor, so a policy may only widen it.
    """
    sites = [("tensor_fasciae_latae", "right"), ("gluteus_medius", "right")]
    clinic = DEFAULT_POLICY.override(limits={"recent_surgery_days": 180},
                                     justification="Surgeons' consensus (test)")
    old = _surgery_patient(120)
    assert screen(old, on=ON, sites=sites).decision is Decision.ELIGIBLE
    assert screen(old, on=ON, sites=sites, policy=clinic).decision is (
        Decision.ELIGIBLE_WITH_PRECAUTIONS)
    edge = screen(_surgery_patient(180), on=ON, sites=sites, policy=clinic)
    assert [s.index for s in edge.excluded_sites] == [0]
    assert screen(_surgery_patient(181), on=ON, sites=sites, policy=clinic).decision is (
        Decision.ELIGIBLE
    )
    with pytest.raises(ValueError, match="recent_surgery_days"):
        DEFAULT_POLICY.override(limits={"recent_surgery_days": 30}, justification="narrower")


def test_severity_override_changes_severity_not_the_decision() -> None:
    """A severity-only override changes the finding's severity; the effect stays."""
    clinic = DEFAULT_POLICY.override(rules={"screening.diabetes": {"severity": "error"}},
                                     justification="Clinic wants diabetes flagged red")
    patient = clear_patient(history=clear_history(diabetes=True))
    result = screen(patient, on=ON, policy=clinic)
    assert triples(result.findings) == collections.Counter(
        {("screening.diabetes", "patient.history.diabetes", "error"): 1}
    )
    assert result.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS


def test_effect_override_changes_decision_and_implied_severity() -> None:
    """An effect override changes the decision, and the severity follows the effect."""
    stricter = DEFAULT_POLICY.override(rules={"screening.diabetes": {"effect": "exclude"}},
                                       justification="Clinic excludes diabetes (test)")
    laxer = DEFAULT_POLICY.override(rules={"screening.metal_allergy": {"effect": "precaution"}},
                                    justification="Clinic uses coated needles (test)")
    diabetic = screen(clear_patient(history=clear_history(diabetes=True)), on=ON,
                      policy=stricter)
    assert diabetic.decision is Decision.NOT_ELIGIBLE
    assert diabetic.findings[0].severity is Severity.ERROR
    allergic = screen(clear_patient(history=clear_history(metal_allergy=True)), on=ON,
                      policy=laxer)
    assert allergic.decision is Decision.ELIGIBLE_WITH_PRECAUTIONS
    assert allergic.findings[0].severity is Severity.WARNING


def test_guideline_findings_cite_the_override_sources() -> None:
    """Under the guideline policy a relaxed rule's finding cites the override's sources too."""
    patient = clear_patient(history=clear_history(anticoagulant_therapy=True))
    (finding,) = screen(patient, on=ON, policy=GUIDELINE_POLICY).findings
    override = GUIDELINE_POLICY.rule_override("screening.anticoagulant_therapy")
    assert override is not None
    assert set(override.sources) <= set(finding.sources)
    assert "munoz-2022" in finding.sources


@pytest.mark.parametrize("justification", ["", "   ", "\n\t"])
def test_override_without_justification_is_rejected(justification: str) -> None:
    """An override must say why: an empty or blank justification raises ``ValueError``."""
    with pytest.raises(ValueError, match="justification"):
        DEFAULT_POLICY.override(limits={"recent_surgery_days": 30}, justification=justification)
    with pytest.raises(ValueError, match="justification"):
        DEFAULT_POLICY.override(rules={"screening.diabetes": {"effect": "exclude"}},
                                justification=justification)
    with pytest.raises(ValueError, match="justification"):
        load_policy({"limits": {"recent_surgery_days": 30}})


def test_fingerprint_depends_on_content_only() -> None:
    """Equal content gives equal fingerprints; any change of limit or rule changes it."""
    a = DEFAULT_POLICY.override(name="clinic", limits={"recent_surgery_days": 180},
                                justification="first reason")
    b = load_policy({"name": "clinic", "limits": {"recent_surgery_days": 180},
                     "justification": "another reason, same content"})
    assert a.fingerprint == b.fingerprint
    c = DEFAULT_POLICY.override(name="clinic", limits={"recent_surgery_days": 181},
                                justification="first reason")
    d = DEFAULT_POLICY.override(name="clinic", limits={"recent_surgery_days": 180},
                                rules={"screening.diabetes": {"severity": "error"}},
                                justification="first reason")
    e = DEFAULT_POLICY.override(name="clinic", limits={"recent_surgery_days": 180},
                                rules={"screening.diabetes": {"effect": "exclude"}},
                                justification="first reason")
    prints = {p.fingerprint for p in (a, c, d, e, DEFAULT_POLICY, GUIDELINE_POLICY)}
    assert len(prints) == 6
    assert Policy().fingerprint == DEFAULT_POLICY.fingerprint
    for p in (a, c, d, e):
        assert screen(clear_patient(), on=ON, policy=p).policy == p.fingerprint


def test_policy_cannot_make_unknown_answers_safe() -> None:
    """SPEC §1.1: an unknown answer can *never* lead to ``eligible``, whatever the policy.

    A clinic override of ``screening.unknown_answer`` (or ``birth_date_implausible``) to
    ``note`` must be refused, or be ignored by screening.
    """
    patient = clear_patient(history=clear_history(diabetes=None))
    late = clear_patient(birth_date=date(2030, 1, 1))
    for rule_id, who in (("screening.unknown_answer", patient),
                         ("screening.birth_date_implausible", late)):
        for effect in ("note", "precaution"):
            try:
                lax = DEFAULT_POLICY.override(rules={rule_id: {"effect": effect}},
                                              justification="We trust our intake form")
            except ValueError:
                continue
            result = screen(who, on=ON, policy=lax)
            assert result.decision is not Decision.ELIGIBLE, (rule_id, effect)
            assert result.decision is not Decision.ELIGIBLE_WITH_PRECAUTIONS, (rule_id, effect)


# --- robustness -----------------------------------------------------------------------------------


def test_evaluation_datetime_is_read_as_its_date() -> None:
    """``on`` typed as ``date`` also accepts a ``datetime`` (a ``date`` subclass) without raising.

    ``screen`` must give the same result as for the datetime's calendar date (or reject it
    explicitly); comparing a ``datetime`` with a birth ``date`` must not crash the screen.
    """
    patient = _surgery_patient(10)
    when = datetime(2026, 11, 27, 15, 30)  # a naive datetime, as callers pass
    result = screen(patient, on=when, sites=[("tensor_fasciae_latae", "right")])
    expected = screen(patient, on=ON, sites=[("tensor_fasciae_latae", "right")])
    assert result.as_dict() == expected.as_dict()


def _raw(value: object) -> Any:
    """A plain value where the model declares an enum or a bool (as untyped callers pass)."""
    return value


# Mistyped answers, built lazily: a model that rejects them at construction is a valid fix.
MISTYPED: dict[str, Any] = {
    "pregnancy as str": lambda: {"pregnancy": _raw("pregnant")},
    "needle_phobia as str": lambda: {"history": clear_history(needle_phobia=_raw("severe"))},
    "bleeding_disorder as 1": lambda: {"history": clear_history(bleeding_disorder=_raw(1))},
    "consent as 0": lambda: {"history": clear_history(consent=_raw(0))},
    "site finding with str enums": lambda: {"site_findings": (
        SiteFinding(region=_raw("lower_back"), side=_raw("left"), kind=_raw("wound")),
    )},
}
TYPED: dict[str, dict[str, Any]] = {
    "pregnancy as str": {"pregnancy": Pregnancy.PREGNANT},
    "needle_phobia as str": {"history": clear_history(needle_phobia=NeedlePhobia.SEVERE)},
    "bleeding_disorder as 1": {"history": clear_history(bleeding_disorder=True)},
    "consent as 0": {"history": clear_history(consent=False)},
}


def _mistyped_patient(label: str, patient_id: str) -> Patient | None:
    """The mistyped patient, or ``None`` when the model refuses it at construction."""
    try:
        patient: Patient = clear_patient(patient_id=patient_id, **MISTYPED[label]())
    except (TypeError, ValueError):
        return None
    return patient


@pytest.mark.parametrize("label", sorted(MISTYPED))
def test_mistyped_answers_never_read_as_safe(label: str) -> None:
    """Unknown is never safe: an answer that is not exactly a known-safe value is not "no".

    Python callers (and the ``dryneedle.records`` converter doctest) build models with plain
    strings or ints; attrs does not convert them. Either the model converts or refuses such a
    value at construction, or screening must read it as what it equals or as unknown, never
    silently as the safe answer.
    """
    patient = _mistyped_patient(label, "p-unit-1")
    if patient is None:
        return
    # A fresh policy object: its memo tables are empty, so no earlier screen can answer.
    result = screen(patient, on=ON, sites=[("lumbar_multifidus", "left"),
                                           ("gluteus_medius", "left")], policy=Policy())
    assert result.decision is not Decision.ELIGIBLE, label


@pytest.mark.parametrize("label", sorted(TYPED))
def test_a_result_does_not_depend_on_earlier_screens(label: str) -> None:
    """Determinism (SPEC §1.7, no global state): a screen's result depends on its input only.

    Screening an earlier patient (here one with a plain ``0``/``1``/``str`` answer, which
    compares and hashes equal to ``False``/``True``/the enum member) must not change the
    result of a later, correctly typed patient screened under the same policy object.
    """
    typed = clear_patient(patient_id="p-later", **TYPED[label])
    alone = screen(typed, on=ON, policy=Policy())
    assert alone.decision is Decision.NOT_ELIGIBLE, label
    earlier = _mistyped_patient(label, "p-earlier")
    if earlier is None:
        return
    shared = Policy()
    screen(earlier, on=ON, policy=shared)
    later = screen(typed, on=ON, policy=shared)
    assert later.as_dict() == alone.as_dict(), label


def test_screen_never_raises_on_missing_everything() -> None:
    """A patient with nothing but an id is screened (needs review), with and without sites."""
    bare = Patient(patient_id="p-bare")
    for policy in POLICIES.values():
        result = screen(bare, on=ON, sites=[("psoas", "midline")], policy=policy)
        assert result.decision is Decision.NEEDS_REVIEW
        assert "patient.birth_date" in result.missing
        assert "patient.pregnancy" in result.missing


# --- the rule registry ----------------------------------------------------------------------------


def test_every_screening_rule_is_registered_and_cited() -> None:
    """Each screening rule id is registered, category ``screening``, with an effect and sources."""
    ids = rule_ids()
    assert len(ids) == len(set(ids))
    limits = {lim.name for lim in DEFAULT_POLICY.limits()}
    for rid in ids:
        rule = get_rule(rid)
        assert rule.id == rid
        assert rule.category == "screening"
        assert rule.title
        assert rule.rationale
        assert rule.effect is not None
        assert rule.sources, rid
        assert all(s in SOURCES for s in rule.sources), rid
        assert set(rule.limits) <= limits, rid


def test_screening_rules_in_registry_are_exactly_rule_ids() -> None:
    """The registry's screening category and ``rule_ids()`` list the same rules."""
    registered = {r.id for r in all_rules() if r.category == "screening"}
    assert registered == set(rule_ids())


def test_clinic_policy_only_rules_say_so() -> None:
    """SOURCES.md: a rule whose only basis is grade C says "clinic policy default"."""
    for rid in rule_ids():
        rule = get_rule(rid)
        if all(SOURCES[s].grade == "C" for s in rule.sources):
            assert "clinic policy default" in rule.rationale.lower(), rid


def test_spec_table_effects_under_the_default_policy() -> None:
    """SPEC §3 decision table: each rule's default effect is the one the table gives."""
    expected = {
        Effect.EXCLUDE: {
            "screening.age_minimum", "screening.pregnancy", "screening.bleeding_disorder",
            "screening.anticoagulant_therapy", "screening.immunocompromised",
            "screening.metal_allergy", "screening.needle_phobia_severe",
            "screening.consent_refused", "screening.prior_adverse_reaction",
            "screening.acute_illness", "screening.all_sites_excluded",
        },
        Effect.REVIEW: {"screening.unknown_answer", "screening.birth_date_implausible"},
        Effect.PRECAUTION: {
            "screening.epilepsy", "screening.diabetes", "screening.vascular_disease",
            "screening.lymph_node_removal", "screening.needle_phobia_mild",
            "screening.age_minor", "screening.over_lung_site", "screening.site_finding",
            "screening.site_lymphoedema", "screening.site_recent_surgery",
            "screening.bleeding_risk_site",
        },
    }
    for effect, ids in expected.items():
        for rid in ids:
            rule = get_rule(rid)
            assert rule.effect is not None
            assert DEFAULT_POLICY.effect_of(rid, rule.effect) is effect, rid
    assert set().union(*expected.values()) == set(rule_ids())


def test_guideline_policy_relaxes_exactly_the_spec_rules() -> None:
    """SPEC §3: guideline turns bleeding, antithrombotics and immunity into precautions and
    pregnancy and children into review; nothing else differs from the default."""
    changed = {}
    for rid in rule_ids():
        rule = get_rule(rid)
        assert rule.effect is not None
        d = DEFAULT_POLICY.effect_of(rid, rule.effect)
        g = GUIDELINE_POLICY.effect_of(rid, rule.effect)
        if d is not g:
            changed[rid] = g
    assert changed == {
        "screening.bleeding_disorder": Effect.PRECAUTION,
        "screening.anticoagulant_therapy": Effect.PRECAUTION,
        "screening.immunocompromised": Effect.PRECAUTION,
        "screening.pregnancy": Effect.REVIEW,
        "screening.age_minimum": Effect.REVIEW,
    }
    for rid in changed:
        override = GUIDELINE_POLICY.rule_override(rid)
        assert override is not None
        assert override.justification
        assert override.sources
        assert all(s in SOURCES for s in override.sources)


def test_cli_rules_lists_every_screening_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """``dryneedle rules --category screening`` prints every screening rule and no other."""
    assert main(["rules", "--category", "screening"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in lines if line.strip()}
    assert listed == set(rule_ids())


def test_cli_rules_json_shows_the_guideline_effects(capsys: pytest.CaptureFixture[str]) -> None:
    """The JSON catalog under ``--policy guideline`` shows the relaxed effects and severities."""
    assert main(["rules", "--category", "screening", "--format", "json",
                 "--policy", "guideline"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(rule_ids())
    assert rows["screening.bleeding_disorder"]["effect"] == "precaution"
    assert rows["screening.bleeding_disorder"]["severity"] == "warning"
    assert rows["screening.pregnancy"]["effect"] == "review"
    assert rows["screening.metal_allergy"]["effect"] == "exclude"
    assert rows["screening.site_recent_surgery"]["limits"] == {"recent_surgery_days": 90}
    assert all(r["sources"] for r in rows.values())


def test_lymphoedema_excludes_the_whole_limb_on_its_side() -> None:
    """za-bn121: a lymphoedema area *or limb*: an arm finding excludes the forearm and the
    shoulder (deltoid) of that side too (SPEC §3 1.1)."""
    patient = Patient(
        patient_id="p-limb",
        site_findings=(SiteFinding(region="arm", side="left", kind="lymphoedema"),),
    )
    result = screen(patient, on=date(2026, 11, 27),
                    sites=[("forearm_extensors", "left"), ("forearm_extensors", "right"),
                           ("deltoid", "left")])
    assert [s.allowed for s in result.site_decisions] == [False, True, False]
    assert [f.path for f in result.findings if f.code == "screening.site_lymphoedema"] == [
        "session.insertions[0]", "session.insertions[2]"
    ]
