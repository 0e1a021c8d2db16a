"""Fuzz suite of the input layer and the one JSON parser (issue #13, spec 1.1 §6-§7).

Hypothesis over bytes (``st.binary()`` and mutations of valid records) plus a seeded corpus
kept in ``tests/data/fuzz/corpus.jsonl``. Properties: no exception; exactly one report per
record with the right ``index`` and ``line``; byte-identical reports with and without the
accelerated path (``fast`` extra), for a JSONL line and the same text as a JSON array element,
and for ``--jobs 1`` and ``--jobs 2``; and the shipped JSON Schema agrees with the validator
on every generated record (no ``structure.*`` error <=> schema-valid).

The default run fits CI (the ``ci`` hypothesis profile). The long run, at 100 000 inputs and
more, is marked ``slow``::

    HYPOTHESIS_PROFILE=ci python -m pytest -m slow tests/test_input_fuzz.py
"""

from __future__ import annotations

import copy
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dryneedle.records import Validator, _fast, _input, _pipeline, json_schema
from dryneedle.records._json import is_blank
from dryneedle.strategies import records

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "fuzz" / "corpus.jsonl"
EXAMPLES = ROOT / "examples" / "sessions.jsonl"
SEEDS = EXAMPLES.read_bytes().splitlines()[:20]

TOKENS = [b"\\ud800", b'"\\udc00"', b"1e400", b"NaN", b"-Infinity", b"1.0", b"1e2", b"9" * 25,
          b"9" * 4400, b"18446744073709551616", b"-9223372036854775809", b"\xff", b"\xed\xa0\x80",
          b"\xef\xbb\xbf", b"\x0b", b"\x0c", b"[", b"]", b"{", b"}", b",", b'"', b"\\", b"\x00",
          b"[" * 300, b"null", b"-0", b"1e-400", b"\r"]

# Examples per property in the default run (the profile's own count unless set).
CI_EXAMPLES = int(os.environ.get("DRYNEEDLE_FUZZ_EXAMPLES", "0")) or settings().max_examples


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid record line with a few bytes inserted, deleted or replaced."""
    line = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(line)))
        op = draw(st.integers(0, 2))
        if op == 0:
            line[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=4))
        elif op == 1:
            del line[pos:pos + draw(st.integers(1, 12))]
        elif line:
            line[min(pos, len(line) - 1)] = draw(st.integers(0, 255))
    return bytes(line)


LINES = (st.binary(max_size=200) | mutated()).map(lambda b: b.replace(b"\n", b" "))

_FAST = Validator(checks=("structure", "screening", "protocol"))
_PURE = Validator(checks=("structure", "screening", "protocol"), fast=False)


def _report(v: Validator, data: Any, line: int = 1) -> bytes:
    return _pipeline.dumps(v.check(data, 0, line).as_dict())


def _items(data: bytes, name: str) -> list[_input.Item]:
    return list(_input.iter_items(name, io.BufferedReader(io.BytesIO(data))))


def check_one(text: bytes) -> None:
    """The properties of one line of bytes, as given and as the input layer hands it over."""
    assert _report(_FAST, text) == _report(_PURE, text)
    text = text.strip(b" \t\r\n")
    fast = _report(_FAST, text)
    assert fast == _report(_PURE, text)  # accelerated or not: the same bytes
    json.loads(fast)  # always serialisable
    # The same text as a JSON array element (when it is one element) gives the same report.
    items = _items(b"[" + text + b"]", "x.json")
    if len(items) == 1 and items[0].data == text:
        assert _report(_FAST, items[0].data) == fast


@settings(max_examples=CI_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_fuzzed_bytes_same_report_fast_pure_jsonl_array(text: bytes) -> None:
    """Any bytes: no exception, byte-identical reports on both paths and both formats."""
    check_one(text)


@settings(max_examples=CI_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=6), st.booleans(), st.booleans())
def test_fuzzed_files_one_report_per_record_with_its_line(
    lines: list[bytes], crlf: bool, bom: bool
) -> None:
    """A JSONL file of any lines: one item per non-blank line, at its line; JSON: no crash."""
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(
        line + (b"\r\n" if crlf else b"\n") for line in lines)
    items = _items(data, "x.jsonl")
    body = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")[: len(lines)]  # one BOM, at the start
    expected = [n for n, line in enumerate(body, start=1) if not is_blank(line)]
    assert [i.line for i in items] == expected
    for item in _items(data, "x.json"):
        json.loads(_report(_FAST, item.data, item.line))


def test_seeded_corpus_same_report_fast_pure_jsonl_array() -> None:
    """The kept corpus (mutated records, hand-written edge cases): the same properties."""
    lines = CORPUS.read_bytes().split(b"\n")
    assert len(lines) > 400
    for line in lines:
        check_one(line)


def _validate(path: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run(
        [sys.executable, "-m", "dryneedle", "validate", str(path), "-q", *args],
        capture_output=True, check=False, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})},
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert proc.stderr == b""
    return proc.stdout


def test_corpus_through_the_cli_jobs_and_fast_extra(tmp_path: Path) -> None:
    """The corpus as a file: the same bytes for --jobs 1 and 2, with and without the extra."""
    lines = CORPUS.read_bytes().split(b"\n")[:-1]
    out = _validate(CORPUS, "--jobs", "1")
    rows = [json.loads(r) for r in out.splitlines()]
    assert [r["line"] for r in rows] == [n for n, line in enumerate(lines, 1)
                                         if not is_blank(line)]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert _validate(CORPUS, "--jobs", "2") == out
    assert _validate(CORPUS, env={_fast.ENV_SWITCH: "0"}) == out


# --- the shipped schema and the validator agree --------------------------------------------------

ODD = [None, True, 0, -1, 1, 1.0, 1.5, -0.0, 1e2, 2**63 - 1, 2**63, -(2**63) - 1, 10**400,
       float("inf"), 1e308, "", "x", "2026-02-30", "2026-1-01", "2026-11-20", "left",
       "upper_trapezius", [], {}, [1], {"a": 1}]


def _leaves(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*prefix, i))
    return out


@st.composite
def schema_cases(draw: st.DrawFn) -> Any:
    data = draw(records())
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p in _leaves(data) if p]
        path = draw(st.sampled_from(paths))
        data = copy.deepcopy(data)
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = draw(st.sampled_from(ODD))
    return data


_SCHEMA = json_schema()


@settings(max_examples=CI_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(schema_cases())
def test_schema_and_validator_agree_on_structure(data: Any) -> None:
    """No ``structure.*`` error <=> valid under the shipped schema (checked with jsonschema)."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(
        _SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    (report,) = [_PURE.check(data, 0)]
    structural = [f for f in report.findings
                  if f.code.startswith("structure.") and f.severity.value == "error"]
    assert (not structural) == validator.is_valid(data), (
        structural, [e.message for e in validator.iter_errors(data)][:3])


# --- the long run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_fuzz_100k_inputs(tmp_path: Path) -> None:
    """At least 100 000 seeded mutations: every property, and the CLI on all of them at once."""
    rnd = random.Random(13)
    corpus = CORPUS.read_bytes().split(b"\n")
    lines: list[bytes] = []
    for _ in range(100_000):
        line = bytearray(rnd.choice(corpus if rnd.random() < 0.5 else SEEDS))
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randint(0, len(line))
            op = rnd.randrange(3)
            if op == 0:
                line[pos:pos] = rnd.choice(TOKENS)
            elif op == 1:
                del line[pos:pos + rnd.randint(1, 12)]
            elif line:
                line[min(pos, len(line) - 1)] = rnd.randrange(256)
        text = bytes(line).replace(b"\n", b" ")
        check_one(text)
        lines.append(text)
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out = _validate(path, "--jobs", "1")
    assert len(out.splitlines()) == sum(1 for line in lines if not is_blank(line))
    assert _validate(path, "--jobs", "2") == out
    assert _validate(path, env={_fast.ENV_SWITCH: "0"}) == out


@pytest.mark.slow
@settings(max_examples=100_000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(LINES)
def test_fuzzed_bytes_100k(text: bytes) -> None:
    """The hypothesis property at 100 000 examples."""
    check_one(text)
