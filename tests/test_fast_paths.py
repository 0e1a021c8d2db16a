"""Differential tests of the hook call's fast paths against the code they replace (#15).

Each fast path must give exactly what the plain one gives: the card uuid's text and uuid
(orjson with ``json.dumps``'s escapes, and a UUID 5 without the ``uuid.UUID`` object), the
reader's provenance entries (made without ``Provenance.__init__``), its status codes (read
without the pairs of ``codings_of``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dryneedle.fhir import Provenance, _cds, _evidence, _reading
from dryneedle.fhir._provenance import Action
from dryneedle.service import _audit

_REFERENCE = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
"""Any code point, lone surrogates, controls and DEL included."""
_JSON = st.recursive(
    _TEXT, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=20)


@given(_JSON)
@example(["\x7f\u00d7\u2026\U0001f600\ud800\"\\\n\x00", {"b": "\x7f", "a": ["\udfff"]}])
@example(["", {"\u00e9": "1", "e": "2", "\U0001f600": "3", "\uffff": "4"}])
@example(["\\u00d7\u00d7\\\u2026", {"\u2026\u00d7": "\u00e9\u00d7\U0001f600\u2026"}])
def test_uuid_text_is_the_json_text(value: Any) -> None:
    """orjson's text, escaped as ``ensure_ascii`` escapes, is ``json.dumps``'s, byte for byte."""
    assert _cds._uuid_text([value]) == _REFERENCE.encode([value]).encode("ascii")


@given(_JSON)
def test_uuid_text_without_orjson(value: Any) -> None:
    """Without the extra, the text is ``json``'s own."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_cds, "_dumps", None)
        assert _cds._uuid_text([value]) == _REFERENCE.encode([value]).encode("ascii")


@example(b"x" * 2_000)
@example(b"x" * 4_001)
@given(st.binary(max_size=6000).map(lambda b: b.decode("latin-1").encode("ascii", "replace")))
def test_uuid5_is_the_uuid_module_s(name: bytes) -> None:
    """The UUID 5 string equals ``str(uuid.uuid5(namespace, name))``, long names too."""
    expected = str(uuid.uuid5(_cds._UUID_NAMESPACE, name.decode("ascii")))
    assert _cds._uuid5(name) == expected


@given(st.text(max_size=10), st.none() | st.booleans() | st.text(max_size=5), st.text(max_size=10),
       st.none() | st.text(max_size=10), st.sampled_from(Action), st.text(max_size=10),
       st.lists(st.text(max_size=5), max_size=3).map(tuple))
def test_provenance_fast_constructor_is_attrs_init(
        path: str, value: Any, resource: str, code: str | None, action: Action, reason: str,
        sources: tuple[str, ...]) -> None:
    """The reader's Provenance is the one ``__init__`` makes: equal, same hash, repr, evolve."""
    fast = _evidence._provenance(path, value, resource, code, action, reason, sources)
    made = Provenance(path=path, value=value, resource=resource, code=code, action=action,
                      reason=reason, sources=sources)
    assert type(fast) is Provenance
    assert fast == made
    assert hash(fast) == hash(made)
    assert repr(fast) == repr(made)
    assert fast.as_dict() == made.as_dict()
    assert attrs.evolve(fast, reason="r") == attrs.evolve(made, reason="r")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.path = "x"  # type: ignore[misc]


_WHEN = st.one_of(
    st.dates().map(str), st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.from_regex(_reading._DATETIME, fullmatch=True), st.text(max_size=30))


@given(_WHEN)
@example("2026-02-30")
@example("2026-12-02T09:00:00Z")
def test_parse_when_cached_is_parse_when(text: str) -> None:
    """The cached reading of a date (twice: miss, then hit) is the plain one's."""
    expected = _reading._parse_when(text)
    assert _reading.parse_when(text) == expected
    assert _reading.parse_when(text) == expected
    assert _reading.parse_when(_Str(text)) == expected  # a subclass: read, not cached


class _Str(str):
    __slots__ = ()


@given(st.lists(_TEXT, max_size=6) | _JSON)
def test_audit_codes_column_is_json_dumps(value: Any) -> None:
    """The audit log's ``codes`` column is ``json.dumps(codes)``, whatever the codes."""
    assert _audit._json_list(value) == json.dumps(value)


@given(st.integers(0, 253_402_300_799_999_999_999))
@example(0)
@example(1_764_614_680_999_999_999)
def test_audit_time_is_the_datetime_isoformat(ns: int) -> None:
    """The audit log's ``time`` is the UTC ``isoformat`` to the millisecond, ``Z``-suffixed."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    expected = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert _audit._stamp(ns) == expected
    assert _audit._stamp(ns) == expected  # the second's text cached


@given(st.recursive(st.none() | st.text(max_size=3) | st.sampled_from([1, 1.5, True, b"x"]),
                    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
                    | st.dictionaries(st.sampled_from(["resourceType", "entry", "resource",
                                                       "fullUrl", "id"]),
                                      kids | st.just("Bundle"), max_size=4),
                    max_leaves=15))
def test_input_items_are_the_flattened_input(data: Any) -> None:
    """The reader's items (one walk) are the pairs of the reference flatten, in order."""
    items = _reading.input_items(data)
    assert [(r.resource if r.valid else r.source, r.full_url) for r in items] == _flatten(data)
    assert [r.index for r in items] == list(range(len(items)))
    for r in items:
        assert r.valid is isinstance(r.source if not r.valid else r.resource, Mapping)
        if not r.valid:
            assert r.resource == {"resourceType": type(r.source).__name__}


def _flatten(data: Any) -> list[tuple[Any, str | None]]:
    """:func:`_reading.flatten` as it was (a recursive closure), the reference."""
    out: list[tuple[Any, str | None]] = []

    def walk(item: Any, full_url: str | None) -> None:
        if item is None:
            return
        if isinstance(item, Mapping):
            if item.get("resourceType") == "Bundle":
                for entry in _reading.jlist(item.get("entry")):
                    e = _reading.jobj(entry)
                    walk(e.get("resource"), _reading.jstr(e.get("fullUrl")))
                return
            out.append((item, full_url))
            return
        if isinstance(item, list | tuple):
            for x in item:
                walk(x, None)
            return
        out.append((item, full_url))

    walk(data, None)
    return out


_STATUS_CONCEPT = st.dictionaries(
    st.sampled_from(["coding", "text"]),
    st.lists(st.dictionaries(st.sampled_from(["system", "code"]),
                             st.none() | st.integers() | st.sampled_from(
                                 ["", " ", "active", " resolved ", "x"]), max_size=2)
             | st.none() | st.integers(), max_size=4)
    | st.tuples(st.none()) | st.none() | st.text(max_size=3)) | st.none() | st.integers()


@given(_STATUS_CONCEPT)
def test_status_codes_are_the_codes_of_codings_of(concept: Any) -> None:
    """A status concept's codes, read in one loop, are those of its ``codings_of`` pairs."""
    assert _reading.status_codes(concept) == {code for _, code in _reading.codings_of(concept)}


def _texts_of(concept: Any) -> list[str]:
    """:func:`_reading.texts_of` as it was (the accessors), the reference."""
    c = _reading.jobj(concept)
    out = [t for t in [_reading.jstr(c.get("text"))] if t]
    out.extend(t for coding in _reading.jlist(c.get("coding"))
               if (t := _reading.jstr(_reading.jobj(coding).get("display"))))
    return out


_TEXT_CONCEPT = st.dictionaries(
    st.sampled_from(["coding", "text"]),
    st.lists(st.dictionaries(st.sampled_from(["display", "code"]),
                             st.none() | st.integers() | st.sampled_from(["", " ", "Warfarin"]),
                             max_size=2) | st.none() | st.integers(), max_size=4)
    | st.tuples(st.none()) | st.none() | st.integers() | st.sampled_from(["", "Nickel"])
) | st.none() | st.integers() | st.text(max_size=3)


@given(_TEXT_CONCEPT)
def test_texts_of_in_one_loop_is_the_accessors_reading(concept: Any) -> None:
    """A concept's text and displays, read in one loop, are what the accessors read."""
    assert _reading.texts_of(concept) == _texts_of(concept)
