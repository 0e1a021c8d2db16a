"""Series checks (SPEC §4, data teams): SeriesIndex streaming state and validate_series."""

from __future__ import annotations

import json
import pickle
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.findings import Finding, Severity
from dryneedle.policy import DEFAULT_POLICY
from dryneedle.protocol import SeriesIndex, series_summary, validate_series
from dryneedle.records import converter, validate_records
from dryneedle.sources import SOURCES
from dryneedle.strategies import patients, sessions

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "protocol_vectors.json").read_text())
SERIES_CASES: list[dict[str, Any]] = VECTORS["series_cases"]

PT = model.Practitioner(practitioner_id="pt-1", dry_needling_trained=True)
INSERTION = model.Insertion(
    muscle="gluteus_medius", side=model.Side.RIGHT, technique=model.Technique.DEEP,
    depth_mm=30.0, manipulation=model.Manipulation.PISTONING,
    needle=model.Needle(diameter_mm=0.3, length_mm=50.0), guide_tube=True,
)


def make(day: date, number: int, needles: int = 1,
         grades: tuple[model.AdverseEventGrade | None, ...] = ()) -> model.Session:
    """A session with ``needles`` insertions and adverse events of the given grades."""
    return model.Session(
        session_id=f"s-{number}", date=day, number=number, practitioner=PT,
        insertions=(INSERTION,) * needles,
        adverse_events=tuple(model.AdverseEvent(kind=model.AdverseEventKind.BRUISING, grade=g)
                             for g in grades),
    )


def from_case(item: dict[str, Any]) -> model.Session:
    """A session from a series vector item."""
    grades = tuple(None if g is None else model.AdverseEventGrade(g)
                   for g in item["adverse_grades"])
    return make(date.fromisoformat(item["date"]), item["number"], item["needles"], grades)


def triples(pairs: tuple[tuple[int, Finding], ...]) -> list[tuple[int, str, str]]:
    """(index, code, path) of validate_series output."""
    return [(i, f.code, f.path) for i, f in pairs]


def chronological(items: list[model.Session]) -> list[int]:
    """Indices of sessions in date order (then number, then position)."""
    return sorted(range(len(items)), key=lambda k: (items[k].date, items[k].number, k))


# --- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", SERIES_CASES, ids=[c["id"] for c in SERIES_CASES])
def test_series_vector_validate_series(case: dict[str, Any]) -> None:
    """validate_series gives exactly the expected (index, code, path) findings."""
    items = [from_case(x) for x in case["sessions"]]
    assert sorted(triples(validate_series(items))) == sorted(
        (i, c, p) for i, c, p in case["expect"])
    assert set(case["sources"]) <= set(SOURCES)


@pytest.mark.parametrize("case", SERIES_CASES, ids=[c["id"] for c in SERIES_CASES])
def test_series_vector_in_a_record_stream(case: dict[str, Any]) -> None:
    """In validate_records (one streaming pass, date order) the same findings appear."""
    items = [from_case(x) for x in case["sessions"]]
    order = chronological(items)
    patient = converter.unstructure(model.Patient(patient_id="p-series"))
    records = [{"format": "dryneedle.session/1", "record_id": f"r-{k}", "patient": patient,
                "session": converter.unstructure(items[k])} for k in order]
    got = []
    for k, report in zip(order, validate_records(records), strict=True):
        got += [(k, f.code, f.path) for f in report.findings if f.code.startswith("series.")]
    assert sorted(got) == sorted((i, c, p) for i, c, p in case["expect"])


def test_every_series_rule_is_boundary_tested() -> None:
    """Each series rule fires in some vector, and each vector family has a quiet case."""
    fires = {c for case in SERIES_CASES for _, c, _ in case["expect"]}
    assert fires == {"series.number_order", "series.first_session_number", "series.same_day",
                     "series.needles_after_poor_tolerance"}
    assert any(not case["expect"] for case in SERIES_CASES)


# --- the streaming index -------------------------------------------------------------------------


def test_index_keys_by_patient() -> None:
    """Sessions of different patients never interact; memory grows with patients."""
    index = SeriesIndex(policy=DEFAULT_POLICY)
    d = date(2026, 1, 1)
    for pid in ("p-1", "p-2", "p-3"):
        assert index.add(pid, make(d, 1)) == []
    for pid in ("p-1", "p-2", "p-3"):
        assert index.add(pid, make(d + timedelta(days=7), 2)) == []
    assert len(index) == 3


def test_index_keeps_a_small_fixed_summary_not_sessions() -> None:
    """The per-patient state is a fixed-size tuple of scalars, never the sessions."""
    index = SeriesIndex()
    for k in range(50):
        index.add("p-1", make(date(2026, 1, 1) + timedelta(days=k), k + 1, needles=3))
    (state,) = index._state.values()
    assert len(state) == 5
    assert all(isinstance(v, date | int | bool) or v is None for v in state)


def test_first_seen_not_one() -> None:
    """The first session seen for a patient must be number 1 (warning otherwise)."""
    (f,) = SeriesIndex().add("p", make(date(2026, 1, 1), 4))
    assert (f.code, f.path, f.severity) == ("series.first_session_number", "session.number",
                                            Severity.WARNING)


def test_second_session_one() -> None:
    """A second session numbered 1 (dated before the latest) is flagged."""
    index = SeriesIndex()
    index.add("p", make(date(2026, 1, 10), 1))
    index.add("p", make(date(2026, 1, 20), 2))
    assert [f.code for f in index.add("p", make(date(2026, 1, 5), 1))] == [
        "series.first_session_number"]


def test_dated_before_session_one_in_an_unordered_stream() -> None:
    """In an unordered stream, a session dated before session 1 is flagged."""
    index = SeriesIndex()
    index.add("p", make(date(2026, 1, 10), 1))
    index.add("p", make(date(2026, 1, 20), 3))
    (f,) = index.add("p", make(date(2026, 1, 5), 2))  # consistent with #3, not with #1
    assert (f.code, f.path) == ("series.first_session_number", "session.number")


def test_out_of_order_arrival_does_not_check_tolerance() -> None:
    """An older session arriving late is not compared for needle increase."""
    index = SeriesIndex()
    bad = (model.AdverseEventGrade.SIGNIFICANT,)
    index.add("p", make(date(2026, 1, 1), 1, 1))
    index.add("p", make(date(2026, 1, 15), 3, 1, bad))
    assert index.add("p", make(date(2026, 1, 8), 2, 3)) == []
    # The latest session (#3, not tolerated) still decides for the next one.
    assert [f.code for f in index.add("p", make(date(2026, 1, 22), 4, 2))] == [
        "series.needles_after_poor_tolerance"]


def test_series_severity_follows_the_policy() -> None:
    """A clinic can lower series.same_day to info."""
    policy = DEFAULT_POLICY.override(rules={"series.same_day": {"severity": "info"}},
                                     justification="test: split sessions are routine here")
    index = SeriesIndex(policy=policy)
    index.add("p", make(date(2026, 1, 1), 1))
    (f,) = index.add("p", make(date(2026, 1, 1), 2))
    assert (f.code, f.severity) == ("series.same_day", Severity.INFO)


def test_series_off_in_validate_records() -> None:
    """Without the 'series' check, no series finding is produced."""
    patient = converter.unstructure(model.Patient(patient_id="p-x"))
    records = [{"format": "dryneedle.session/1", "record_id": f"r-{k}", "patient": patient,
                "session": converter.unstructure(make(date(2026, 1, 1), 2))} for k in range(2)]
    reports = validate_records(records, checks=("structure", "screening", "protocol"))
    assert not any(f.code.startswith("series.") for r in reports for f in r.findings)


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(sessions(max_insertions=3), max_size=8))
def test_validate_series_equals_a_sorted_stream(items: list[model.Session]) -> None:
    """validate_series == SeriesIndex over the sessions in date order; never raises."""
    got = validate_series(items)
    index = SeriesIndex()
    want = []
    for k in chronological(items):
        want += [(k, f) for f in index.add("p", items[k])]
    assert list(got) == want
    assert all(f.code.startswith("series.") for _, f in got)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8, unique=True), sessions())
def test_a_clean_course_has_no_order_findings(gaps: list[int], template: model.Session) -> None:
    """Sessions 1..n on strictly increasing dates never give order, first or same-day findings."""
    day = date(2026, 1, 1)
    items = []
    for n, gap in enumerate(gaps, start=1):
        day += timedelta(days=gap)
        items.append(attrs.evolve(template, date=day, number=n))
    codes = {f.code for _, f in validate_series(items)}
    assert codes <= {"series.needles_after_poor_tolerance"}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p-1", "p-2", "p-3"]), sessions(max_insertions=2)),
                max_size=12),
       patients())
def test_stream_is_per_patient(stream: list[tuple[str, model.Session]],
                               patient: model.Patient) -> None:
    """Interleaving patients in one stream gives each patient's own series findings."""
    shared = SeriesIndex()
    per_patient: dict[str, SeriesIndex] = {}
    for pid, session in stream:
        alone = per_patient.setdefault(pid, SeriesIndex()).add(pid, session)
        assert shared.add(pid, session) == alone
    records = [{"format": "dryneedle.session/1", "record_id": f"r-{k}",
                "patient": converter.unstructure(attrs.evolve(patient, patient_id=pid)),
                "session": converter.unstructure(s)} for k, (pid, s) in enumerate(stream)]
    assert len(list(validate_records(records))) == len(stream)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p-1", "p-2"]), sessions(max_insertions=3)),
                max_size=10))
def test_summaries_give_the_same_findings_as_sessions(
    stream: list[tuple[str, model.Session]],
) -> None:
    """add_summary(series_summary(s)) == add(s), and summaries survive pickling (workers)."""
    by_session, by_summary = SeriesIndex(), SeriesIndex()
    for pid, session in stream:
        summary = pickle.loads(pickle.dumps(series_summary(session)))
        assert by_summary.add_summary(pid, summary) == by_session.add(pid, session)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([f"p-{k}" for k in range(7)]),
                          sessions(max_insertions=3)), max_size=30))
def test_spilling_to_disk_gives_the_same_findings(
    stream: list[tuple[str, model.Session]],
) -> None:
    """With a memory budget of 2 patients (most summaries on disk): the same findings."""
    in_memory, spilling = SeriesIndex(), SeriesIndex(memory_budget=2)
    for pid, session in stream:
        assert spilling.add(pid, session) == in_memory.add(pid, session)
    assert len(spilling) == len(in_memory)
    assert sorted(map(repr, spilling._state.values())) == sorted(
        map(repr, in_memory._state.values()))


def test_spilling_keeps_memory_bounded_and_counts_every_patient() -> None:
    """Many patients, a tiny budget: at most the budget in memory, every patient counted."""
    index = SeriesIndex(memory_budget=10)
    reference = SeriesIndex()
    day = date(2026, 1, 1).toordinal()
    for n in (1, 2, 2, 3):  # four rounds over 100 patients: each comes back from disk
        for k in range(100):
            summary = (day + n * 7 + k % 3, n, k % 4, k % 5 != 0)
            got = index.add_summary(f"p-{k}", summary)  # type: ignore[arg-type]  # ordinals
            assert got == reference.add_summary(f"p-{k}", summary)  # type: ignore[arg-type]
            assert len(index._state._mem) <= 10
    assert len(index) == len(reference) == 100
    assert index._state._db is not None
