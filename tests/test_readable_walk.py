"""The readable walkers: one pass gives the strict walkers' findings and the readable parts.

A record with structural errors is walked once (:func:`walk_readable`): the findings must be
exactly those of the strict walk (:func:`walk_record`), in the same order, the parts the
strict walk reads must come back equal, and the parts it cannot read must keep what is
readable (SPEC §6, 1.1): unknown values, placeholders at the positions of unreadable items.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.records import walk_record
from dryneedle.records._structure import READABLE_WALKERS, walk_readable
from dryneedle.strategies import records

DATA = Path(__file__).parent / "data"

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


def _paths(node: Any, prefix: tuple[Any, ...], out: list[tuple[Any, ...]],
           containers: list[tuple[Any, ...]]) -> None:
    if prefix:
        out.append(prefix)
    if isinstance(node, dict | list):
        if prefix:
            containers.append(prefix)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            _paths(v, (*prefix, k), out, containers)


@st.composite
def _mutations(draw: st.DrawFn, replacements: int = 3) -> Any:
    """A valid record with 1 to ``replacements`` nodes replaced by arbitrary JSON or deleted.

    Half the nodes are drawn among the objects and arrays (a record has many more leaves).
    """
    data = copy.deepcopy(draw(records()))
    for _ in range(draw(st.integers(min_value=1, max_value=replacements))):
        paths: list[tuple[Any, ...]] = []
        containers: list[tuple[Any, ...]] = []  # objects and arrays: half the draws
        _paths(data, (), paths, containers)
        among_containers = draw(st.booleans())
        path = draw(st.sampled_from(containers if containers and among_containers else paths))
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]  # a missing field
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return data


@given(_mutations() | JSON_VALUES)
def test_readable_walk_gives_the_strict_findings_and_parts(data: Any) -> None:
    """Same findings in the same order; each part the strict walk reads comes back equal."""
    strict: list[Any] = []
    record_id, patient, session, format_ok = walk_record(data, strict)
    readable: list[Any] = []
    r_id, r_patient, r_session, whole = walk_readable(data, readable)
    assert readable == strict
    assert r_id == record_id
    assert whole == (record_id is not None and format_ok and patient is not None
                     and session is not None)
    if patient is not None:
        assert r_patient == patient
    if session is not None:
        assert r_session == session
    if isinstance(data, dict):  # a part that is an object is always read, at least partly
        assert (r_patient is not None) == isinstance(data.get("patient"), dict)
        assert (r_session is not None) == isinstance(data.get("session"), dict)


def _spec_example() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "spec_example.json").read_text())
    return data


def test_unreadable_parts_keep_what_is_readable() -> None:
    """Unknown where unreadable, placeholders at their positions, the rest as written."""
    data = _spec_example()
    session = data["session"]
    session["number"] = "2"  # unreadable leaf: unknown
    session["pre"] = "done"  # unreadable object: a placeholder (every answer unknown)
    session["post"] = None  # optional object given as null: unknown, no finding
    good = copy.deepcopy(session["insertions"][0])
    session["insertions"] = [7, dict(good, depth_mm="12"), good]
    session["adverse_events"] = {"kind": "bruising"}  # not an array: unknown
    data["patient"]["conditions"] = ["no_such_condition", *data["patient"]["conditions"]]
    out: list[Any] = []
    _rid, p_part, s_part, whole = walk_readable(data, out)
    read: Any = s_part  # the model types say "never None": readable parts hold unknowns
    patient: Any = p_part
    assert not whole
    assert {f.path for f in out} == {
        "session.number", "session.pre", "session.insertions[0]",
        "session.insertions[1].depth_mm", "session.adverse_events", "patient.conditions[0]",
    }
    assert read is not None
    assert patient is not None
    assert read.number is None
    assert read.pre == model.PreSteps()
    assert read.post == model.PostSteps()
    assert read.adverse_events is None
    assert len(read.insertions) == 3  # the needle count and the indices hold
    placeholder, partial, clean = read.insertions
    assert placeholder.muscle is None
    assert placeholder.depth_mm is None
    assert placeholder.needle == model.Needle()
    assert partial.depth_mm is None
    assert partial.muscle == good["muscle"]
    assert clean.depth_mm == good["depth_mm"]
    assert patient.conditions[0] is None
    assert patient.conditions[1:] == tuple(_spec_example()["patient"]["conditions"])
    assert read.date == date.fromisoformat(session["date"])


def test_a_clean_part_is_the_strict_instance() -> None:
    """No finding: the readable walker returns the object itself, not a partial one."""
    data = _spec_example()
    out: list[Any] = []
    value = READABLE_WALKERS[model.Patient](data["patient"], "patient", out)
    assert out == []
    assert value.__class__ is model.Patient
    assert value == walk_record(data, [])[1]
