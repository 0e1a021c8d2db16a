"""The shipped hypothesis strategies (``dryneedle.strategies``) for users' own tests."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.records import structure_record, unstructure_record, validate_records
from dryneedle.strategies import histories, patients, records, sessions


@given(st.from_type(model.Patient), st.from_type(model.Session),
       st.from_type(model.SessionRecord))
def test_types_are_registered_for_from_type(
    patient: model.Patient, session: model.Session, record: model.SessionRecord
) -> None:
    """``st.from_type`` gives model instances once the module is imported."""
    assert isinstance(patient, model.Patient)
    assert isinstance(session, model.Session)
    assert unstructure_record(record)["format"] == "dryneedle.session/1"


@given(histories(unknown=False))
def test_known_histories_have_no_unknown_answer(history: model.History) -> None:
    """``unknown=False`` really means every answer is known."""
    assert all(getattr(history, a.name) is not None for a in attrs.fields(model.History))


@given(patients(max_site_findings=0), sessions(max_insertions=1))
def test_options_bound_what_is_drawn(patient: model.Patient, session: model.Session) -> None:
    """The ``max_*`` options bound the collections drawn."""
    assert patient.site_findings == ()
    assert len(session.insertions) <= 1


@given(records())
def test_records_are_valid_record_format_dicts(data: dict[str, Any]) -> None:
    """``records()`` draws JSON-ready dicts that structure without any structural finding."""
    structure_record(data)
    (report,) = validate_records([data], checks=("structure",))
    assert report.findings == ()
