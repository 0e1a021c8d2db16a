"""Hypothesis properties of the rules' shortcuts on the record path (issue #17).

The record path decides what it can in one test or one memo lookup: the age window per
evaluation date, the site rows of patients without site findings (with or without bleeding
risk), and findings memoised by rule, position and message. Each property checks a shortcut
against the plain computation it replaces, on generated data:

* the age window holds exactly the birth dates that :func:`~dryneedle.screening.age_on` puts
  in the policy's plausible adult range (29 February and the ends of the calendar included;
  ``date.min`` itself is left to the full age rules), and the screen's age findings are those
  of the age;
* a report does not depend on what the memos hold: a validator that has seen many records
  gives every record the same report as a validator with empty memos;
* a site outside the regions of the patient's site findings, read from the plain sites'
  memo, gets the row :func:`~dryneedle._screening.sites.site_row` gives it with the site
  findings (catalog muscles, unknown muscles, site findings with unknown parts).

Example counts come from the hypothesis profile (``tests/conftest.py``).
"""

from __future__ import annotations

import json
from datetime import date

import attrs
from hypothesis import given
from hypothesis import strategies as st

from dryneedle import model
from dryneedle._screening.sites import site_row
from dryneedle.catalog import MUSCLES, limb_of
from dryneedle.model import History, NeedlePhobia, Patient, Session, SessionRecord, Sex
from dryneedle.policy import DEFAULT_POLICY, GUIDELINE_POLICY, Policy
from dryneedle.records import Validator, converter
from dryneedle.screening import age_on, screen, screen_parts, screening_table
from dryneedle.strategies import insertions, patients, sessions, site_findings

_EDGES = st.sampled_from([
    date.min, date.max, date(1, 12, 31), date(9999, 1, 1), date(2000, 2, 29),
    date(2024, 2, 29), date(2023, 2, 28), date(2023, 3, 1), date(1900, 2, 28),
])
_ANY_DATE = st.dates() | _EDGES
_ADULT = Patient(
    patient_id="p-1", birth_date=date(1980, 5, 1), sex=Sex.MALE, site_findings=(),
    history=History(bleeding_disorder=False, anticoagulant_therapy=False,
                    immunocompromised=False, metal_allergy=False, epilepsy=False,
                    diabetes=False, vascular_disease=False, prior_adverse_reaction=False,
                    acute_illness=False, lymph_node_removal=False,
                    needle_phobia=NeedlePhobia.NONE, consent=True),
)


# The age limits a policy accepts: a minimum from its built-in 12 years (a safety floor) up
# to the adult age, a plausible maximum of 100-150 years.
_AGE_LIMITS = st.integers(12, 25).flatmap(
    lambda low: st.tuples(st.just(low), st.integers(low, 25), st.integers(100, 150)))


@given(bd=_ANY_DATE, on=_ANY_DATE, limits=_AGE_LIMITS)
def test_the_age_window_is_exactly_the_plausible_adult_ages(
    bd: date, on: date, limits: tuple[int, int, int]
) -> None:
    min_age, adult, max_age = limits
    policy = Policy(name="window", min_age_years=min_age, adult_age_years=adult,
                    max_age_years=max_age)
    lo, hi = screening_table(policy).adult_window(on)
    adult_ok = bd <= on and max(min_age, adult) <= age_on(bd, on) <= max_age
    inside = lo < bd <= hi
    if inside:  # what the screen skips: no age rule would fire
        assert adult_ok
    else:  # the full age rules run: only the first day of the calendar falls out needlessly
        assert not adult_ok or bd == date.min


@given(bd=_ANY_DATE, on=_ANY_DATE)
def test_the_age_findings_are_those_of_the_age(bd: date, on: date) -> None:
    """Inside the window no age finding; outside, the one the age gives (default policy)."""
    patient = attrs.evolve(_ADULT, birth_date=bd)
    codes = {f.code for f in screen(patient, on=on).findings if f.path == "patient.birth_date"}
    if bd > on:
        assert codes == {"screening.birth_date_implausible"}
        return
    age = age_on(bd, on)
    p = DEFAULT_POLICY
    expected = (
        {"screening.birth_date_implausible"} if age > p.max_age_years
        else {"screening.age_minimum"} if age < p.min_age_years
        else {"screening.age_minor"} if age < p.adult_age_years
        else set()
    )
    assert codes == expected


# One warm validator per policy for the whole run: its memos fill across examples.
_CHECKS = ("structure", "screening", "protocol")
_WARM = {policy.name: Validator(policy=policy, checks=_CHECKS)
         for policy in (DEFAULT_POLICY, GUIDELINE_POLICY)}


@given(
    people=st.lists(patients(unknown_lists=True), min_size=1, max_size=3),
    visits=st.lists(sessions(unknown_lists=True), min_size=1, max_size=3),
    policy=st.sampled_from([DEFAULT_POLICY, GUIDELINE_POLICY]),
    fast=st.booleans(),
)
def test_a_report_does_not_depend_on_what_the_memos_hold(
    people: list[Patient], visits: list[Session], policy: Policy, fast: bool
) -> None:
    """Every session with every patient: equal sites meet different answers in the memos."""
    warm = _WARM[policy.name]
    pairs = [(p, s) for s in visits for p in people]
    for i, (patient, session) in enumerate(pairs):
        rec = converter.unstructure(SessionRecord(record_id=f"r-{i}", patient=patient,
                                                  session=session))
        line = json.dumps(rec)
        fresh = Validator(policy=attrs.evolve(policy), checks=_CHECKS, fast=fast)  # empty memos
        expected = fresh.check(line, i, i + 1)
        for obj in (line, rec):  # the accelerated path and the walker's
            got = warm.check(obj, i, i + 1)
            assert got.findings == expected.findings
            assert got.decision == expected.decision
            assert got.valid == expected.valid


# Sites and site findings mostly in the limbs (where a lymphoedema finding covers regions it
# does not name), so the regions of both often meet.
_LIMB_REGIONS = sorted(r for r in model.Region if limb_of(r) is not None)
_SITES = st.lists(
    insertions()
    | st.builds(model.Insertion, side=st.sampled_from(model.Side),
                technique=st.sampled_from(model.Technique), muscle=st.sampled_from(sorted(
                    m.id for m in MUSCLES.values() if limb_of(m.region) is not None)))
    | st.builds(model.Insertion, muscle=st.sampled_from(["not_a_muscle"]),
                side=st.sampled_from(model.Side)),
    max_size=6,
)
_LIMB_FINDINGS = st.builds(
    model.SiteFinding, region=st.sampled_from(_LIMB_REGIONS), side=st.sampled_from(model.SiteSide),
    kind=st.sampled_from(model.SiteFindingKind), date=st.none() | st.dates())


def _unreadable(sf: model.SiteFinding, parts: set[str]) -> model.SiteFinding:
    """The finding with ``parts`` unknown, as the readable walkers leave a partial record's."""
    for name in parts:
        object.__setattr__(sf, name, None)
    return sf


_FINDINGS = st.lists(
    site_findings() | _LIMB_FINDINGS | st.builds(
        _unreadable, site_findings(), st.sets(st.sampled_from(["region", "side", "kind"]))),
    min_size=1, max_size=3,
)


@given(
    patient=patients(), found=_FINDINGS, sites=_SITES, on=st.none() | st.dates(),
    policy=st.sampled_from([DEFAULT_POLICY, GUIDELINE_POLICY]), warm=st.booleans(),
)
def test_sites_outside_the_site_findings_regions_get_their_own_rows(
    patient: Patient, found: list[model.SiteFinding], sites: list[model.Insertion],
    on: date | None, policy: Policy, warm: bool,
) -> None:
    """The plain sites' memo answers a site of another region exactly as site_row does."""
    patient = attrs.evolve(patient, site_findings=tuple(found))
    h = patient.history
    bleeding = h.bleeding_disorder is True or h.anticoagulant_therapy is True
    c = screening_table(policy if warm else attrs.evolve(policy))  # warm memos or empty ones
    _, findings, _, rows = screen_parts(c, patient, on, sites, "session.insertions", True)
    expected = [site_row(c, i, site, "session.insertions", tuple(found), on, bleeding)
                for i, site in enumerate(sites)]
    assert rows == [row for row, _ in expected]
    site_found = [f for row, _ in expected for f in row[5]]
    # The screen's findings end with the sites' (then, when every site is excluded, one more).
    every_site_excluded = bool(rows) and not any(r[4] for r in rows)
    end = len(findings) - every_site_excluded
    assert findings[end - len(site_found):end] == site_found
