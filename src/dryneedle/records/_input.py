"""The input layer: every way record bytes come in, and how one JSON document is parsed.

Inputs are JSONL or JSON arrays, from files, globs, gzip or standard input. Everything
streams: JSONL is read line by line and a JSON array is decoded one element at a time, so
memory does not grow with the size of a file. :func:`loads` parses one JSON document (orjson
when installed, else the stdlib, with the same results). A new input format goes here: it
yields :class:`Item` objects like :func:`iter_items`.

May import: the standard library, attrs and the optional orjson. Nothing of dryneedle.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

import attrs

__all__ = [
    "ArrayError",
    "InputError",
    "Item",
    "expand_inputs",
    "first_significant",
    "input_size",
    "iter_items",
    "loads",
    "open_input",
]

_CHUNK: Final = 1 << 16
_MAX_ELEMENT: Final = 1 << 28  # an array element larger than 256 MiB is unreadable input

try:  # optional fast parser (extra ``fast``); results are identical either way
    import orjson as _orjson

    def loads(text: str | bytes) -> Any:
        """Parse one JSON document (orjson when installed, else the stdlib)."""
        return _orjson.loads(text)

except ImportError:  # pragma: no cover - exercised in environments without orjson

    def _reject_constant(name: str) -> Any:
        msg = f"{name} is not valid JSON"
        raise ValueError(msg)

    _decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def loads(text: str | bytes) -> Any:
        """Parse one JSON document (orjson when installed, else the stdlib)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _decoder.decode(text)


class InputError(OSError):
    """An input cannot be opened or read (the CLI exits with code 2)."""


@attrs.frozen(slots=True)
class Item:
    """One input record as read: its source, line number and raw text or decoded value.

    Attributes:
        source: File name (``-`` for standard input).
        line: 1-based line where the record starts.
        data: The raw JSON text (JSONL) or the decoded element (JSON array), or an
            :class:`ArrayError` when an array element could not be decoded.
    """

    source: str
    line: int
    data: Any


@attrs.frozen
class ArrayError:
    """A JSON array could not be decoded from this point on."""

    message: str


def expand_inputs(names: Iterable[str]) -> list[str]:
    """Expand globs in input names (``-`` is standard input); keep literal names otherwise.

    Raises:
        InputError: When a name matches nothing and does not exist.
    """
    out: list[str] = []
    for name in names:
        if name == "-" or os.path.exists(name):
            out.append(name)
            continue
        matches = sorted(glob.glob(name, recursive=True))
        if not matches:
            msg = f"{name}: no such file"
            raise InputError(msg)
        out.extend(matches)
    return out


def open_input(name: str) -> IO[bytes]:
    """Open an input for binary reading (gzip by magic number; ``-`` is stdin).

    Raises:
        InputError: When the input cannot be opened.
    """
    if name == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        try:
            raw = open(name, "rb")  # noqa: SIM115 - returned to the caller
        except OSError as exc:
            msg = f"{name}: {exc.strerror or exc}"
            raise InputError(msg) from exc
    buffered: io.BufferedReader = (
        raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    )
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        if name == "-":
            return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
        buffered.close()
        return gzip.open(name, "rb")  # type: ignore[return-value]
    return buffered


def input_size(name: str) -> int | None:
    """Return the size in bytes of a plain (uncompressed, regular) file, else ``None``."""
    if name == "-" or name.endswith(".gz"):
        return None
    try:
        return os.path.getsize(name)
    except OSError:
        return None


def first_significant(stream: IO[bytes]) -> bytes:
    """Return the first non-blank byte of a peekable stream (``b""`` if none is in sight)."""
    peek = getattr(stream, "peek", None)
    if peek is None:  # pragma: no cover - all our streams can peek
        return b""
    head: bytes = peek(_CHUNK)[:_CHUNK]
    return head.lstrip()[:1]


def iter_items(name: str, stream: IO[bytes]) -> Iterator[Item]:
    """Yield the records of one input: JSONL lines, or the elements of a JSON array.

    Blank lines are skipped (they are not records). A JSON array is detected by its first
    non-blank character.
    """
    if first_significant(stream) == b"[":
        yield from _iter_array(name, stream)
        return
    for n, line in enumerate(stream, start=1):
        if line.strip():
            # Without its line ending, so LF and CRLF files give the same reports.
            yield Item(name, n, line.rstrip(b"\r\n"))


def _iter_array(name: str, stream: IO[bytes]) -> Iterator[Item]:
    decoder = json.JSONDecoder()
    reader = io.TextIOWrapper(stream, encoding="utf-8", errors="strict")
    try:
        yield from _array_elements(name, reader, decoder)
    finally:
        reader.detach()  # the caller closes the underlying stream


def _array_elements(
    name: str, reader: io.TextIOWrapper, decoder: json.JSONDecoder
) -> Iterator[Item]:
    buf = ""
    pos = 0
    line = 1
    eof = False

    def fill() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        try:
            chunk = reader.read(_CHUNK)
        except UnicodeDecodeError:
            chunk = ""
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> str:
        nonlocal pos, line
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buf):
                return buf[pos]
            if not fill():
                return ""

    if skip_ws() != "[":  # pragma: no cover - guarded by iter_items
        return
    pos += 1
    expect_value = True
    first = True
    while True:
        ch = skip_ws()
        if ch == "]" and (first or not expect_value):
            pos += 1
            if skip_ws() != "":  # never drop what follows silently (JSONL starting with "[")
                yield Item(name, line, ArrayError(
                    "content after the end of the JSON array: a JSON-array input holds one "
                    "array, and each JSONL line must be one record object"))
            return
        if ch == "":
            yield Item(name, line, ArrayError("unexpected end of input inside a JSON array"))
            return
        if not expect_value:
            if ch != ",":
                yield Item(name, line, ArrayError("expected ',' or ']' between array elements"))
                return
            pos += 1
            expect_value = True
            continue
        start_line = line
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if len(buf) - pos < _MAX_ELEMENT and fill():
                    continue
                yield Item(name, start_line, ArrayError(f"not valid JSON: {exc.msg}"))
                return
            except RecursionError:
                yield Item(name, start_line, ArrayError("not valid JSON: nested too deeply"))
                return
            break
        line += buf.count("\n", pos, end)
        pos = end
        first = False
        expect_value = False
        yield Item(name, start_line, value)
