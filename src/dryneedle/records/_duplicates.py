"""Duplicate keys in JSON text (SPEC §6 1.1): a cheap exact pre-test and a detecting parse.

JSON parsers (the stdlib, orjson, msgspec) keep one value per key, silently. A record whose
object gives a key twice is reported (``structure.duplicate_key``, by the walkers of
:mod:`._structure`) and its answer resolved cautiously, so the parse that sees duplicates runs
only when a cheap count of the keys cannot rule them out.

May import: the standard library, orjson (optional) and :mod:`._json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from dryneedle.records._json import reference_parser

__all__ = [
    "DUPS",
    "loads_with_duplicates",
    "may_have_duplicates",
    "pairs_hook",
    "parse_seeing_duplicates",
    "repeats_a_key",
]


class _Dups:
    """Key of the entry a duplicate-detecting parse adds to an object with repeated keys.

    Not a string, so it can never be a JSON key; its value maps each repeated key to every
    value it was given, in order.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "DUPS"


DUPS: Final = _Dups()


def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    """``object_pairs_hook`` of a duplicate-detecting JSON parse.

    Returns the object as a dict (the last value of a repeated key, as other parsers do) and,
    when a key is repeated, an extra entry under :data:`DUPS` listing every value of each
    repeated key, which the walkers report and resolve.
    """
    d: dict[Any, Any] = dict(pairs)
    if len(d) != len(pairs):
        dups: dict[str, list[Any]] = {}
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                dups.setdefault(k, [seen[k]]).append(v)
            seen[k] = v
        d[DUPS] = dups
    return d


parse_seeing_duplicates: Final = reference_parser(pairs_hook)
"""Parse a JSON text by the reference rules (:func:`._json.parse` without orjson), each
object with repeated keys carrying its :data:`DUPS` entry (see :func:`pairs_hook`); raises
:class:`._json.JSONError`. One parse where the reference decoder parses anyway: no pre-test."""


def _stdlib_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_dumps: Callable[[Any], bytes]
try:  # the compact re-serialisation of the pre-test (orjson when installed: same count)
    import orjson as _orjson

    _dumps = _orjson.dumps
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    _dumps = _stdlib_dumps


def may_have_duplicates(text: str | bytes, parsed: Any) -> bool:
    r"""A cheap test: ``False`` proves the JSON text has no repeated key in any object.

    ``parsed`` is the text as parsed by a parser that keeps one value per key (orjson,
    msgspec, the stdlib). Every key written compactly is followed by ``":``, and a string can
    add ``":`` only as ``\":``, which the compact re-serialisation of ``parsed`` writes
    identically; so when the text and the re-serialisation hold as many ``":``, no key was
    written twice. Whitespace before a colon, or a ``\u`` escape (which could hide a quote),
    answers ``True``, as does any difference: the caller then runs the duplicate-detecting
    parse (:func:`loads_with_duplicates`). All in C: two counts and one serialisation (each
    two-character scan only behind a one-character one, which is several times cheaper).
    """
    if isinstance(text, bytes):
        if ((b" " in text and b'" ' in text) or (b"\t" in text and b'"\t' in text)
                or (b"\r" in text and b'"\r' in text) or (b"\n" in text and b'"\n' in text)
                or (b"\\" in text and b"\\u" in text)):
            return True
        tokens = text.count(b'":')
    else:
        if ((" " in text and '" ' in text) or ("\t" in text and '"\t' in text)
                or ("\r" in text and '"\r' in text) or ("\n" in text and '"\n' in text)
                or ("\\" in text and "\\u" in text)):
            return True
        tokens = text.count('":')
    if tokens == 0:
        return False
    try:
        return _dumps(parsed).count(b'":') != tokens
    except (TypeError, ValueError):  # pragma: no cover - parsed JSON always serialises
        return True


def loads_with_duplicates(text: str | bytes) -> tuple[Any, bool]:
    """Parse JSON text keeping repeated keys visible (see :func:`pairs_hook`).

    By the reference rules of :func:`._json.parse` (so an integer too long for Python's
    ``int``, say, parses here as there, and a repeated key beside it is still seen).

    Returns:
        The parsed value and whether any object repeated a key.

    Raises:
        ValueError: When the text is not JSON (a :class:`._json.JSONError`).
    """
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
        nonlocal found
        d = pairs_hook(pairs)
        if DUPS in d:
            found = True
        return d

    value = reference_parser(hook)(text if isinstance(text, str) else bytes(text))
    return value, found


def repeats_a_key(text: str | bytes, parsed: Any) -> bool:
    """Whether an object of the JSON ``text`` (parsed as ``parsed``) gives a key twice.

    A cheap count of the keys first (exact: no repeat is ever missed), then, only when it
    cannot rule a repeat out, the duplicate-detecting parse; a disagreement between the
    parsers counts as a repeat (never read as the first parse did).
    """
    if not may_have_duplicates(text, parsed):
        return False
    try:
        return loads_with_duplicates(text)[1]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return True
