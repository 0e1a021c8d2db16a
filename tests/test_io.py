"""Input reading: JSONL, JSON arrays (streamed), gzip, globs and standard input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from dryneedle.records import _input


def _items(data: bytes, name: str = "x") -> list[_input.Item]:
    stream = io.BufferedReader(io.BytesIO(data))
    return list(_input.iter_items(name, stream))


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
    items = _items(text)
    assert [(i.line, i.data) for i in items] == [(2, {"a": 1}), (3, {"b": [1, 2, 3]}), (5, 7)]


def test_json_array_larger_than_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Elements spanning read chunks are reassembled correctly."""
    monkeypatch.setattr(_input, "_CHUNK", 16)
    records = [{"record_id": f"r-{i}", "pad": "x" * (i * 7)} for i in range(20)]
    items = _items(json.dumps(records, indent=1).encode())
    assert [i.data for i in items] == records


def test_broken_json_array_reports_an_error_and_stops() -> None:
    """A syntax error inside an array is reported once; what came before is kept."""
    items = _items(b'[{"a": 1}, {"b": oops}]')
    assert items[0].data == {"a": 1}
    assert isinstance(items[1].data, _input.ArrayError)
    assert len(items) == 2
    truncated = _items(b'[{"a": 1}, {"b": 2')
    assert isinstance(truncated[-1].data, _input.ArrayError)
    assert _items(b"[]") == []


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
