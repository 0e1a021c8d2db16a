r"""The split of an input into valid and invalid records (a dead-letter queue).

:class:`InputSplitter` is told, in input order, each report's input, line and validity, and
copies the record it came from to the valid or the invalid output. It reads the inputs itself,
a second time, in step with the reports, so it works whatever process validated the records
(``--jobs N``) and keeps nothing but the current line in memory:

* a JSONL record is copied byte for byte, with its line terminator as in the input (none on
  a last line without one);
* a JSON-array element is written as one compact JSONL line: its own text with the blanks
  between tokens removed (numbers, escapes and key order exactly as written), then ``\n``.

A report with no record text behind it (a JSON array that cannot be decoded from some point
on) is counted in :attr:`InputSplitter.unwritten` instead.

May import: the standard library.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Generator
from typing import IO, BinaryIO, Final

__all__ = ["InputSplitter", "SplitError", "compact_json"]

_CHUNK: Final = 1 << 16
_BLANKS: Final = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)


class SplitError(RuntimeError):
    """The inputs no longer match the reports (an input changed while it was read)."""


def compact_json(text: str) -> str:
    r"""Remove the blanks between the tokens of a JSON text, leaving strings untouched.

    >>> from dryneedle.outputs import compact_json
    >>> compact_json('{ "a" : [1.0, 2e3],\n  "b c": "x  y" }')
    '{"a":[1.0,2e3],"b c":"x  y"}'
    """
    return _BLANKS.sub(lambda m: m.group(1) or "", text)


def _array_elements(stream: IO[bytes]) -> Generator[tuple[int, str | None], None, None]:
    """``(start line, compact text)`` of each element; ``(line, None)`` where decoding stops."""
    reader = io.TextIOWrapper(stream, encoding="utf-8", errors="strict")
    decoder = json.JSONDecoder()
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

    try:
        if skip_ws() != "[":
            yield line, None
            return
        pos += 1
        expect_value = True
        first = True
        while True:
            ch = skip_ws()
            if ch == "]" and (first or not expect_value):
                pos += 1
                if skip_ws() != "":
                    yield line, None
                return
            if ch == "" or (not expect_value and ch != ","):
                yield line, None
                return
            if not expect_value:
                pos += 1
                expect_value = True
                continue
            start_line = line
            while True:
                try:
                    _value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError:
                    if fill():
                        continue
                    yield start_line, None
                    return
                except RecursionError:
                    yield start_line, None
                    return
                break
            text = buf[pos:end]
            line += text.count("\n")
            pos = end
            first = False
            expect_value = False
            yield start_line, compact_json(text)
    finally:
        reader.detach()


class _Reader:
    """The records of one input, read in step with its reports."""

    def __init__(self, source: str, stream: IO[bytes], *, array: bool) -> None:
        self.source = source
        self.array = array
        self._stream = stream
        self._line = 0
        self._elements: Generator[tuple[int, str | None], None, None] | None = (
            _array_elements(stream) if array else None)
        self._pending_error = False
        self.finished = False

    def take(self, line: int) -> bytes | None:
        """The raw record reported at ``line`` (``None``: no record text behind the report)."""
        if self._elements is None:
            for raw in self._stream:
                self._line += 1
                if self._line == line:
                    return raw
                if raw.strip():
                    break
            msg = f"{self.source}: no record at line {line} (did the input change?)"
            raise SplitError(msg)
        if self._pending_error:
            self._pending_error = False
            self.finished = True
            return None
        for start, text in self._elements:
            if text is None:
                self.finished = True
                return None
            if start != line:
                break
            return text.encode("utf-8", "surrogatepass") + b"\n"
        msg = f"{self.source}: no array element at line {line} (did the input change?)"
        raise SplitError(msg)

    def restarts(self, line: int) -> bool:
        """Whether a report at ``line`` belongs to a new pass over the same input."""
        if self._elements is None:
            return line <= self._line
        return self.finished

    def close(self) -> None:
        if self._elements is not None:
            self._elements.close()  # detaches its text reader before the stream closes
        self._stream.close()


class InputSplitter:
    r"""Copy each record to the valid or the invalid output, in input order.

    Args:
        open_input: Opens an input by name for binary reading (decompressing as the
            validator does).
        valid_out: Where valid records go (``None``: dropped).
        invalid_out: Where invalid records go (``None``: dropped).

    >>> import io, os, tempfile
    >>> from dryneedle.outputs import InputSplitter
    >>> path = os.path.join(tempfile.mkdtemp(), "in.jsonl")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b'{"a": 1}\r\n\n{oops\n{"b": 2}')
    >>> good, bad = io.BytesIO(), io.BytesIO()
    >>> split = InputSplitter(lambda name: open(name, "rb"), good, bad)
    >>> for line, valid in ((1, True), (3, False), (4, True)):
    ...     split.add(path, line, valid, array=False)
    >>> split.close()
    >>> good.getvalue(), bad.getvalue()
    (b'{"a": 1}\r\n{"b": 2}', b'{oops\n')
    """

    def __init__(
        self,
        open_input: Callable[[str], IO[bytes]],
        valid_out: BinaryIO | None,
        invalid_out: BinaryIO | None,
    ) -> None:
        self._open = open_input
        self._valid = valid_out
        self._invalid = invalid_out
        self._reader: _Reader | None = None
        self.unwritten = 0
        """Reports without record text to copy (an undecodable JSON array's rest)."""
        self.valid = 0
        """Records written to the valid output."""
        self.invalid = 0
        """Records written to the invalid output."""

    def add(self, source: str, line: int, valid: bool, *, array: bool) -> None:
        """Copy the record of one report.

        Args:
            source: The input name of the report.
            line: Its ``line``.
            valid: Its ``valid``.
            array: Whether the input is a JSON array.

        Raises:
            SplitError: When the input does not hold a record at that line.
        """
        r = self._reader
        if r is None or r.source != source or r.array != array or r.restarts(line):
            if r is not None:
                r.close()
            r = self._reader = _Reader(source, self._open(source), array=array)
        raw = r.take(line)
        if raw is None:
            self.unwritten += 1
            return
        if valid:
            self.valid += 1
            if self._valid is not None:
                self._valid.write(raw)
        else:
            self.invalid += 1
            if self._invalid is not None:
                self._invalid.write(raw)

    def close(self) -> None:
        """Close the input being read (the outputs stay open)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
