"""Hypothesis properties of screening: the safety invariants of SPEC §1 and §3.

* Monotonicity (SPEC §3): making any answer worse or unknown, or adding a site finding, never
  moves the decision towards ``eligible`` (order: eligible < eligible_with_precautions <
  needs_review < not_eligible).
* Fail-closed (SPEC §1.1): any unknown answer a rule needs means the decision is never
  ``eligible``; it is ``needs_review`` (naming the answer in ``missing``) or ``not_eligible``.
* Determinism (SPEC §1.7): the same input gives the same result, byte for byte.
* Never raises (SPEC §1.2) on any generated patient, site list, date and built-in policy.

Example counts come from the hypothesis profile (``tests/conftest.py``).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from dryneedle.catalog import MUSCLES
from dryneedle.findings import DECISION_ORDER, Decision
from dryneedle.model import (
    History,
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
from dryneedle.policy import DEFAULT_POLICY, GUIDELINE_POLICY, Policy
from dryneedle.records import converter
from dryneedle.screening import PlannedSite, ScreeningResult, age_on, screen
from dryneedle.sources import SOURCES
from dryneedle.strategies import patients, site_findings

HISTORY_BOOLS = (
    "bleeding_disorder", "anticoagulant_therapy", "immunocompromised", "metal_allergy",
    "epilepsy", "diabetes", "vascular_disease", "prior_adverse_reaction", "acute_illness",
    "lymph_node_removal",
)

# (field, better value, worse value): each pair makes one answer worse or unknown.
WORSENINGS: tuple[tuple[str, Any, Any], ...] = (
    *((f, False, True) for f in HISTORY_BOOLS),
    *((f, False, None) for f in HISTORY_BOOLS),
    ("needle_phobia", NeedlePhobia.NONE, NeedlePhobia.MILD),
    ("needle_phobia", NeedlePhobia.NONE, NeedlePhobia.SEVERE),
    ("needle_phobia", NeedlePhobia.NONE, None),
    ("needle_phobia", NeedlePhobia.MILD, NeedlePhobia.SEVERE),
    ("needle_phobia", NeedlePhobia.MILD, None),
    ("consent", True, False),
    ("consent", True, None),
)
PREGNANCY_WORSENINGS: tuple[tuple[Pregnancy | None, Pregnancy | None], ...] = (
    (Pregnancy.NOT_PREGNANT, Pregnancy.PREGNANT),
    (Pregnancy.NOT_PREGNANT, Pregnancy.UNKNOWN),
    (Pregnancy.NOT_PREGNANT, None),
    (Pregnancy.UNKNOWN, Pregnancy.PREGNANT),
    (None, Pregnancy.PREGNANT),
)

policies = st.sampled_from([DEFAULT_POLICY, GUIDELINE_POLICY])
dates = st.dates(min_value=date(1915, 1, 1), max_value=date(2035, 12, 31))
planned_sites = st.lists(
    st.builds(
        PlannedSite,
        muscle=st.sampled_from(sorted(MUSCLES)),
        side=st.sampled_from(Side),
        technique=st.none() | st.sampled_from(Technique),
    ),
    max_size=4,
)


def rank(result: ScreeningResult) -> int:
    """Position of the result's decision in the SPEC §3 order."""
    return DECISION_ORDER[result.decision]


def unknown_required(patient: Patient, on: date) -> list[str]:
    """Paths of the answers a screening rule needs that are unknown (SPEC §3 table)."""
    out = []
    if patient.birth_date is None or patient.birth_date > on:
        out.append("patient.birth_date")
    if patient.sex is not Sex.MALE and patient.pregnancy in (None, Pregnancy.UNKNOWN):
        out.append("patient.pregnancy")
    h = patient.history
    for name in (*HISTORY_BOOLS, "needle_phobia", "consent"):
        if getattr(h, name) is None:
            out.append(f"patient.history.{name}")
    return out


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies,
       change=st.sampled_from(WORSENINGS))
def test_worse_or_unknown_history_answer_never_lowers_the_decision(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
    change: tuple[str, Any, Any],
) -> None:
    """Turning one history answer from safe to worse or unknown never moves towards eligible."""
    field, better, worse = change
    before = attrs.evolve(patient, history=attrs.evolve(patient.history, **{field: better}))
    after = attrs.evolve(patient, history=attrs.evolve(patient.history, **{field: worse}))
    assert rank(screen(after, on=on, sites=sites, policy=policy)) >= rank(
        screen(before, on=on, sites=sites, policy=policy)
    )


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies,
       change=st.sampled_from(PREGNANCY_WORSENINGS))
def test_worse_or_unknown_pregnancy_never_lowers_the_decision(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
    change: tuple[Pregnancy | None, Pregnancy | None],
) -> None:
    """not_pregnant → pregnant / unknown / absent never moves the decision towards eligible."""
    better, worse = change
    before = attrs.evolve(patient, pregnancy=better)
    after = attrs.evolve(patient, pregnancy=worse)
    assert rank(screen(after, on=on, sites=sites, policy=policy)) >= rank(
        screen(before, on=on, sites=sites, policy=policy)
    )


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies,
       finding=site_findings(), where=st.integers(min_value=0, max_value=3))
def test_adding_a_site_finding_never_lowers_the_decision(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
    finding: SiteFinding, where: int,
) -> None:
    """Adding a site finding (any region, side, kind, date) never moves towards eligible."""
    found = list(patient.site_findings or ())
    found.insert(min(where, len(found)), finding)
    after = attrs.evolve(patient, site_findings=tuple(found))
    before_r = screen(patient, on=on, sites=sites, policy=policy)
    after_r = screen(after, on=on, sites=sites, policy=policy)
    assert rank(after_r) >= rank(before_r)
    # A site allowed after the new finding was allowed before it.
    for b, a in zip(before_r.site_decisions, after_r.site_decisions, strict=True):
        assert b.allowed or not a.allowed


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies)
def test_fail_closed_unknown_answers_are_never_eligible(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
) -> None:
    """Any unknown required answer ⇒ not eligible: review naming it, or an exclusion."""
    result = screen(patient, on=on, sites=sites, policy=policy)
    unknown = unknown_required(patient, on)
    if unknown:
        assert result.decision in (Decision.NEEDS_REVIEW, Decision.NOT_ELIGIBLE)
        if result.decision is Decision.NEEDS_REVIEW:
            assert set(unknown) <= set(result.missing)
    if result.decision is Decision.ELIGIBLE:
        assert unknown == []
        assert result.missing == ()


@given(patient=patients(unknown=False), sites=planned_sites, on=dates, policy=policies,
       data=st.data())
def test_fail_closed_one_unknown_answer_in_a_complete_history(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy, data: st.DataObject,
) -> None:
    """Blanking one answer of an otherwise complete patient never yields eligible."""
    field = data.draw(st.sampled_from((*HISTORY_BOOLS, "needle_phobia", "consent",
                                       "birth_date", "pregnancy")))
    if field == "birth_date":
        blank = attrs.evolve(patient, birth_date=None)
    elif field == "pregnancy":
        blank = attrs.evolve(patient, sex=data.draw(st.sampled_from(
            [Sex.FEMALE, Sex.OTHER, Sex.UNKNOWN, None])), pregnancy=None)
    else:
        blank = attrs.evolve(patient, history=attrs.evolve(patient.history, **{field: None}))
    result = screen(blank, on=on, sites=sites, policy=policy)
    assert result.decision in (Decision.NEEDS_REVIEW, Decision.NOT_ELIGIBLE)
    path = f"patient.{field}" if field in ("birth_date", "pregnancy") else (
        f"patient.history.{field}")
    if result.decision is Decision.NEEDS_REVIEW:
        assert path in result.missing


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies)
def test_determinism_same_input_same_bytes(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
) -> None:
    """The same input twice, or an equal copy of it, serialises byte for byte identically."""
    first = screen(patient, on=on, sites=sites, policy=policy)
    second = screen(patient, on=on, sites=list(sites), policy=policy)
    copy = converter.structure(converter.unstructure(patient), Patient)
    third = screen(copy, on=on, sites=tuple(sites), policy=policy)
    assert first == second
    blob = json.dumps(first.as_dict())
    assert blob == json.dumps(second.as_dict()) == json.dumps(third.as_dict())


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies)
def test_never_raises_and_the_result_is_coherent(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
) -> None:
    """Screening never raises; findings are cited, PHI-free, well placed; decision matches."""
    result = screen(patient, on=on, sites=sites, policy=policy)
    assert len(result.site_decisions) == len(sites)
    for i, (s, planned) in enumerate(zip(result.site_decisions, sites, strict=True)):
        assert (s.index, s.path, s.muscle, s.side) == (
            i, f"session.insertions[{i}]", planned.muscle, planned.side)
    for f in result.findings:
        assert f.code.startswith("screening.")
        assert f.sources
        assert all(s in SOURCES for s in f.sources)
        assert patient.patient_id not in f.message
        assert f.path.startswith(("patient.", "session.insertions"))
    # With the built-in policies every finding has an effect, so eligible means no finding.
    assert (result.decision is Decision.ELIGIBLE) == (result.findings == ())
    unknown_paths = {f.path for f in result.findings
                     if f.code in ("screening.unknown_answer",
                                   "screening.birth_date_implausible")}
    assert set(result.missing) <= unknown_paths
    if result.decision is Decision.NOT_ELIGIBLE:
        assert result.missing == ()
    excluded = [s for s in result.site_decisions if not s.allowed]
    if sites and len(excluded) == len(sites):
        assert result.decision is Decision.NOT_ELIGIBLE


@given(patient=patients(), sites=planned_sites, on=dates)
def test_guideline_is_never_stricter_than_default(
    patient: Patient, sites: list[PlannedSite], on: date,
) -> None:
    """SPEC §3: the guideline policy only relaxes the default; it never decides more strictly."""
    default = screen(patient, on=on, sites=sites, policy=DEFAULT_POLICY)
    guideline = screen(patient, on=on, sites=sites, policy=GUIDELINE_POLICY)
    assert rank(guideline) <= rank(default)


@given(history=st.from_type(History), on=dates)
def test_every_history_is_screened_without_sites(history: History, on: date) -> None:
    """Any history (registered strategy) is screened; no sites means no site decisions."""
    result = screen(Patient(patient_id="p-1", history=history), on=on)
    assert result.site_decisions == ()
    assert result.decision is not Decision.ELIGIBLE  # birth date unknown


@given(first=patients(), second=patients(), sites=planned_sites, on=dates, policy=policies)
def test_a_result_does_not_depend_on_earlier_screens(
    first: Patient, second: Patient, sites: list[PlannedSite], on: date, policy: Policy,
) -> None:
    """No global state: screening another patient first never changes a patient's result."""
    fresh = attrs.evolve(policy)  # equal content, its own (empty) memo tables
    alone = screen(second, on=on, sites=sites, policy=fresh)
    shared = attrs.evolve(policy)
    screen(first, on=on, sites=sites, policy=shared)
    after = screen(second, on=on, sites=sites, policy=shared)
    assert after.as_dict() == alone.as_dict()


@given(birth=dates, on=dates, policy=policies)
def test_age_findings_agree_with_age_on(birth: date, on: date, policy: Policy) -> None:
    """The age rules fire exactly as :func:`age_on` and the policy's age limits say."""
    result = screen(Patient(patient_id="p-1", birth_date=birth), on=on, policy=policy)
    codes = {f.code for f in result.findings if f.path == "patient.birth_date"}
    if birth > on:
        assert codes == {"screening.birth_date_implausible"}
        return
    age = age_on(birth, on)
    assert age >= 0
    if age < policy.min_age_years:
        assert codes == {"screening.age_minimum"}
    elif age < policy.adult_age_years:
        assert codes == {"screening.age_minor"}
    else:
        assert codes == set()


def _as_plain(finding: SiteFinding, shape: str) -> Any:
    """The same finding as a caller's own object: a mapping or an object with plain strings."""
    parts = {"region": finding.region.value, "side": finding.side.value,
             "kind": finding.kind.value, "date": finding.date}
    if shape == "mapping":
        return parts
    return type("Found", (), parts)()


@given(patient=patients(), sites=planned_sites, on=dates, policy=policies,
       finding=site_findings(), shape=st.sampled_from(["mapping", "object"]),
       junk=st.sampled_from([None, "region", "side", "kind", "date", "all"]))
def test_site_findings_of_a_callers_own_types_are_read_or_reviewed(
    patient: Patient, sites: list[PlannedSite], on: date, policy: Policy,
    finding: SiteFinding, shape: str, junk: str | None,
) -> None:
    """A site finding given as a mapping or a plain object (strings for the enum parts) is read
    as the model's finding is; a part that cannot be read (a date given as text, too) is
    unknown: where the model's finding excludes a site, the decision is reviewed or the site
    excluded; nothing raises (adversarial review of the site memo)."""
    plain = _as_plain(finding, shape)
    if junk is not None:
        for name in (["region", "side", "kind", "date"] if junk == "all" else [junk]):
            bad = "2020-01-01" if name == "date" else ["not", "a", "member"]
            if shape == "mapping":
                plain[name] = bad
            else:
                setattr(plain, name, bad)
    found = [*(patient.site_findings or ()), plain]
    given_result = screen(attrs.evolve(patient, site_findings=tuple(found)),
                          on=on, sites=sites, policy=policy)
    model_result = screen(attrs.evolve(patient, site_findings=(*found[:-1], finding)),
                          on=on, sites=sites, policy=policy)
    if junk is None:
        assert given_result == model_result
    else:  # where the real finding excludes a site, the unreadable one excludes or reviews
        closed = given_result.decision in (Decision.NEEDS_REVIEW, Decision.NOT_ELIGIBLE)
        for m, g in zip(model_result.site_decisions, given_result.site_decisions, strict=True):
            assert m.allowed or not g.allowed or closed


def _all_answered_no() -> Patient:
    """An adult whose every history answer is given and harmless (screens ``eligible``)."""
    history = History(bleeding_disorder=False, anticoagulant_therapy=False,
                      immunocompromised=False, metal_allergy=False, epilepsy=False,
                      diabetes=False, vascular_disease=False, prior_adverse_reaction=False,
                      acute_illness=False, lymph_node_removal=False,
                      needle_phobia=NeedlePhobia.NONE, consent=True)
    return Patient(patient_id="p", birth_date=date(1980, 1, 1), sex=Sex.MALE, history=history)


def test_a_site_finding_that_is_not_one_is_unknown_not_a_crash() -> None:
    base = _all_answered_no()
    assert screen(base, on=date(2026, 3, 1), sites=[("deltoid", "left")]).decision is (
        Decision.ELIGIBLE)
    for junk in (None, 3, "scar", ["neck"]):
        result = screen(attrs.evolve(base, site_findings=(junk,)),  # type: ignore[arg-type]
                        on=date(2026, 3, 1),
                        sites=[("deltoid", "left")])
        assert result.decision in (Decision.NEEDS_REVIEW, Decision.NOT_ELIGIBLE)


def test_a_site_finding_that_fakes_its_type_is_read_not_trusted() -> None:
    """Types are asked with ``type()``: an object claiming (``__class__``) to be a model
    finding or member, or whose parts change between reads or raise, is read once, part by
    part, and never drops the finding (second adversarial review)."""
    base = _all_answered_no()
    sites = [("levator_scapulae", "left")]
    on = date(2026, 12, 1)
    model = screen(attrs.evolve(base, site_findings=(
        SiteFinding(region="neck", side="left", kind="surgery"),)), on=on, sites=sites)
    assert model.decision is Decision.NOT_ELIGIBLE  # an undated surgery counts as recent

    class Faked:
        __class__ = SiteFinding  # type: ignore[assignment]
        region, side, kind, date = "neck", "left", "surgery", None

    class Shifting:  # an undated surgery on the first read, an old one after
        region, side, kind = Region.NECK, SiteSide.LEFT, SiteFindingKind.SURGERY
        reads = 0

        @property
        def date(self) -> date | None:
            self.reads += 1
            return None if self.reads == 1 else date(2000, 1, 1)

    class Raising:
        side, kind, date = "left", "surgery", None

        @property
        def region(self) -> str:
            raise ValueError("boom")

    for odd in (Faked(), Shifting(), Raising()):
        result = screen(attrs.evolve(base, site_findings=(odd,)),  # type: ignore[arg-type]
                        on=on, sites=sites)
        assert result.decision in (Decision.NEEDS_REVIEW, Decision.NOT_ELIGIBLE)
        if result.decision is Decision.NOT_ELIGIBLE:
            assert not result.site_decisions[0].allowed
