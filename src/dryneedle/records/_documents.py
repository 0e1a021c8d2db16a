"""Record texts out of a byte stream: JSONL lines, JSON array elements, one JSON document.

Both readers work on bytes and never decode or parse: they only *delimit* records, in bounded
memory, and hand each record's raw text to the one parser (:func:`._json.parse`), so a JSONL
line and the same record as an array element get byte-identical reports. A record larger than
``max_bytes`` is skipped unread, in bounded chunks, and comes back as a :class:`BadInput`
(``structure.too_large``); so does a part of an array that cannot be delimited.

* :func:`jsonl_records` -- one record per line; lines holding only JSON whitespace (space,
  tab, CR, LF) are skipped; the JSON whitespace around a record (its line ending, LF or
  CRLF, included) is removed, as around an array element.
* :func:`json_records` -- a JSON array (one record per element, streamed) or any other JSON
  document (one record).

May import: the standard library, attrs and :mod:`._json`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Final

import attrs

from dryneedle.records._json import JSON_WHITESPACE

__all__ = [
    "BOM",
    "DEFAULT_MAX_RECORD_BYTES",
    "BadInput",
    "json_records",
    "jsonl_records",
]

BOM: Final = b"\xef\xbb\xbf"
"""The UTF-8 byte order mark, removed from the start of an input."""

DEFAULT_MAX_RECORD_BYTES: Final = 16 * 1024 * 1024
"""Default ``--max-record-bytes``: a record larger than this is reported, not read (16 MiB)."""

CHUNK: Final = 1 << 16


@attrs.frozen
class BadInput:
    """A record that could not be delimited or read: reported with this code and message.

    Attributes:
        code: The finding code (``structure.json`` or ``structure.too_large``).
        message: What went wrong (never quotes the content).
    """

    code: str
    message: str


def too_large(max_bytes: int) -> BadInput:
    """The :class:`BadInput` of a record larger than ``max_bytes``."""
    return BadInput("structure.too_large",
                    f"record is larger than {max_bytes} bytes (--max-record-bytes); not read")


# --- JSONL --------------------------------------------------------------------------------------


def jsonl_line_record(raw: bytes, max_bytes: int, *, first: bool) -> bytes | BadInput | None:
    r"""Return the record of one JSONL line (already split, its ``\n`` removed).

    As the input layer reads it: a UTF-8 BOM removed from the input's first line, a line over
    ``max_bytes`` a ``BadInput`` (reported as ``structure.too_large``), the JSON whitespace
    around it removed; ``None`` for a blank line.

    For engines that split lines themselves (the Dask and Spark recipes), so that every engine
    reads a line as the command line's JSONL reader does.

    >>> from dryneedle.records import jsonl_line_record
    >>> jsonl_line_record(b'\xef\xbb\xbf{"a": 1}\r', 100, first=True)
    b'{"a": 1}'
    >>> jsonl_line_record(b" \t\r", 100, first=False) is None
    True
    """
    if first and raw.startswith(BOM):
        raw = raw[3:]
    if len(raw) > max_bytes:
        return too_large(max_bytes)
    return raw.strip(JSON_WHITESPACE) or None


def jsonl_records(
    stream: IO[bytes], max_bytes: int, *, first_line: int = 1, at_start: bool = True,
    limit: int | None = None, lines_read: list[int] | None = None,
) -> Iterator[tuple[int, bytes | BadInput]]:
    """Yield ``(line, text)`` for each record line of a JSONL stream.

    Args:
        stream: A binary stream with ``readline(size)``.
        max_bytes: Largest record (line without its ending) read; larger lines are skipped.
        first_line: Line number of the stream's first line.
        at_start: Whether the stream starts at the beginning of its input (a BOM is removed).
        limit: Read at most this many bytes (whole lines: a range of a file), else to the end.
        lines_read: When given, the number of lines read is appended to it at the end.
    """
    n = first_line - 1
    if limit is not None and limit <= max_bytes:
        # A range no larger than a record may be (the command line's blocks): no line can be
        # too large, so read it at once and split it in C (the same lines, numbered the same).
        lines = stream.read(limit).split(b"\n")
        if not lines[-1]:
            lines.pop()  # after the last line ending: not a line
        if at_start and lines and lines[0].startswith(BOM):
            lines[0] = lines[0][3:]
        strip = bytes.strip
        for n, raw in enumerate(lines, start=first_line):
            text = strip(raw, JSON_WHITESPACE)
            if text:
                yield n, text
        if lines_read is not None:
            lines_read.append(len(lines))
        return
    left = limit
    readline = stream.readline
    while left is None or left > 0:
        size = max_bytes + 1 if left is None else min(max_bytes + 1, left)
        raw = readline(size)
        if not raw:
            break
        if left is not None:
            left -= len(raw)
        n += 1
        if at_start:
            at_start = False
            if raw.startswith(BOM):
                raw = raw[3:]
        if not raw.endswith(b"\n") and len(raw) > max_bytes:
            # Oversized: skip the rest of the line in bounded pieces; one report.
            while left is None or left > 0:
                piece = readline(CHUNK if left is None else min(CHUNK, left))
                if not piece:
                    break
                if left is not None:
                    left -= len(piece)
                if piece.endswith(b"\n"):
                    break
            yield n, too_large(max_bytes)
            continue
        text = raw.strip(JSON_WHITESPACE)
        if text:
            # Without the JSON whitespace around it (line ending included), so LF and CRLF
            # files, and a line and the same text as an array element, give the same reports.
            yield n, text
    if lines_read is not None:
        lines_read.append(n - first_line + 1)


# --- JSON documents -----------------------------------------------------------------------------

# Outside strings, up to the next bracket (or comma, at the top level of an element); whole
# strings are skipped in one step. Possessive, so a failed string match never backtracks.
_STR: Final = rb'"[^"\\]*+(?:\\[\s\S][^"\\]*+)*+"'
_TOP: Final = re.compile(rb'(?:[^"\[\]{},]++|' + _STR + rb")*+")
_NESTED: Final = re.compile(rb'(?:[^"\[\]{}]++|' + _STR + rb")*+")
_STRING_REST: Final = re.compile(rb'[^"\\]*+(?:\\[\s\S][^"\\]*+)*+')
_WS: Final = re.compile(rb"[ \t\r\n]*+")


class _Reader:
    """A growing byte buffer over a stream, with line counting and bounded memory."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.pos = 0
        self.eof = False
        self.line = 1
        self._counted = 0  # newlines are counted in buf[:_counted]

    def fill(self, keep: int, want: int = CHUNK) -> bool:
        """Drop ``buf[:keep]``, read more; return False at the end of the stream."""
        if self.eof:
            return False
        self.line_at(keep)
        del self.buf[:keep]
        self.pos -= keep
        self._counted -= keep
        chunk = self.stream.read(max(CHUNK, want))
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line_at(self, p: int) -> int:
        """The line of byte ``p`` of the buffer (``p`` never moves backwards)."""
        if p > self._counted:
            self.line += self.buf.count(b"\n", self._counted, p)
            self._counted = p
        return self.line

    def skip_ws(self) -> int:
        """Skip JSON whitespace; return the next byte, or -1 at the end."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill(self.pos):
                return -1


_OPEN: Final = frozenset(b"[{")
_CLOSE: Final = frozenset(b"]}")
_QUOTE: Final = ord('"')
_COMMA: Final = ord(",")
_RBRACKET: Final = ord("]")
_LBRACKET: Final = ord("[")


def _element(r: _Reader, max_bytes: int) -> tuple[bytes | None, bool]:
    """Delimit one array element starting at ``r.pos``: return (text, closed).

    The element ends at a top-level ``,`` or ``]`` (``r.pos`` is left on it) or at the end of
    the stream. Brackets and strings are tracked, values are not checked. ``text`` is
    ``None`` when the element is larger than ``max_bytes`` (it was skipped, never held);
    ``closed`` is false when the stream ended inside an open string or bracket.
    """
    start = r.pos
    depth = 0
    in_string = False
    oversized = False
    buf = r.buf
    while True:
        if in_string:
            r.pos = _STRING_REST.match(buf, r.pos).end()  # type: ignore[union-attr]
            if r.pos < len(buf) and buf[r.pos] == _QUOTE:
                r.pos += 1
                in_string = False
                continue
        else:
            r.pos = (_NESTED if depth else _TOP).match(buf, r.pos).end()  # type: ignore[union-attr]
            if r.pos < len(buf):
                c = buf[r.pos]
                if c == _QUOTE:
                    in_string = True
                elif c in _OPEN:
                    depth += 1
                elif c in _CLOSE:
                    if depth == 0:
                        if c == _RBRACKET:
                            break
                    else:
                        depth -= 1
                elif c == _COMMA:  # only seen at the top level
                    break
                r.pos += 1
                continue
        # The buffer ends inside the element: read on (dropping it once it is too large).
        if not oversized and r.pos - start > max_bytes:
            oversized = True
        if not r.fill(r.pos if oversized else start, 0 if oversized else r.pos - start):
            r.pos = len(r.buf)
            if not oversized:
                start = 0
            break
        if not oversized:
            start = 0
        buf = r.buf
    closed = depth == 0 and not in_string
    if oversized or r.pos - start > max_bytes:
        return None, closed
    return bytes(buf[start:r.pos]).rstrip(JSON_WHITESPACE), closed


_NOT_CLOSED: Final = BadInput("structure.json",
                              "not valid JSON: the input ends inside the JSON array")


def json_records(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | BadInput]]:
    """Yield ``(line, text)`` for each record of a JSON input: array elements, or the document.

    A JSON input is an array (one record per element) or one document (one record, e.g. an
    object, pretty-printed or not). Elements are delimited without being parsed, so one bad
    element is one report and the next element is read; an element whose strings or brackets
    never close is reported once, for the rest of the input.
    """
    r = _Reader(stream)
    r.fill(0)
    if r.buf.startswith(BOM):
        r.pos = 3
    c = r.skip_ws()
    if c == -1:
        return  # an empty input holds no record
    if c != _LBRACKET:
        yield from _one_document(r, max_bytes)
        return
    r.pos += 1
    first = True
    while True:
        c = r.skip_ws()
        line = r.line_at(r.pos)
        if c == -1:
            yield line, _NOT_CLOSED
            return
        if c == _RBRACKET and first:
            break
        if c in (_COMMA, _RBRACKET):
            message = ("a comma before the end of the array" if c == _RBRACKET
                       else "missing array element")
            yield line, BadInput("structure.json", f"not valid JSON: {message}")
            if c == _RBRACKET:
                break
            r.pos += 1
            continue
        first = False
        text, closed = _element(r, max_bytes)
        if not closed:  # the rest of the input cannot be delimited: one report for it
            yield line, too_large(max_bytes) if text is None else _NOT_CLOSED
            return
        yield line, too_large(max_bytes) if text is None else text
        if r.pos >= len(r.buf):
            yield r.line_at(r.pos), _NOT_CLOSED
            return
        if r.buf[r.pos] == _RBRACKET:
            break
        r.pos += 1  # the comma
        if r.skip_ws() == _RBRACKET:
            yield r.line_at(r.pos), BadInput(
                "structure.json", "not valid JSON: a comma before the end of the array")
            break
    r.pos += 1
    if r.skip_ws() != -1:  # never drop what follows silently
        yield r.line_at(r.pos), BadInput(
            "structure.json",
            "not valid JSON: content after the end of the JSON array (a JSON input holds one "
            "array or one object; use JSONL for one record per line)")


def _one_document(r: _Reader, max_bytes: int) -> Iterator[tuple[int, bytes | BadInput]]:
    line = r.line_at(r.pos)
    start = r.pos
    oversized = False
    while True:
        if not oversized and len(r.buf) - start > max_bytes:
            oversized = True
        r.pos = len(r.buf)
        if not r.fill(r.pos if oversized else start, 0 if oversized else r.pos - start):
            break
        if not oversized:
            start = 0
    if oversized or len(r.buf) - start > max_bytes:
        yield line, too_large(max_bytes)
    else:
        yield line, bytes(r.buf[start:]).rstrip(JSON_WHITESPACE)
