"""The quick readable walk of rejected rows (issue #17): msgspec mirrors for clean objects.

A record text that the accelerated decoder rejects is parsed and walked once; when orjson
parsed it (an ``exact`` value: no lone surrogate, no infinite number, no 19-digit integer),
each object is first converted into its msgspec mirror, and walked field by field only when
that fails (``walk_readable(..., quick=True)``). The findings must be exactly those of the
plain readable walk, in the same order, and the parts must hold the same values of the same
types (the clinical rules read them); the report of a text must be the same whichever path
read it, and a whole record the same model record.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle import model
from dryneedle.records import _fast, _json
from dryneedle.records._structure import walk_readable
from dryneedle.records._validate import Validator
from dryneedle.strategies import records
from json_texts import dumps as _dumps
from json_texts import objects as _objects

pytestmark = pytest.mark.skipif(not _fast.AVAILABLE, reason="msgspec not installed")

ROOT = Path(__file__).resolve().parent.parent
BASE = (ROOT / "examples" / "sessions.jsonl").read_bytes().splitlines()[0]

LEAVES = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-3, max_value=40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e308, 2.0, -0.0])
    | st.text(max_size=5) | st.sampled_from(["", "2024-02-30", "2024-03-01", "left", "deep",
                                            "\ud800", "yes", "trapezius_upper"])
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _nodes(node: Any, prefix: tuple[Any, ...], out: list[tuple[Any, ...]]) -> None:
    if prefix:
        out.append(prefix)
    if isinstance(node, dict | list):
        for k, v in (node.items() if isinstance(node, dict) else enumerate(node)):
            _nodes(v, (*prefix, k), out)


def _leaves(value: Any) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = []
    _nodes(value, (), paths)
    return paths


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def texts(draw: st.DrawFn) -> bytes:
    """A record text with 0 to 3 nodes replaced or deleted, and maybe a key written twice."""
    data = copy.deepcopy(draw(records()))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths: list[tuple[Any, ...]] = []
        _nodes(data, (), paths)
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    strings = [p for p in _leaves(data) if isinstance(_at(data, p), str)]
    if strings and draw(st.integers(min_value=0, max_value=3)) == 0:  # not Unicode text
        path = draw(st.sampled_from(strings))
        _at(data, path[:-1])[path[-1]] = "x\ud800"
    dup = None
    objects = _objects(data)
    if draw(st.booleans()) and objects:
        n = draw(st.integers(min_value=0, max_value=len(objects) - 1))
        keys = sorted(objects[n]) or ["extra"]
        key = draw(st.sampled_from(keys))
        again = objects[n].get(key) if draw(st.booleans()) else draw(LEAVES)
        dup = (n, key, again)
    if draw(st.booleans()):
        data["unknown_field"] = 1  # a warning only: a whole record msgspec rejects
    text = _dumps(data, dup=dup, raw_unicode=True)
    return text.encode("utf-8", "surrogatepass")


def _plain(value: Any) -> Any:
    """A part as the rules read it: each field's value with its exact type, recursively."""
    if attrs.has(value.__class__):
        names = [a.name for a in attrs.fields(value.__class__)]
    elif hasattr(value, "__struct_fields__"):
        names = list(value.__struct_fields__)
    elif isinstance(value, tuple):
        return ("tuple", [_plain(v) for v in value])
    else:
        return (value.__class__, value)
    return ("object", {n: _plain(getattr(value, n)) for n in names})


@given(texts())
def test_quick_walk_gives_the_readable_walk_s_findings_and_parts(text: bytes) -> None:
    """Same findings, same order; the same values of the same types in the parts."""
    try:
        value, exact = _json.parse_exact(text)
    except _json.JSONError:
        return
    plain: list[Any] = []
    expected = walk_readable(copy.deepcopy(value), plain)
    quick: list[Any] = []
    got = walk_readable(value, quick, exact)
    assert quick == plain
    assert got[0] == expected[0]
    assert got[3] == expected[3]
    for part, want in zip(got[1:3], expected[1:3], strict=True):
        assert (part is None) == (want is None)
        if want is not None:
            assert _plain(part) == _plain(want)


def test_a_value_orjson_did_not_parse_is_not_walked_quickly() -> None:
    """The guard is needed: a lone surrogate converts, the walker refuses it."""
    data = json.loads(BASE)
    data["patient"]["patient_id"] = "a\ud800"
    data["format"] = "x"
    value, exact = _json.parse_exact(json.dumps(data).encode())
    assert not exact
    plain: list[Any] = []
    walk_readable(value, plain)
    forced: list[Any] = []
    walk_readable(value, forced, True)
    assert "patient.patient_id" in {f.path for f in plain}
    assert forced != plain


@given(texts())
def test_a_rejected_text_s_report_is_the_same_on_every_path(text: bytes) -> None:
    """Bytes (the quick walk) against the same text as ``str`` (the plain walk): same report.

    The whole record, when there is one, is the model record the walkers build.
    """
    try:
        as_str = text.decode("utf-8")
    except UnicodeDecodeError:  # the str path would read other text
        return
    quick = Validator().check(text, 0, 1)
    plain = Validator().check(as_str, 0, 1)
    assert quick.as_dict() == plain.as_dict()
    assert quick.record == plain.record
    if quick.record is not None:
        assert quick.record.__class__ is model.SessionRecord
        assert _plain(quick.record) == _plain(plain.record)


def _two_scans(raw: bytes) -> bool:
    """The pre-test as it was: two bracket counts and a translated copy for the digits."""
    digits = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
    return (raw.count(b"[") + raw.count(b"{") <= _json.MAX_DEPTH
            and b"0" * 19 not in raw.translate(digits))


@given(st.binary(max_size=600) | st.lists(st.sampled_from(
    [b"[", b"{", b"}", b"]", b"1", b"9", b"0", b" ", b'"', b"a", b"1" * 18, b"[" * 120]),
    max_size=80).map(b"".join))
def test_the_one_pass_scan_is_the_two_scans(raw: bytes) -> None:
    """:func:`._json._orjson_may_parse` answers as the separate counts did, on any bytes."""
    assert _json._orjson_may_parse(raw) == _two_scans(raw)
