"""The hook body parse (orjson where it is equal, a cheaper depth scan) against the reference.

The reference is :func:`parse_json` as it was before issue #15: the bracket scan of the raw
bytes, then :func:`json.loads`. The faster one must give the same value (``repr``: types, key
order, duplicate keys, ``-0.0``, ``NaN``) or the same 400, for any bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dryneedle.service import HookError, _hooks, parse_json

_DROP = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _reference_depth(text: bytes) -> int:
    skeleton = text.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _DROP)
    outside = b"".join(skeleton.split(b'"')[::2])
    return max(accumulate(map(_STEP.__getitem__, outside)), default=0)


def _reference(body: bytes | str, max_depth: int) -> tuple[Any, ...]:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if _reference_depth(raw) > max_depth:
        return "error", 400, f"request body is nested deeper than {max_depth} levels"
    try:
        return "ok", repr(json.loads(raw))
    except (ValueError, RecursionError):
        return "error", 400, "request body is not valid JSON"


def _outcome(body: bytes | str, max_depth: int) -> tuple[Any, ...]:
    try:
        return "ok", repr(parse_json(body, max_depth=max_depth))
    except HookError as exc:
        return "error", exc.status, exc.body["issue"][0]["diagnostics"]


@contextmanager
def _stdlib_only() -> Iterator[None]:
    saved = _hooks._fast_loads
    _hooks._fast_loads = None
    try:
        yield
    finally:
        _hooks._fast_loads = saved


def _same(body: bytes | str, max_depth: int = 64) -> None:
    expected = _reference(body, max_depth)
    assert _outcome(body, max_depth) == expected
    with _stdlib_only():
        assert _outcome(body, max_depth) == expected


_TOKENS = st.sampled_from([
    b"[", b"]", b"{", b"}", b'"', b"\\", b'\\"', b"\\\\", b",", b":", b" ", b"\n", b"0", b"1",
    b"-", b".", b"e", b"E", b"+", b"12345678901234567890", b"1e400", b"NaN", b"Infinity",
    b"true", b"null", b'"a"', b'"a":1', b"\\u0041", b"\\ud800", b"\\ud83d\\ude00", b"\x00",
    b"\x1f", b"\x7f", b"\xc3\xa9", b"\xff", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xe2\x80\xa8",
])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids,
                                                                max_size=4),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_TOKENS, max_size=40).map(b"".join), st.integers(0, 6))
@example(b'{"a": 1, "a": 2, "b": 3}', 64)
@example(b'{"a": {"x": 1}, "b": 2, "a": [1]}', 64)
@example(b"[1.0, -0.0, -0, 1e-400, 1E+2, 0.1, 5e-324, 1.7976931348623157e308]", 64)
@example(b"[18446744073709551615, -9223372036854775808, 9223372036854775807]", 64)
@example(b"[123456789012345678901234567890]", 64)
@example(b"[NaN, Infinity, -Infinity]", 64)
@example(b'\xef\xbb\xbf{"a": 1}', 64)
@example('{"a": "\ud800"}'.encode("utf-8", "surrogatepass"), 64)
@example('{"a": "caf\u00e9"}'.encode("utf-16"), 64)
@example(b'["\\ud800"]', 64)
@example(b'["\x01"]', 64)
@example(b' \t\r\n[] \t\r\n', 64)
@example(b"[]\x0c", 64)
@example(b'"\\"[[["', 0)
@example(b'["\\\\"]]]', 0)
@example(b"]]][[[", 0)
@example(b"", 64)
@example(b'{"a":"12345678901234567890","b":12345678901234567890123}', 64)
@example(b'["\\"",12345678901234567890123]', 64)
@example(b'["\\\\",12345678901234567890123,"\\\\"]', 64)
@example(b'{"x":"a,1","y":[12345678901234567890]}', 64)
@example(b"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", 64)
@example(b"[-12345678901234567890, 1.2345678901234567890123e5]", 64)
@example(b'["2026-11-27T10:00:00.123+00:00", "1234567890123456789"]', 64)
def test_any_bytes_parse_as_the_reference_does(body: bytes, max_depth: int) -> None:
    """Values, refusals and their messages are the reference's, orjson installed or not."""
    _same(body, max_depth)


@settings(max_examples=500, deadline=None)
@given(JSON, st.booleans(), st.integers(0, 8))
def test_json_documents_parse_as_the_reference_does(value: Any, ascii_only: bool,
                                                    max_depth: int) -> None:
    """Documents of every JSON type, as bytes and as text, at every depth limit."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    _same(text.encode("utf-8", "surrogatepass"), max_depth)
    _same(text, max_depth)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b"[]", b"{}", b"0,", b'"[",', b'"}"']),
                max_size=200).map(b"".join), st.integers(-1, 70))
@example(b"[" * 64 + b"]" * 64, 63)
@example(b"[]" * 40 + b"[" * 30 + b"]" * 30, 29)
@example(b"]" * 10 + b"[" * 20, 9)
@example(b"[[[" + b"[]" * 100, 3)
def test_the_depth_bound_agrees_with_the_bracket_sum(body: bytes, max_depth: int) -> None:
    """Near and far from the limit, balanced or not: refused exactly when the sum says so."""
    _same(body, max_depth)


def test_deep_bodies_are_refused_before_parsing() -> None:
    """Never a RecursionError: nesting over the limit is a 400 whatever the parser."""
    for body in (b"[" * 65 + b"]" * 65, b"[" * 100_000, b'{"a":' * 70 + b"1" + b"}" * 70):
        _same(body)
        assert _outcome(body, 64) == ("error", 400, "request body is nested deeper than 64 levels")
    assert _outcome(b"[" * 64 + b"]" * 64, 64)[0] == "ok"
