"""Record format v1: structure, unstructure, paths, JSON Schema and streaming validation."""

from __future__ import annotations

import copy
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.findings import Severity
from dryneedle.records import (
    RecordError,
    Validator,
    _fast,
    converter,
    json_schema,
    structure_record,
    unstructure_record,
    validate_lines,
    validate_records,
)
from dryneedle.strategies import records

STRUCTURE_ONLY = ("structure",)


DATA = Path(__file__).parent / "data"


def spec_example() -> dict[str, Any]:
    """The example record of SPEC §6, verbatim (a fresh copy each call)."""
    data: dict[str, Any] = json.loads((DATA / "spec_example.json").read_text())
    return data


def structural(data: Any) -> list[tuple[str, str, str]]:
    """(code, path, severity) of the structural findings of one input."""
    (report,) = validate_records([data], checks=STRUCTURE_ONLY)
    return [(f.code, f.path, f.severity.value) for f in report.findings]


def test_spec_example_structures_and_round_trips() -> None:
    """The SPEC §6 example is valid, and unstructuring gives back exactly the input."""
    data = spec_example()
    record = structure_record(data)
    assert record.session.insertions[0].depth_mm == 15.0
    assert record.patient.history.needle_phobia is model.NeedlePhobia.NONE
    # The optional field added in spec 1.1, absent from the example, comes back as unknown.
    assert record.session.insertions[0].directed_away_from_lung is None
    back = unstructure_record(record)
    for insertion in back["session"]["insertions"]:
        assert insertion.pop("directed_away_from_lung") is None
    assert back == data
    assert structural(data) == []


def test_converter_structure_agrees_with_walker() -> None:
    """The cattrs converter and the generated walker build the same model from valid data."""
    data = spec_example()
    assert converter.structure(data, model.SessionRecord) == structure_record(data)


@given(records())
def test_round_trip_identity_on_valid_records(data: dict[str, Any]) -> None:
    """unstructure(structure(d)) == d for every valid record (lossless wire format)."""
    assert unstructure_record(structure_record(data)) == data


@given(records())
def test_valid_records_have_no_structural_findings(data: dict[str, Any]) -> None:
    """Generated valid records produce no structural finding at all."""
    assert structural(data) == []


CASES: list[tuple[str, Any, Any, tuple[str, str, str]]] = [
    # (description, path to mutate as tuple, new value, expected finding)
    ("depth as string", ("session", "insertions", 0, "depth_mm"), "15",
     ("structure.type", "session.insertions[0].depth_mm", "error")),
    ("number as string", ("session", "number"), "1",
     ("structure.type", "session.number", "error")),
    ("number zero", ("session", "number"), 0, ("structure.range", "session.number", "error")),
    ("bool number", ("session", "number"), True,
     ("structure.type", "session.number", "error")),
    ("history yes", ("patient", "history", "epilepsy"), "yes",
     ("structure.type", "patient.history.epilepsy", "error")),
    ("sex F", ("patient", "sex"), "F", ("structure.enum", "patient.sex", "error")),
    ("unknown muscle", ("session", "insertions", 0, "muscle"), "trapezius",
     ("structure.enum", "session.insertions[0].muscle", "error")),
    ("bad month", ("session", "date"), "2026-13-01",
     ("structure.date", "session.date", "error")),
    ("non-ISO date", ("patient", "birth_date"), "09/03/1984",
     ("structure.date", "patient.birth_date", "error")),
    ("compact date", ("patient", "birth_date"), "19840309",
     ("structure.date", "patient.birth_date", "error")),
    ("negative removed", ("session", "post", "needles_removed"), -1,
     ("structure.range", "session.post.needles_removed", "error")),
    ("needle as list", ("session", "insertions", 0, "needle"), [],
     ("structure.type", "session.insertions[0].needle", "error")),
    ("insertions object", ("session", "insertions"), {},
     ("structure.type", "session.insertions", "error")),
    ("condition unknown", ("patient", "conditions", 0), "gout",
     ("structure.enum", "patient.conditions[0]", "error")),
    ("side finding bad", ("patient", "site_findings", 0, "side"), "both",
     ("structure.enum", "patient.site_findings[0].side", "error")),
    ("ae kind", ("session", "adverse_events", 0, "kind"), "sneezing",
     ("structure.enum", "session.adverse_events[0].kind", "error")),
    ("empty id", ("patient", "patient_id"), "",
     ("structure.type", "patient.patient_id", "error")),
    ("format", ("format",), "dryneedle.session/2", ("structure.format", "format", "error")),
    ("record id null", ("record_id",), None, ("structure.type", "record_id", "error")),
]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


@pytest.mark.parametrize(("what", "path", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_structural_problem_has_its_exact_path(
    what: str, path: tuple[Any, ...], value: Any, expected: tuple[str, str, str]
) -> None:
    """A single bad value yields exactly one finding, with the exact record path."""
    data = spec_example()
    _set(data, path, value)
    assert structural(data) == [expected], what


def test_missing_required_fields_are_reported_each() -> None:
    """Every missing required field is reported, not just the first."""
    data = spec_example()
    del data["record_id"]
    del data["session"]["date"]
    del data["session"]["insertions"][0]["muscle"]
    del data["patient"]["site_findings"][0]["kind"]
    assert structural(data) == [
        ("structure.missing", "record_id", "error"),
        ("structure.missing", "patient.site_findings[0].kind", "error"),
        ("structure.missing", "session.date", "error"),
        ("structure.missing", "session.insertions[0].muscle", "error"),
    ]


def test_unknown_fields_are_warnings_and_keep_the_record_valid() -> None:
    """Unknown fields are reported as warnings at their path; the record stays valid."""
    data = spec_example()
    data["extra"] = 1
    data["session"]["insertions"][0]["angle_deg"] = 30
    (report,) = validate_records([data], checks=STRUCTURE_ONLY)
    assert report.valid
    assert [(f.code, f.path, f.severity) for f in report.findings] == [
        ("structure.unknown_field", "session.insertions[0].angle_deg", Severity.WARNING),
        ("structure.unknown_field", "extra", Severity.WARNING),
    ]


def test_absent_and_null_answers_are_unknown_never_false() -> None:
    """A missing or null history answer structures to None (unknown), never False."""
    data = spec_example()
    del data["patient"]["history"]["diabetes"]
    data["patient"]["history"]["epilepsy"] = None
    data["patient"]["history"].pop("consent")
    record = structure_record(data)
    assert record.patient.history.diabetes is None
    assert record.patient.history.epilepsy is None
    assert record.patient.history.consent is None
    data["patient"].pop("history")
    assert structure_record(data).patient.history == model.History()


def test_non_finite_and_huge_numbers_are_range_errors() -> None:
    """NaN and infinities (from lenient producers) and out-of-range ints are errors."""
    for value in (float("nan"), float("inf"), float("-inf"), 10**400):
        data = spec_example()
        data["session"]["insertions"][0]["depth_mm"] = value
        assert structural(data) == [
            ("structure.range", "session.insertions[0].depth_mm", "error")
        ]


def test_messages_never_echo_string_values() -> None:
    """A misplaced identifier in a wrong-typed field never appears in any message."""
    data = spec_example()
    data["patient"]["sex"] = "Jane Doe"
    data["session"]["number"] = "Jane Doe"
    data["patient"]["history"]["consent"] = "Jane Doe"
    (report,) = validate_records([data])
    assert report.findings
    assert all("Jane" not in f.message for f in report.findings)
    assert all("p-001" not in f.message for f in report.findings)


def test_structure_record_raises_with_every_error() -> None:
    """structure_record raises one RecordError carrying all errors."""
    data = spec_example()
    data["session"]["number"] = "x"
    data["patient"]["sex"] = "x"
    with pytest.raises(RecordError) as info:
        structure_record(data)
    assert {f.path for f in info.value.findings} == {"session.number", "patient.sex"}


def test_patient_part_is_screened_when_session_part_is_broken() -> None:
    """A readable patient still gets a decision (with --on) when the session is broken."""
    data = spec_example()
    data["session"] = "broken"
    (report,) = validate_records([data], on=date(2026, 11, 20))
    assert report.decision is not None
    assert not report.valid


def test_lines_malformed_json_and_non_objects() -> None:
    """Malformed JSON and non-objects each give one report with an error at path ''."""
    good = json.dumps(spec_example())
    lines = [good, "{not json", "[1, 2]", "42", '"text"', good]
    reports = list(validate_records(lines, checks=STRUCTURE_ONLY))
    assert [r.index for r in reports] == [0, 1, 2, 3, 4, 5]
    assert [r.line for r in reports] == [1, 2, 3, 4, 5, 6]
    assert [r.valid for r in reports] == [True, False, False, False, False, True]
    for r in reports[1:5]:
        assert [(f.path, f.severity) for f in r.findings] == [("", Severity.ERROR)]
    assert reports[1].findings[0].code == "structure.json"
    assert reports[1].findings[0].message.startswith("not valid JSON: ")
    assert reports[2].findings[0].code == "structure.not_object"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _mutations() -> st.SearchStrategy[Any]:
    """Valid records with one subtree replaced by arbitrary JSON."""

    def mutate(data: dict[str, Any], junk: Any, choice: int) -> Any:
        paths: list[tuple[Any, ...]] = []

        def walk(node: Any, prefix: tuple[Any, ...]) -> None:
            paths.append(prefix)
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, (*prefix, k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, (*prefix, i))

        walk(data, ())
        path = paths[choice % len(paths)]
        if not path:
            return junk
        data = copy.deepcopy(data)
        _set(data, path, junk)
        return data

    return st.builds(mutate, records(), JSON_VALUES, st.integers(min_value=0))


def _path_exists(data: Any, path: str) -> bool:
    """True when ``path`` names a node of ``data`` or the parent of a missing field.

    Keys may hold ``.``, ``[`` or ``]`` themselves (unknown fields are reported under their own
    name), so the path is matched against the keys that exist, not split on punctuation.
    """
    if path == "":
        return True
    if path.startswith("["):
        m = re.match(r"\[(\d+)\]", path)
        if m is None or not isinstance(data, list) or int(m[1]) >= len(data):
            return False
        rest = path[m.end():]
        return _path_exists(data[int(m[1])], rest.removeprefix("."))
    if not isinstance(data, dict):
        # Below a null or unreadable value (null, a scalar or a list where an object was due):
        # the fail-closed assumptions made for that part name its fields (SPEC 6, 1.1), e.g.
        # the needle length of a null or unreadable insertion, the date of an unreadable
        # session, an answer under a null history.
        return True
    for key in sorted((k for k in data if isinstance(k, str)), key=len, reverse=True):
        if path == key:
            return True
        if path.startswith((key + ".", key + "[")):
            rest = path[len(key):]
            if _path_exists(data[key], rest.removeprefix(".")):
                return True
    if path.split(".", 1)[0] in _OBJECT_FIELDS:
        return True  # an answer under a missing object (unknown: SPEC section 6, 1.1)
    return "." not in path and "[" not in path  # a missing field: its parent exists


_OBJECT_FIELDS = frozenset({"history", "practitioner", "pre", "post", "needle"})


@given(st.lists(_mutations() | JSON_VALUES, max_size=5))
def test_arbitrary_json_never_raises_and_gives_one_report_per_input(items: list[Any]) -> None:
    """Any JSON values give exactly one report each, in order, and never raise."""
    reports = list(validate_records(items))
    assert [r.index for r in reports] == list(range(len(items)))
    for r in reports:
        assert r.valid == all(f.severity is not Severity.ERROR for f in r.findings)


@example({"session": {"insertions": [None]}}).via(
    "a null insertion: its needle length is assumed unknown at "
    "session.insertions[0].needle.length_mm")
@example({"0[0": None}).via("the fast extra's absence found it: a key holding '['")
@example({"patient": {"a.b": 1, "a": {}}}).via("a key holding '.'")
@given(_mutations())
def test_every_finding_path_exists_in_the_input(data: Any) -> None:
    """Every path in a finding names the input node (or the parent of a missing field)."""
    (report,) = validate_records([data])
    for f in report.findings:
        assert _path_exists(data, f.path), (f.code, f.path)


@given(st.lists(st.text(max_size=40) | st.binary(max_size=40), max_size=5))
def test_arbitrary_lines_never_raise(lines: list[Any]) -> None:
    """Arbitrary text or bytes lines (invalid UTF-8 included) give one report each."""
    assert len(list(validate_records(lines))) == len(lines)


def test_validate_lines_is_a_plain_partition_function() -> None:
    """validate_lines returns JSON-ready dicts, skips blank lines and numbers lines."""
    good = json.dumps(spec_example())
    out = validate_lines([good, "", "  ", "nope"], checks=STRUCTURE_ONLY, start_index=10)
    assert [(r["index"], r["line"], r["valid"]) for r in out] == [(10, 1, True), (11, 4, False)]
    assert set(out[0]) == {"index", "line", "record_id", "valid", "decision", "findings"}


def test_validator_rejects_unknown_checks() -> None:
    """Asking for a check that does not exist is a programming error."""
    with pytest.raises(ValueError, match="unknown checks"):
        Validator(checks=("structure", "astrology"))


def test_json_schema_is_generated_from_the_models() -> None:
    """The schema names every model field, the required ones, and the closed vocabularies."""
    schema = json_schema()
    assert schema["required"] == ["format", "record_id", "patient", "session"]
    insertion = schema["$defs"]["Insertion"]
    assert set(insertion["properties"]) == {
        "muscle", "side", "technique", "depth_mm", "manipulation", "dwell_s", "needle",
        "guide_tube", "twitch_response", "ultrasound_guided", "directed_away_from_lung",
    }
    assert insertion["required"] == ["muscle", "side", "technique", "manipulation"]
    assert "upper_trapezius" in insertion["properties"]["muscle"]["enum"]
    history = schema["$defs"]["History"]["properties"]
    assert history["consent"] == {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
    assert schema["$defs"]["Session"]["properties"]["number"] == {
        "type": "integer", "minimum": 1, "maximum": 2**63 - 1}


def test_json_schema_accepts_the_spec_example() -> None:
    """An independent JSON Schema validator accepts the SPEC example against our schema."""
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(spec_example(), json_schema())


def test_report_dict_has_exactly_the_contract_keys() -> None:
    """Report lines have exactly the SPEC §7 keys, findings exactly the five finding keys."""
    data = spec_example()
    data["session"]["number"] = "x"
    (report,) = validate_records([data])
    d = report.as_dict()
    assert list(d) == ["index", "line", "record_id", "valid", "decision", "findings"]
    assert all(list(f) == ["code", "severity", "path", "message", "sources"]
               for f in d["findings"])


@given(st.lists(_mutations() | records(), min_size=1, max_size=4))
def test_fast_path_and_walker_give_identical_reports(items: list[Any]) -> None:
    """The accelerated decoder (extra ``fast``) and the pure-Python walker agree exactly.

    A clean line takes the fast path; any other line the walker. Both must produce the same
    report, byte for byte, and the same structured record.
    """
    lines = [json.dumps(item) for item in items]
    fast = list(validate_records(lines))
    slow_stream = Validator(fast=False)
    slow = [slow_stream.check(line, i, i + 1) for i, line in enumerate(lines)]
    assert [r.as_dict() for r in fast] == [r.as_dict() for r in slow]
    assert [r.record for r in fast] == [r.record for r in slow]


def test_fast_path_is_used_for_clean_lines() -> None:
    """Clean lines are decoded by the accelerated path when msgspec is installed."""
    pytest.importorskip("msgspec")

    clean = json.dumps(spec_example())
    assert _fast.decode(clean) is not None
    with_unknown = json.dumps({**spec_example(), "extra": 1})
    assert _fast.decode(with_unknown) is None  # the walker reports the unknown field
    (report,) = validate_records([clean])
    assert report.record == structure_record(spec_example())
