"""Input reading: JSONL, JSON arrays (streamed), gzip, globs and standard input.

The format comes from the name or an explicit format, never from the content (spec §7, 1.1).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from dryneedle.records import _documents, _input


def _items(data: bytes, name: str = "x", fmt: str | None = None) -> list[_input.Item]:
    stream = io.BufferedReader(io.BytesIO(data))
    return list(_input.iter_items(name, stream, fmt))


def _values(data: bytes) -> list[tuple[int, object]]:
    """``(line, parsed element)`` of a JSON input (the elements are raw texts)."""
    out: list[tuple[int, object]] = []
    for i in _items(data, "x.json"):
        assert isinstance(i.data, bytes)
        out.append((i.line, json.loads(i.data)))
    return out


def test_jsonl_skips_blank_lines_and_keeps_line_numbers() -> None:
    """Blank lines are not records; line numbers count every physical line."""
    items = _items(b'{"a":1}\n\n   \n{"b":2}\nnot json\n')
    assert [(i.line, i.data) for i in items] == [
        (1, b'{"a":1}'), (4, b'{"b":2}'), (5, b"not json"),
    ]
    crlf = _items(b'{"a":1}\r\n{"b":2}\r\n')
    assert [i.data for i in crlf] == [b'{"a":1}', b'{"b":2}']


def test_json_array_is_streamed_element_by_element_with_lines() -> None:
    """A JSON array yields its elements with the line each starts on."""
    text = b'  [\n {"a": 1},\n {"b": [1, 2,\n 3]},\n 7\n]\n'
    assert _values(text) == [(2, {"a": 1}), (3, {"b": [1, 2, 3]}), (5, 7)]


def test_json_array_larger_than_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Elements spanning read chunks are reassembled correctly."""
    monkeypatch.setattr(_documents, "CHUNK", 16)
    records = [{"record_id": f"r-{i}", "pad": "x\\\"" * (i * 7)} for i in range(20)]
    assert [v for _, v in _values(json.dumps(records, indent=1).encode())] == records


def test_broken_json_array_element_is_one_record_and_the_rest_is_read() -> None:
    """A syntax error inside an element is that element's problem; the next one is read."""
    items = _items(b'[{"a": 1}, {"b": oops}, {"c": 3}]', "x.json")
    assert [i.data for i in items] == [b'{"a": 1}', b'{"b": oops}', b'{"c": 3}']
    truncated = _items(b'[{"a": 1}, {"b": 2', "x.json")
    assert truncated[0].data == b'{"a": 1}'
    assert isinstance(truncated[-1].data, _input.BadInput)
    assert len(truncated) == 2
    assert _items(b"[]", "x.json") == []


def test_gzip_is_detected_by_magic_number(tmp_path: Path) -> None:
    """A gzip file is decompressed transparently, whatever its name."""
    path = tmp_path / "records.data"
    path.write_bytes(gzip.compress(b'{"a":1}\n{"b":2}\n'))
    with _input.open_input(str(path)) as stream:
        assert [i.line for i in _input.iter_items(str(path), stream)] == [1, 2]


def test_globs_expand_sorted_and_missing_inputs_fail(tmp_path: Path) -> None:
    """Globs expand in sorted order; a name that matches nothing is an input error."""
    for name in ("b.jsonl", "a.jsonl"):
        (tmp_path / name).write_text("{}\n")
    assert _input.expand_inputs([str(tmp_path / "*.jsonl")]) == [
        str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
    ]
    assert _input.expand_inputs(["-"]) == ["-"]
    with pytest.raises(_input.InputError):
        _input.expand_inputs([str(tmp_path / "nothing-*.jsonl")])
    with pytest.raises(_input.InputError):
        _input.open_input(str(tmp_path))


def test_input_size_only_for_plain_files(tmp_path: Path) -> None:
    """Sizes are known for plain files (progress ETA), not for stdin or gzip."""
    path = tmp_path / "a.jsonl"
    path.write_text("{}\n")
    assert _input.input_size(str(path)) == 3
    assert _input.input_size("-") is None
    assert _input.input_size(str(tmp_path / "a.jsonl.gz")) is None
