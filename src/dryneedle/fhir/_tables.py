"""Read and check the terminology data files in ``dryneedle/fhir/data/``.

What it is for: the FHIR mapping's code tables (LOINC pregnancy status, the ATC antithrombotic
group, CPT dry needling codes, the clinic-policy ICD-10-CM flag codes and allergy words) are
data, not Python literals, in the manner of python-stdnum's ``iban.dat``: every file says where
its values come from. A file is one JSON object::

    {"header": {"description": "...", "sources": ["loinc"], "version": "1",
                "date": "2026-11-27", "system": "http://loinc.org"},
     "entries": [{"code": "82810-3", "display": "...", "sources": ["loinc"], ...}]}

``header.sources`` lists every source id the file cites (ids of :data:`dryneedle.sources.SOURCES`,
i.e. ``SOURCES.md``); ``version`` is the table's own revision (raise it when an entry changes);
``date`` is the day its values were last taken from the sources; ``system`` (optional) is the
code system URI of every entry. Each entry carries its code (``term`` in a word list), the code
system's ``display`` where one is recorded (optional), its ``sources`` (a non-empty subset of the
header's) and the table's own fields (strings). :func:`read_table` checks all of that and
raises a :class:`ValueError` naming the file and the entry; :func:`load_table` reads a packaged
file once (cached). What the entries mean is decided by :mod:`dryneedle.fhir._terminology`.

May import: the standard library, ``attrs`` and :mod:`dryneedle.sources` (reference data).
Nothing else of dryneedle.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Collection, Mapping
from datetime import date
from importlib import resources
from typing import Any

import attrs

from dryneedle.sources import SOURCES

__all__ = ["DATA_PACKAGE", "Entry", "Header", "Table", "load_table", "read_table"]

DATA_PACKAGE = "dryneedle.fhir"
"""The package whose ``data/`` folder holds the terminology files."""

_HEADER_KEYS = frozenset(("description", "sources", "version", "date", "system"))
_REQUIRED_HEADER_KEYS = frozenset(("description", "sources", "version", "date"))


@attrs.frozen(kw_only=True)
class Header:
    """Where a terminology file's values come from.

    Attributes:
        description: What the table is and what it is used for.
        sources: Every source id the file cites.
        version: The table's revision.
        date: The day its values were last taken from the sources.
        system: The code system URI of every entry, or ``None`` (a word list).
    """

    description: str
    sources: tuple[str, ...]
    version: str
    date: date
    system: str | None = None


@attrs.frozen(kw_only=True)
class Entry:
    """One row of a terminology file.

    Attributes:
        code: The code (in a word list, the word).
        display: The code system's display name, when the file records one.
        sources: The source ids behind this entry.
        fields: The table's own fields (for example ``{"flag": "diabetes"}``).
    """

    code: str
    display: str | None = None
    sources: tuple[str, ...]
    fields: Mapping[str, str] = attrs.field(factory=lambda: types.MappingProxyType({}))


@attrs.frozen(kw_only=True)
class Table:
    """A checked terminology file.

    Attributes:
        name: The file name (``pregnancy-status.json``).
        header: Its header.
        entries: Its entries, in file order.
    """

    name: str
    header: Header
    entries: tuple[Entry, ...]


def _fail(name: str, where: str, problem: str) -> ValueError:
    return ValueError(f"terminology file {DATA_PACKAGE}/data/{name}: {where}: {problem}")


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise _fail(name, where, f"expected a non-empty string without edge spaces, got {value!r}")
    return value


def _source_ids(value: Any, name: str, where: str, allowed: Collection[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(name, where, "expected a non-empty list of source ids")
    ids = tuple(_text(v, name, where) for v in value)
    for sid in ids:
        if sid not in SOURCES:
            raise _fail(name, where, f"unknown source id {sid!r} (not in dryneedle.sources)")
        if sid not in allowed:
            raise _fail(name, where, f"source id {sid!r} is not listed in the header")
    if len(set(ids)) != len(ids):
        raise _fail(name, where, f"duplicate source ids {list(ids)}")
    return ids


def _header(value: Any, name: str) -> Header:
    if not isinstance(value, Mapping):
        raise _fail(name, "header", "expected an object")
    missing = sorted(_REQUIRED_HEADER_KEYS - set(value))
    unknown = sorted(set(value) - _HEADER_KEYS)
    if missing or unknown:
        raise _fail(name, "header", f"missing keys {missing}, unknown keys {unknown}")
    when = _text(value["date"], name, "header.date")
    try:
        day = date.fromisoformat(when)
    except ValueError:
        raise _fail(name, "header.date", f"not an ISO date: {when!r}") from None
    system = value.get("system")
    return Header(
        description=_text(value["description"], name, "header.description"),
        sources=_source_ids(value["sources"], name, "header.sources", SOURCES),
        version=_text(value["version"], name, "header.version"),
        date=day,
        system=None if system is None else _text(system, name, "header.system"),
    )


def read_table(
    text: str,
    *,
    name: str,
    key: str = "code",
    fields: Collection[str] = (),
    optional: Collection[str] = (),
) -> Table:
    """Parse and check one terminology file.

    Args:
        text: The file's JSON text.
        name: The file name, for error messages.
        key: The entry key holding the code (``term`` for a word list).
        fields: The table's own entry fields; each entry must have every one of them (as
            strings) and no other key besides ``key``, ``display``, ``sources`` and
            ``optional``.
        optional: The table's own fields some entries have (as strings).

    Returns:
        The checked :class:`Table`.

    Raises:
        ValueError: When the file is not valid JSON or breaks a rule above; the message names
            the file and the entry (its index and code).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(name, "JSON", str(exc)) from None
    if not isinstance(data, Mapping) or set(data) != {"header", "entries"}:
        raise _fail(name, "top level", 'expected an object with exactly "header" and "entries"')
    header = _header(data["header"], name)
    raw_entries = data["entries"]
    if not isinstance(raw_entries, list) or not raw_entries:
        raise _fail(name, "entries", "expected a non-empty list")
    allowed = {key, "display", "sources", *fields, *optional}
    entries: list[Entry] = []
    seen: set[tuple[str, ...]] = set()
    for i, raw in enumerate(raw_entries):
        where = f"entries[{i}]"
        if not isinstance(raw, Mapping):
            raise _fail(name, where, "expected an object")
        where = f"entries[{i}] ({raw.get(key)!r})"
        missing = sorted({key, "sources", *fields} - set(raw))
        unknown = sorted(set(raw) - allowed)
        if missing or unknown:
            raise _fail(name, where, f"missing keys {missing}, unknown keys {unknown}")
        entry = Entry(
            code=_text(raw[key], name, f"{where}.{key}"),
            display=None if raw.get("display") is None
            else _text(raw["display"], name, f"{where}.display"),
            sources=_source_ids(raw["sources"], name, f"{where}.sources", header.sources),
            fields=types.MappingProxyType(
                {f: _text(raw[f], name, f"{where}.{f}") for f in (*fields, *optional) if f in raw}
            ),
        )
        identity = (entry.code, *(entry.fields.get(f, "") for f in (*fields, *optional)))
        if identity in seen:
            raise _fail(name, where, "duplicate entry")
        seen.add(identity)
        entries.append(entry)
    return Table(name=name, header=header, entries=tuple(entries))


@functools.cache
def load_table(
    name: str,
    *,
    key: str = "code",
    fields: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> Table:
    """Read and check a packaged terminology file once (see :func:`read_table`).

    Args:
        name: The file name in ``dryneedle/fhir/data/``.
        key: The entry key holding the code.
        fields: The table's own entry fields.
        optional: The table's own fields some entries have.

    Returns:
        The checked :class:`Table` (the same object on every call).

    Raises:
        ValueError: When the file breaks a rule of :func:`read_table`.
    """
    text = (resources.files(DATA_PACKAGE) / "data" / name).read_text(encoding="utf-8")
    return read_table(text, name=name, key=key, fields=fields, optional=optional)
