"""The input layer: every way record bytes come in, for every subcommand (spec §7, 1.1).

One path for all: names (files, globs, ``-`` for stdin) are expanded by
:func:`expand_inputs`, opened by :func:`open_input` (plain, gzip, bz2, xz; zstd with the extra
``zstd``), and cut into records by :func:`iter_items` -- JSONL, a JSON array or one JSON
document, chosen by :func:`input_format` from ``--input-format`` or the file name, never by
sniffing the content. Each :class:`Item` holds one record's raw text (parsed later by the one
parser, :func:`dryneedle.records.loads`) or a :class:`BadInput` to report. Memory stays
bounded: a record larger than ``max_record_bytes`` is skipped unread and reported.

A compressed stream that is truncated or corrupt, or a file that cannot be read, raises
:class:`InputError` (the CLI exits with code 2 after writing every report read before).

May import: the standard library, attrs, :mod:`._json` and :mod:`._documents` (and the optional
zstandard).
"""

from __future__ import annotations

import glob
import io
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final, Literal

import attrs

from dryneedle.records._documents import (
    BOM,
    DEFAULT_MAX_RECORD_BYTES,
    BadInput,
    json_records,
    jsonl_records,
)
from dryneedle.records._json import parse as loads

__all__ = [
    "BOM",
    "COMPRESSIONS",
    "DEFAULT_MAX_RECORD_BYTES",
    "FORMATS",
    "BadInput",
    "InputError",
    "Item",
    "expand_inputs",
    "input_format",
    "input_size",
    "iter_items",
    "loads",
    "open_input",
    "read_items",
]

FORMATS: Final = ("jsonl", "json")
"""Input formats: JSONL (one record per line) and JSON (an array of records, or one record)."""

COMPRESSIONS: Final = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
"""Compression suffixes (also recognised by their magic numbers)."""

Format = Literal["jsonl", "json"]


class InputError(OSError):
    """An input cannot be opened or read (the CLI exits with code 2)."""


@attrs.frozen(slots=True)
class Item:
    """One input record as read: its source, line number and raw text.

    Attributes:
        source: File name (``-`` for standard input).
        line: 1-based line where the record starts.
        data: The record's raw JSON text (a JSONL line without its ending, or an array
            element), or a :class:`BadInput` when it could not be read.
    """

    source: str
    line: int
    data: bytes | BadInput


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


def _strip_compression(name: str) -> tuple[str, str | None]:
    base, ext = os.path.splitext(name)
    kind = COMPRESSIONS.get(ext.lower())
    return (base, kind) if kind else (name, None)


def input_format(name: str, explicit: str | None = None) -> Format:
    """Return the format of an input: ``explicit``, else from its name (never its content).

    ``x.json`` and ``x.json.gz`` (any compression suffix) are JSON; every other name, and
    standard input, is JSONL.

    >>> from dryneedle.records import input_format
    >>> input_format("a.json.gz"), input_format("a.jsonl"), input_format("-", "json")
    ('json', 'jsonl', 'json')
    """
    if explicit is not None:
        if explicit not in FORMATS:
            msg = f"unknown input format {explicit!r}; choose from {', '.join(FORMATS)}"
            raise ValueError(msg)
        return explicit  # type: ignore[return-value]
    base, _kind = _strip_compression(name)
    return "json" if base.lower().endswith(".json") and name != "-" else "jsonl"


_BZ2_MAGIC: Final = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")


def _magic(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if _BZ2_MAGIC.match(head):
        return "bz2"
    return None


class _Decompressed(io.RawIOBase):
    """A decompressing reader whose every failure is an :class:`InputError` naming the input."""

    def __init__(self, name: str, kind: str, inner: Any, raw: IO[bytes]) -> None:
        self._name = name
        self._kind = kind
        self._inner = inner
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._inner.read(len(b))
        except EOFError:
            msg = (f"{self._name}: {self._kind} data is truncated (the compressed stream ends "
                   "early)")
            raise InputError(msg) from None
        except Exception as exc:  # OSError, zlib.error, lzma.LZMAError, zstandard.ZstdError...
            msg = f"{self._name}: {self._kind} data is corrupt ({exc})"
            raise InputError(msg) from None
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                if self._raw is not sys.stdin.buffer:
                    self._raw.close()
        super().close()


def _decompressor(name: str, kind: str, raw: IO[bytes]) -> Any:
    # The decompressors are imported only for a compressed input (start-up time).
    if kind == "gzip":
        import gzip  # noqa: PLC0415

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bz2":
        import bz2  # noqa: PLC0415

        return bz2.BZ2File(raw, mode="rb")
    if kind == "xz":
        import lzma  # noqa: PLC0415

        return lzma.LZMAFile(raw, mode="rb")
    try:
        import zstandard  # noqa: PLC0415 - optional extra ``zstd``
    except ImportError:
        msg = f"{name}: zstd input needs the 'zstd' extra: pip install 'dryneedle[zstd]'"
        raise InputError(msg) from None
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


def open_input(name: str) -> io.BufferedReader:
    """Open an input for binary reading, decompressed (``-`` is standard input).

    Compression is recognised by the name's suffix (``.gz``, ``.bz2``, ``.xz``, ``.zst``) or
    the content's magic number; zstd needs the optional ``zstandard`` package.

    Raises:
        InputError: When the input cannot be opened.
    """
    if name == "-":
        raw: Any = sys.stdin.buffer
    else:
        try:
            raw = open(name, "rb")  # noqa: SIM115 - returned to the caller
        except OSError as exc:
            msg = f"{name}: {exc.strerror or exc}"
            raise InputError(msg) from exc
    buffered: io.BufferedReader = (
        raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    )
    try:
        head = buffered.peek(16)[:16]
    except OSError as exc:
        buffered.close()
        msg = f"{name}: {exc.strerror or exc}"
        raise InputError(msg) from exc
    kind = _magic(head) or _strip_compression(name)[1]
    if kind is None:
        return buffered
    try:
        inner = _decompressor(name, kind, buffered)
    except InputError:
        buffered.close()
        raise
    return io.BufferedReader(_Decompressed(name, kind, inner, buffered), buffer_size=1 << 16)


def input_size(name: str) -> int | None:
    """Return the size in bytes of a plain (uncompressed, regular, non-empty) file, or None."""
    if name == "-" or _strip_compression(name)[1] is not None:
        return None
    try:
        st = os.stat(name)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) and st.st_size > 0 else None


def iter_items(
    name: str,
    stream: IO[bytes],
    fmt: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Item]:
    """Yield the records of one opened input, in order.

    Args:
        name: The input's name (its format comes from it unless ``fmt`` is given).
        stream: The opened input (see :func:`open_input`).
        fmt: ``jsonl`` or ``json`` (default: from the name; see :func:`input_format`).
        max_record_bytes: Larger records are skipped unread and reported.

    JSONL: one record per line; lines holding only space, tab, CR or LF are skipped; a UTF-8
    BOM at the start is removed. JSON: an array (one record per element) or one document.
    """
    if input_format(name, fmt) == "json":
        records = json_records(stream, max_record_bytes)
    else:
        records = jsonl_records(stream, max_record_bytes)
    for line, data in records:
        yield Item(name, line, data)


def read_items(
    names: Iterable[str],
    fmt: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Item]:
    """Open each input in turn and yield its records (see :func:`iter_items`).

    Raises:
        InputError: When an input cannot be opened or read (after the records before it).
    """
    for name in names:
        with open_input(name) as stream:
            try:
                yield from iter_items(name, stream, fmt, max_record_bytes)
            except InputError:
                raise
            except OSError as exc:
                msg = f"{name}: {exc.strerror or exc}"
                raise InputError(msg) from exc

