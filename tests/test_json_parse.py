"""The accelerated JSON parse (orjson, where provably equal) against the reference decoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dryneedle.records import _json

pytestmark = pytest.mark.skipif(_json._fast_loads is None, reason="orjson not installed")


@contextmanager
def _reference_only() -> Iterator[None]:
    saved = _json._fast_loads
    _json._fast_loads = None
    try:
        yield
    finally:
        _json._fast_loads = saved


def _outcome(text: bytes) -> tuple[str, str]:
    try:
        return "ok", repr(_json.parse(text))  # repr: types, -0.0, key order, surrogates
    except _json.JSONError as exc:
        return "error", str(exc)


def _same(text: bytes) -> None:
    fast = _outcome(text)
    with _reference_only():
        reference = _outcome(text)
    assert fast == reference


NUMBERS = st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?\Z")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids,
                                                                max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(NUMBERS)
@example("-9223372036854775809")
@example("18446744073709551616")
@example("1e400")
@example("1.7976931348623159e308")
@example("2.4703282292062328e-324")
@example("123456789012345678.123456789012345678e-5")
def test_numbers_parse_the_same(number: str) -> None:
    """Every number literal: the same value (or the same error) as the reference decoder."""
    _same(number.encode())
    _same(b'{"n":[' + number.encode() + b"]}")


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_json_values_parse_the_same(value: Any) -> None:
    """Any JSON value, serialised either way: the same value as the reference decoder."""
    _same(json.dumps(value).encode())
    _same(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64) | st.text(alphabet='{}[]"\\:,.-+eE0123456789 \t\r\n\x0bunltrfsae'
                                             "\ud800\udc00\ufeff", max_size=40)
       .map(lambda s: s.encode("utf-8", "surrogatepass")))
@example(b'"\\ud800"')
@example(b'"\\ud83d\\ude00"')
@example(b"\xef\xbb\xbf{}")
@example(b'{"a":1,"b":2,"a":3}')
@example(b"NaN")
@example(b"[" * 300 + b"]" * 300)
def test_any_bytes_parse_the_same(text: bytes) -> None:
    """Arbitrary bytes: the same value or the same message as the reference decoder."""
    _same(text)
