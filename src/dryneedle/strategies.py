"""Hypothesis strategies for dryneedle's models and records (extra ``hypothesis``).

Like ``structlog.testing``, these are shipped for users: property-test your own code against
valid patients, sessions and records. Importing this module registers the strategies with
:func:`hypothesis.strategies.register_type_strategy`, so ``st.from_type(Patient)`` just works.

>>> from hypothesis import given
>>> from dryneedle.strategies import records
>>> from dryneedle.records import structure_record
>>> @given(records())
... def test_valid_records_structure(data):
...     structure_record(data)
>>> test_valid_records_structure()
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import strategies as st

from dryneedle import model
from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.wire import converter

__all__ = [
    "histories",
    "insertions",
    "patients",
    "records",
    "session_records",
    "sessions",
    "site_findings",
]

_DATES = st.dates(min_value=date(1920, 1, 1), max_value=date(2030, 12, 31))
_TRI = st.sampled_from([True, False, None])


def histories(*, unknown: bool = True) -> st.SearchStrategy[model.History]:
    """Screening histories; with ``unknown=False`` every answer is known.

    Args:
        unknown: Whether answers may be ``None`` (unknown).
    """
    tri = _TRI if unknown else st.booleans()
    phobia = st.sampled_from([*model.NeedlePhobia, None] if unknown else list(model.NeedlePhobia))
    return st.builds(
        model.History,
        bleeding_disorder=tri,
        anticoagulant_therapy=tri,
        immunocompromised=tri,
        metal_allergy=tri,
        epilepsy=tri,
        diabetes=tri,
        vascular_disease=tri,
        prior_adverse_reaction=tri,
        acute_illness=tri,
        lymph_node_removal=tri,
        needle_phobia=phobia,
        consent=tri,
    )


def site_findings() -> st.SearchStrategy[model.SiteFinding]:
    """Site findings (any region, side and kind; dated or not)."""
    return st.builds(
        model.SiteFinding,
        region=st.sampled_from(model.Region),
        side=st.sampled_from(model.SiteSide),
        kind=st.sampled_from(model.SiteFindingKind),
        date=st.none() | _DATES,
    )


def patients(
    *,
    unknown: bool = True,
    max_site_findings: int = 3,
    unknown_lists: bool = False,
) -> st.SearchStrategy[model.Patient]:
    """Patients with pseudonymous ids.

    Args:
        unknown: Whether answers (history, sex, pregnancy, birth date) may be unknown.
        max_site_findings: Most site findings per patient.
        unknown_lists: Whether ``site_findings`` may be unknown (``None``: not inspected).
    """

    def opt(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.none() | s if unknown else s

    found = st.lists(site_findings(), max_size=max_site_findings).map(tuple)

    return st.builds(
        model.Patient,
        patient_id=st.from_regex(r"\Ap-[0-9]{1,6}\Z"),
        birth_date=opt(_DATES),
        sex=opt(st.sampled_from(model.Sex)),
        pregnancy=opt(st.sampled_from(model.Pregnancy)),
        history=histories(unknown=unknown),
        # None: not inspected (unknown), as an absent or null list reads in a record.
        site_findings=(st.none() | found) if unknown_lists else found,
        conditions=st.lists(st.sampled_from(sorted(CONDITIONS)), max_size=2, unique=True).map(
            tuple
        ),
    )


_mm = st.floats(min_value=0.1, max_value=200.0, allow_nan=False, allow_infinity=False)


def insertions() -> st.SearchStrategy[model.Insertion]:
    """Structurally valid insertions (clinically anything: depths, dwell, needles vary)."""
    return st.builds(
        model.Insertion,
        muscle=st.sampled_from(sorted(MUSCLES)),
        side=st.sampled_from(model.Side),
        technique=st.sampled_from(model.Technique),
        depth_mm=st.none() | _mm,
        manipulation=st.sampled_from(model.Manipulation),
        dwell_s=st.none() | st.floats(min_value=-5.0, max_value=5000.0),
        needle=st.builds(model.Needle, diameter_mm=st.none() | st.floats(0.05, 1.0),
                         length_mm=st.none() | _mm),
        guide_tube=_TRI,
        twitch_response=_TRI,
        ultrasound_guided=_TRI,
        directed_away_from_lung=_TRI,
    )


def sessions(
    *, max_insertions: int = 6, unknown_lists: bool = False
) -> st.SearchStrategy[model.Session]:
    """Structurally valid sessions.

    Args:
        max_insertions: Most insertions per session.
        unknown_lists: Whether ``adverse_events`` may be unknown (``None``: not recorded).
    """
    events = st.lists(
        st.builds(model.AdverseEvent, kind=st.sampled_from(model.AdverseEventKind),
                  grade=st.none() | st.sampled_from(model.AdverseEventGrade)),
        max_size=2,
    ).map(tuple)
    return st.builds(
        model.Session,
        session_id=st.from_regex(r"\As-[0-9]{1,6}\Z"),
        date=_DATES,
        number=st.integers(min_value=1, max_value=40),
        practitioner=st.builds(model.Practitioner,
                               practitioner_id=st.from_regex(r"\Apt-[0-9]{1,3}\Z"),
                               dry_needling_trained=_TRI),
        pre=st.builds(model.PreSteps, history_reviewed=_TRI, physical_exam=_TRI, consent=_TRI,
                      skin_disinfected=_TRI),
        insertions=st.lists(insertions(), max_size=max_insertions).map(tuple),
        post=st.builds(model.PostSteps,
                       needles_removed=st.none() | st.integers(min_value=0, max_value=12),
                       skin_checked=_TRI),
        adverse_events=(st.none() | events) if unknown_lists else events,
    )


def session_records(**kwargs: Any) -> st.SearchStrategy[model.SessionRecord]:
    """Structured :class:`~dryneedle.model.SessionRecord` objects (``patients`` options).

    ``unknown_lists=True`` also lets ``adverse_events`` be unknown.
    """
    return st.builds(
        model.SessionRecord,
        record_id=st.from_regex(r"\Ar-[0-9]{1,7}\Z"),
        patient=patients(**kwargs),
        session=sessions(unknown_lists=kwargs.get("unknown_lists", False)),
    )


def records(**kwargs: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records of format v1 as JSON-ready dicts (``patients`` options)."""
    return session_records(**kwargs).map(converter.unstructure)


st.register_type_strategy(model.History, histories())
st.register_type_strategy(model.SiteFinding, site_findings())
st.register_type_strategy(model.Patient, patients())
st.register_type_strategy(model.Insertion, insertions())
st.register_type_strategy(model.Session, sessions())
st.register_type_strategy(model.SessionRecord, session_records())
