r"""One meaning for every number: the reference JSON parser of record format v1 (spec §6, 1.1).

Every record text -- a JSONL line, a JSON array element, one JSON document -- is parsed by
:func:`parse`, the standard library's C decoder with these rules, so that the accelerated path
(:mod:`._fast`) and the pure-Python path give byte-identical reports:

* the text must be UTF-8 (an invalid byte is a JSON error, at path ``""``);
* ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (a JSON error);
* documents nested deeper than :data:`MAX_DEPTH` levels are a JSON error (``nested too
  deeply``), decided by a scan of the text before any parser runs, so both parsers agree;
* numbers keep their values: an integer literal of any length parses (one too long for Python's
  ``int`` becomes an infinity of its sign, a value beyond every range); the structure check then
  applies JSON Schema semantics (``1.0`` is an integer; integers must fit in 64 bits, numbers in
  a double);
* strings may hold lone surrogates (``"\ud800"``); the structure check reports them at their
  path.

The reference is the standard library's decoder; a faster parser may stand in for it only where
it provably gives the same value: with orjson installed (extra ``fast``, not switched off by
``DRYNEEDLE_FAST=0``), a byte text with no run of 19 or more digits (orjson turns integers
beyond 64 bits into floats) and at most :data:`MAX_DEPTH` brackets is parsed by orjson; orjson
rejects everything else the two might read differently (lone surrogate escapes, numbers beyond
a double, BOMs, invalid UTF-8, ``NaN``), and on any orjson error the reference decoder parses the
text again, for its value or its message. A differential property test guards this.

Also here: :data:`JSON_WHITESPACE` and :func:`is_blank` (which lines are not records), and
:func:`escape_text` / :func:`escape_surrogates`, which make input text safe to print.

May import: the standard library only (and the optional orjson).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "JSON_WHITESPACE",
    "MAX_DEPTH",
    "MAX_DOUBLE",
    "JSONError",
    "escape_surrogates",
    "escape_text",
    "has_surrogate",
    "is_blank",
    "parse",
    "parse_exact",
    "reference_parser",
]

JSON_WHITESPACE: Final = b" \t\r\n"
"""The four whitespace bytes of JSON (RFC 8259): space, tab, CR, LF (not VT or FF)."""

MAX_DEPTH: Final = 256
"""Deepest nesting of arrays and objects a record text may have (deeper: not valid JSON)."""

INT_MIN: Final = -(2**63)
"""Smallest integer an integer field can hold (signed 64 bits)."""
INT_MAX: Final = 2**63 - 1
"""Largest integer an integer field can hold (signed 64 bits)."""
MAX_DOUBLE: Final = sys.float_info.max
"""Largest magnitude a number field can hold (an IEEE 754 double)."""


class JSONError(ValueError):
    """A text is not valid JSON; ``str(error)`` says why, without quoting the content."""


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise JSONError(msg)


def _int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # beyond Python's int-string limit: a value beyond every range
        return -math.inf if text.startswith("-") else math.inf


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_LONG_INT_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_int)

# Inside a string: everything up to the closing quote (escapes included).
_STRING_REST: Final = re.compile(r'[^"\\]*+(?:\\[\s\S][^"\\]*+)*+')
_BRACKETS: Final = re.compile(r'["\[\]{}]')


_fast_loads: Callable[[bytes], Any] | None = None
_FastError: type[Exception] = ValueError
if os.environ.get("DRYNEEDLE_FAST", "1") != "0":  # the switch of the accelerated path
    try:
        import orjson
    except ImportError:  # pragma: no cover - exercised where the extra is not installed
        pass
    else:
        _fast_loads = orjson.loads
        _FastError = orjson.JSONDecodeError

# Every byte to a space, except the ASCII digits (to "0": a run of digits survives
# translation) and the opening brackets (to "["): one pass gives both of _orjson_may_parse's
# counts.
_LONG_DIGITS: Final = b"0" * 19
_SCAN_TABLE: Final = bytes(0x30 if 0x30 <= c <= 0x39 else 0x5B if c in b"[{" else 0x20
                           for c in range(256))


def _orjson_may_parse(raw: bytes) -> bool:
    """Whether orjson's value of ``raw`` is provably the reference's (module docstring).

    At most :data:`MAX_DEPTH` opening brackets and no run of 19 digits: ``raw.count(b"[") +
    raw.count(b"{") <= MAX_DEPTH`` and no 19 digits in a row, read in one translated copy.
    """
    scan = raw.translate(_SCAN_TABLE)
    return scan.count(b"[") <= MAX_DEPTH and _LONG_DIGITS not in scan


def _too_deep(text: str) -> bool:
    """Whether arrays/objects nest deeper than :data:`MAX_DEPTH` (strings are skipped)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    pos = 0
    search = _BRACKETS.search
    while True:
        m = search(text, pos)
        if m is None:
            return False
        c = m.group()
        pos = m.end()
        if c == '"':
            pos = _STRING_REST.match(text, pos).end() + 1  # type: ignore[union-attr]
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif depth:
            depth -= 1


def _message(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return str(exc).split(":", 1)[0]  # "'utf-8' codec can't decode byte 0xff in position 3"
    # Decoder messages quote positions, not content; keep them short and PHI-free.
    return str(exc)[:120]


def parse(text: str | bytes | bytearray | memoryview) -> Any:
    """Parse one JSON document by the rules of record format v1 (see the module docstring).

    Args:
        text: The JSON text (bytes are decoded as strict UTF-8).

    Returns:
        The decoded value (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` or
        ``None``).

    Raises:
        JSONError: When the text is not valid JSON (the message never quotes the content).

    >>> from dryneedle.records import loads
    >>> loads(b'{"n": 1.0, "big": 1e400}')
    {'n': 1.0, 'big': inf}
    >>> loads("NaN")
    Traceback (most recent call last):
    ...
    dryneedle.records.JSONError: NaN is not valid JSON
    """
    if not isinstance(text, str):
        raw = text if text.__class__ is bytes else bytes(text)
        if _fast_loads is not None and _orjson_may_parse(raw):
            try:
                return _fast_loads(raw)  # provably the reference's value (module docstring)
            except _FastError:
                pass  # the reference decoder below gives the value or says why
        text = raw
    return _reference(text, _DECODER, _LONG_INT_DECODER)


def parse_exact(text: bytes) -> tuple[Any, bool]:
    """:func:`parse` of a byte text, and whether orjson decoded it (``exact``).

    An ``exact`` value holds no lone surrogate (orjson refuses them), no infinite number
    (orjson refuses ``1e400``) and no integer of 19 digits or more (the text has no such run
    of digits): each of its numbers and strings is one that msgspec converts as the walkers
    read it. Raises :class:`JSONError` as :func:`parse` does.
    """
    if _fast_loads is not None and _orjson_may_parse(text):
        try:
            return _fast_loads(text), True
        except _FastError:
            pass  # the reference decoder below gives the value or says why
    return _reference(text, _DECODER, _LONG_INT_DECODER), False


def reference_parser(
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any],
) -> Callable[[str | bytes], Any]:
    """Return :func:`parse` by the reference decoder alone, building objects with a hook.

    The same rules, values and error messages as :func:`parse` (the standard library's
    decoder is the reference); each object is built by ``object_pairs_hook`` from its members
    in order, as :class:`json.JSONDecoder` does (e.g. to see repeated keys).
    """
    decoder = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=object_pairs_hook)
    long_int = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_int,
                                object_pairs_hook=object_pairs_hook)

    def parse_with_hook(text: str | bytes) -> Any:
        return _reference(text, decoder, long_int)

    return parse_with_hook


def _reference(text: str | bytes, decoder: json.JSONDecoder,
               long_int: json.JSONDecoder) -> Any:
    """The reference decoder's value of ``text`` (the rules of :func:`parse`)."""
    if not isinstance(text, str):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONError(_message(exc)) from None
    if _too_deep(text):
        msg = f"nested too deeply (more than {MAX_DEPTH} levels)"
        raise JSONError(msg)
    try:
        return decoder.decode(text)
    except JSONError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONError(_message(exc)) from None
    except ValueError:  # an integer literal beyond Python's int-string limit (4300 digits)
        try:
            return long_int.decode(text)
        except JSONError:
            raise
        except ValueError as exc:  # pragma: no cover - the first decode would have said so
            raise JSONError(_message(exc)) from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps well below the stack limit
        msg = "nested too deeply"
        raise JSONError(msg) from None


def is_blank(line: bytes | str) -> bool:
    r"""Whether a JSONL line is blank (skipped, not a record): only JSON whitespace.

    Space, tab, CR and LF are JSON whitespace; a line holding ``\v`` or ``\f`` is not blank
    (it is a record that is not valid JSON).

    >>> is_blank(b" \t\r\n"), is_blank(b"\x0b")
    (True, False)
    """
    if isinstance(line, str):
        return not line.strip(" \t\r\n")
    return not line.strip(JSON_WHITESPACE)


_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_UNPRINTABLE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def has_surrogate(text: str) -> bool:
    """Whether a string holds a lone surrogate (it then is not Unicode text)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_surrogates(text: str) -> str:
    r"""Return ``text`` with each lone surrogate written as ``\udXXX`` (so it can be encoded).

    >>> escape_surrogates("a\ud800b")
    'a\\ud800b'
    """
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape, text)


def escape_text(text: str) -> str:
    r"""Return ``text`` safe for a terminal (control characters and escapes written out).

    Control characters (terminal escapes start with one), bidi controls and lone surrogates
    are written as ``\xNN`` / ``\uNNNN``.

    >>> from dryneedle.records import escape_text
    >>> escape_text("r-1\n\x1b[31m")
    'r-1\\x0a\\x1b[31m'
    """
    return _UNPRINTABLE.sub(_escape, text)
