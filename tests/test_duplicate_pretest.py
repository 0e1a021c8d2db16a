"""The exact duplicate-key pre-test of the accelerated path (SPEC 1.1 section 6, issue #17).

:func:`dryneedle.records._fast.no_repeated_key` must never answer ``True`` for a text in which
an object gives a key twice, whatever the spacing, the strings (keys written inside string
values, escaped quotes) or the nesting (nested objects, arrays of objects), and whichever
members are absent elsewhere. ``False`` only sends the line to the slower pre-test, so the
report is the same either way: a repeated key is always reported.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle.records import _fast, _json
from dryneedle.records._duplicates import loads_with_duplicates
from dryneedle.records._validate import Validator
from dryneedle.strategies import records
from json_texts import dumps as _dumps
from json_texts import objects as _objects

pytestmark = pytest.mark.skipif(not _fast.AVAILABLE, reason="msgspec not installed")

ROOT = Path(__file__).resolve().parent.parent
BASE: dict[str, Any] = json.loads(
    (ROOT / "examples" / "sessions.jsonl").read_bytes().splitlines()[0])
DUP = "structure.duplicate_key"


def _codes(text: str | bytes) -> set[str]:
    return {f.code for f in Validator().check(text, 0, 1).findings}


def _assert_repeat_caught(text: str) -> None:
    for form in (text, text.encode()):
        if _fast.decode(form) is not None:  # the pre-test only runs on a decoded text
            assert not _fast.no_repeated_key(form), text
        assert DUP in _codes(form), text


def test_clean_texts_pass_the_pre_test() -> None:
    for spaced in (False, True):
        text = _dumps(BASE, spaced=spaced)
        assert _fast.no_repeated_key(text.encode())
        assert _fast.no_repeated_key(text)
        assert DUP not in _codes(text)
    lines = (ROOT / "examples" / "sessions.jsonl").read_bytes().splitlines()
    assert all(_fast.no_repeated_key(line) for line in lines if _fast.decode(line) is not None)


@pytest.mark.parametrize("where", range(len(_objects(BASE))))
def test_a_repeated_key_in_any_object_is_caught(where: int) -> None:
    """Top level, nested objects, arrays of objects: each object, each spacing."""
    obj = _objects(BASE)[where]
    for key, value in obj.items():
        for spaced in (False, True):
            _assert_repeat_caught(_dumps(BASE, spaced=spaced, dup=(where, key, value)))


def test_keys_inside_strings_and_escaped_quotes() -> None:
    """A key written inside a string value is not a key; a repeat is still caught."""
    record = copy.deepcopy(BASE)
    record["record_id"] = 'r-1","record_id":"x'  # written with escaped quotes
    record["session"]["session_id"] = 's\\":\\"1 "consent":true'
    for spaced in (False, True):
        text = _dumps(record, spaced=spaced)
        assert _fast.no_repeated_key(text.encode())
        assert DUP not in _codes(text)
        _assert_repeat_caught(_dumps(record, spaced=spaced, dup=(0, "record_id", "r-2")))
    # A \u escape spells the same field name: still the same key.
    text = _dumps(record)
    fmt = '"dryneedle.session/1",'
    _assert_repeat_caught(text.replace('"format":', '"format":' + fmt + '"f\\u006frmat":', 1))
    _assert_repeat_caught(text.replace('"format":', '"\\u0066ormat":' + fmt + '"format":', 1))


def test_an_absent_member_does_not_hide_a_repeat() -> None:
    """One member left out and another written twice: the key count would balance."""
    record = copy.deepcopy(BASE)
    insertion = record["session"]["insertions"][0]
    optional = [k for k in ("twitch_response", "directed_away_from_lung", "dwell_s")
                if k in insertion]
    assert optional
    del insertion[optional[0]]
    where = next(i for i, o in enumerate(_objects(record)) if o is insertion)
    _assert_repeat_caught(_dumps(record, dup=(where, "muscle", insertion["muscle"])))
    history = record["patient"]["history"]
    del history["epilepsy"]
    history["diabetes"] = None
    where = next(i for i, o in enumerate(_objects(record)) if o is history)
    _assert_repeat_caught(_dumps(record, dup=(where, "diabetes", None)))  # null twice
    _assert_repeat_caught(_dumps(record, spaced=True, dup=(where, "diabetes", None)))


def test_whitespace_inside_strings_does_not_hide_a_repeat() -> None:
    """Spaces inside values balance nothing: they are written back as they were."""
    record = copy.deepcopy(BASE)
    record["record_id"] = "r" + " " * 40
    record["patient"]["patient_id"] = "p\t\n" * 10
    for spaced in (False, True):
        _assert_repeat_caught(_dumps(record, spaced=spaced, dup=(1, "sex", "male")))


@given(records(unknown_lists=True), st.data())
def test_no_repeated_key_is_exact(record: dict[str, Any], data: st.DataObject) -> None:
    """Property: a key written twice in any object, any members absent, any spacing."""
    for obj in _objects(record):  # leave out some unknown (null) members
        for key in [k for k, v in obj.items() if v is None]:
            if data.draw(st.booleans(), label=f"drop {key}"):
                del obj[key]
    objects = _objects(record)
    spaced = data.draw(st.booleans(), label="spaced")
    where = data.draw(st.integers(0, len(objects) - 1), label="object")
    if not objects[where]:
        return
    key = data.draw(st.sampled_from(sorted(objects[where])), label="key")
    value = objects[where][key]
    if isinstance(value, bool) and data.draw(st.booleans(), label="flip"):
        value = not value
    text = _dumps(record, spaced=spaced)
    if _fast.decode(text.encode()) is not None:
        assert _fast.no_repeated_key(text.encode())  # a clean text: no false alarm
    _assert_repeat_caught(_dumps(record, spaced=spaced, dup=(where, key, value)))


def _reports(texts: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    v = Validator(**kwargs)
    return [v.check(t.encode(), i, i + 1).as_dict() for i, t in enumerate(texts)]


def test_the_reference_parse_sees_repeats_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without orjson the reference decoder parses once, seeing repeats: the same reports."""
    texts = [_dumps(BASE), _dumps(BASE, spaced=True)]
    for where, obj in enumerate(_objects(BASE)):
        key = next(iter(obj))
        texts.append(_dumps(BASE, dup=(where, key, obj[key])))
    texts.append(texts[-1].replace('"format":', '"format":"x","format":', 1))
    expected = _reports(texts, fast=False)
    assert all(DUP in {f["code"] for f in r["findings"]} for r in expected[2:])
    assert _reports(texts) == expected
    monkeypatch.setattr(_json, "_fast_loads", None)
    assert _reports(texts, fast=False) == expected


def test_a_repeat_beside_an_integer_too_long_for_python_is_seen() -> None:
    """An integer literal beyond Python's int-string limit still parses; the repeat counts."""
    text = _dumps(BASE, dup=(0, "record_id", BASE["record_id"]))
    text = text.replace('"number":1', '"number":' + "9" * 5000, 1)
    assert '"number":999' in text
    codes = _codes(text)
    assert DUP in codes
    assert "structure.range" in codes
    value, repeated = loads_with_duplicates(text)
    assert repeated
    assert value["session"]["number"] == math.inf
