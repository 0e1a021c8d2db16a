"""Structuring of record format v1: the generated walkers and the record-level check.

For every model class this module generates (with :func:`exec`, the way attrs and cattrs
generate ``__init__`` and hooks) a function ``walk(data, path, out)`` that checks a decoded JSON
object against the class's fields, appends a :class:`~dryneedle.findings.Finding` to ``out`` for
*every* structural problem (with its exact path), and returns the model instance, or
:data:`BAD` when any error was found below it. The valid path raises no exception, builds no
path string and allocates nothing but the model objects. :func:`walk_record` checks a whole
record with them; :func:`structure_record` and :func:`unstructure_record` are the public
one-record conversions. The structural rules (``structure.*``) are registered here.

A second set, the *readable* walkers (:data:`READABLE_WALKERS`, :func:`walk_readable`),
appends the same findings and also returns the readable parts of an object with errors, in
the same single pass: the validator uses them, so a rejected record is walked once.

Field kinds come from :mod:`._fields` (derived from the attrs type annotations), so the
structure check, the cattrs converter and the JSON Schema cannot drift apart.

May import: :mod:`dryneedle.model`, :mod:`dryneedle.wire`, :mod:`dryneedle.catalog`,
:mod:`dryneedle.findings`, :mod:`._fields`, :mod:`._codegen` (the walkers' source),
:mod:`._duplicates`, :mod:`._fast` (the mirrors of the quick readable walkers) and
:mod:`._json`.

Numbers follow JSON Schema semantics (spec §6, 1.1): an integral float such as ``1.0`` is an
integer; an integer field holds a signed 64-bit integer and a number field a finite double,
anything beyond is ``structure.range`` at its path; a string holding a lone surrogate is
``structure.type`` at its path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any, Final

import attrs

from dryneedle import model
from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.findings import Finding, FindingsError, Rule, Severity, rule
from dryneedle.records import _fast
from dryneedle.records._codegen import walker_source
from dryneedle.records._duplicates import (
    DUPS,
    loads_with_duplicates,
    may_have_duplicates,
    pairs_hook,
)
from dryneedle.records._fields import FORMAT, field_specs
from dryneedle.records._json import INT_MAX, INT_MIN, MAX_DOUBLE, escape_surrogates, has_surrogate

__all__ = [
    "BAD",
    "DUPS",
    "READABLE_WALKERS",
    "R_DUPLICATE",
    "R_JSON",
    "R_TOO_LARGE",
    "UNREADABLE",
    "WALKERS",
    "RecordError",
    "loads_with_duplicates",
    "may_have_duplicates",
    "pairs_hook",
    "structure_record",
    "unstructure_record",
    "walk_readable",
    "walk_record",
]


class _Bad:
    """Marker returned by a walker when the object had errors."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD"


BAD: Final = _Bad()
_MISSING: Final = object()

# --- structural rules ---------------------------------------------------------------------------

_FORMAT_SRC: tuple[str, ...] = ()

R_JSON: Final = rule("structure.json")
R_TOO_LARGE: Final = rule("structure.too_large")
R_NOT_OBJECT: Final = rule("structure.not_object")
R_FORMAT: Final = rule("structure.format")
R_MISSING: Final = rule("structure.missing")
R_TYPE: Final = rule("structure.type")
R_ENUM: Final = rule("structure.enum")
R_DATE: Final = rule("structure.date")
R_RANGE: Final = rule("structure.range")
R_UNKNOWN_FIELD: Final = rule("structure.unknown_field")
R_DUPLICATE: Final = rule("structure.duplicate_key")


class _Unreadable:
    """Marker for a field given twice with different values: unreadable there."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Final = _Unreadable()


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


_FINDINGS: dict[tuple[str, str, str], Finding] = {}
_FINDINGS_MAX: Final = 1 << 14
_MEMO_PATH_MAX: Final = 120


def _f(rule: Rule, path: str, message: str) -> Finding:
    """The finding of ``rule`` at ``path``, shared by every record that has it (bounded memo).

    Findings are immutable, and a shared one is serialised once by the report writer (which
    caches each finding's bytes by identity); the memo is emptied when it is full, and a long
    path (an unknown field's name is the input's) is never kept.
    """
    if len(path) > _MEMO_PATH_MAX:
        return Finding(code=rule.id, severity=rule.severity, path=path, message=message)
    key = (rule.id, path, message)
    found = _FINDINGS.get(key)
    if found is None:
        if len(_FINDINGS) >= _FINDINGS_MAX:
            _FINDINGS.clear()
        found = _FINDINGS[key] = Finding(code=rule.id, severity=rule.severity, path=path,
                                         message=message)
    return found


def _missing(path: str) -> Finding:
    return _f(R_MISSING, path, "required field is missing")


def _type(path: str, value: Any, expected: str) -> Finding:
    if value is _MISSING:
        return _missing(path)
    if value is UNREADABLE:
        return _f(R_DUPLICATE, path, "key given more than once with different values: unreadable")
    # Never echo the value itself: a misplaced string could be a patient identifier.
    return _f(R_TYPE, path, f"expected {expected}, got {_json_kind(value)}")


def _not_text(path: str) -> Finding:
    return _f(R_TYPE, path, "expected Unicode text, got a string holding a lone surrogate")


def _enum(path: str, allowed: str) -> Finding:
    return _f(R_ENUM, path, f"value is not {allowed}")


def _range(path: str, message: str) -> Finding:
    return _f(R_RANGE, path, message)


def _date_err(path: str) -> Finding:
    return _f(R_DATE, path, "expected an ISO date YYYY-MM-DD")


def _unknown(
    data: Mapping[str, Any], known: frozenset[str], prefix: str, out: list[Finding]
) -> None:
    for key in data:
        if key not in known:
            name = str(key)
            if has_surrogate(name):  # the name cannot even be written back: an error
                name = escape_surrogates(name)
                out.append(_f(R_TYPE, f"{prefix}.{name}" if prefix else name,
                              "field name holds a lone surrogate (not Unicode text)"))
                continue
            path = f"{prefix}.{name}" if prefix else name
            out.append(_f(R_UNKNOWN_FIELD, path, "unknown field (ignored)"))


_DATE_CACHE: dict[str, date] = {}
_DATE_CACHE_MAX = 65536


def _parse_date(text: str) -> date | None:
    """Parse a strict ``YYYY-MM-DD`` date, or return ``None`` (cached, bounded)."""
    if (
        len(text) != 10
        or text[4] != "-"
        or text[7] != "-"
        or not (text[:4] + text[5:7] + text[8:]).isdigit()
        or not text.isascii()
    ):
        return None  # strictly YYYY-MM-DD (fromisoformat alone also takes week dates)
    try:
        value = date.fromisoformat(text)
    except ValueError:
        return None
    if len(_DATE_CACHE) >= _DATE_CACHE_MAX:
        _DATE_CACHE.clear()
    _DATE_CACHE[text] = value
    return value


# --- duplicate keys (SPEC section 6, 1.1) ----------------------------------------------------

# Screening answers given twice take their most cautious value: this one if any is it, the
# value itself if all agree, else unknown. (Booleans: ``true`` is the cautious answer.)
_CAUTIOUS: Final[Mapping[tuple[str, str], Any]] = {
    **{("History", a.name): True for a in attrs.fields(model.History)
       if a.name != "needle_phobia"},
    ("History", "needle_phobia"): model.NeedlePhobia.SEVERE.value,
    ("Patient", "pregnancy"): model.Pregnancy.PREGNANT.value,
}


def _same(values: list[Any]) -> bool:
    first = values[0]
    return all(v.__class__ is first.__class__ and v == first for v in values[1:])


def _dedupe(d: dict[Any, Any], cls: type, p: str, out: list[Finding]) -> dict[str, Any]:
    """Resolve the repeated keys of one object (see :func:`pairs_hook`); report each one."""
    name = cls.__name__
    clean = {k: v for k, v in d.items() if k is not DUPS}
    for key, values in d[DUPS].items():
        path = f"{p}.{key}" if p else key
        cautious = _CAUTIOUS.get((name, key), _MISSING)
        if cautious is not _MISSING:
            if any(v is cautious or (v == cautious and v.__class__ is cautious.__class__)
                   for v in values):
                value = cautious
            else:
                value = values[0] if _same(values) else None
            out.append(_f(R_DUPLICATE, path,
                          "key given more than once: the most cautious value is used"))
        elif _same(values):
            value = values[0]
            out.append(_f(R_DUPLICATE, path, "key given more than once (same value)"))
        else:
            value = UNREADABLE  # reported where the field is read (as this rule)
        clean[key] = value
    return clean


class _Failed:
    """What a readable walker returns for an object with errors: its readable parts."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


Walker = Callable[[Any, str, list[Finding]], Any]

_NESTED = (
    model.Needle,
    model.Insertion,
    model.AdverseEvent,
    model.PreSteps,
    model.PostSteps,
    model.Practitioner,
    model.SiteFinding,
    model.History,
    model.Patient,
    model.Session,
)


def _namespace() -> dict[str, Any]:
    """The names the generated source uses (the placeholders of unreadable objects too)."""
    ns: dict[str, Any] = {
        "BAD": BAD,
        "_MISSING": _MISSING,
        "_type": _type,
        "_enum": _enum,
        "_range": _range,
        "_date_err": _date_err,
        "_unknown": _unknown,
        "_parse_date": _parse_date,
        "_DATE_CACHE": _DATE_CACHE,
        "_MUSCLES": MUSCLES,
        "_new": object.__new__,
        "_CONDITIONS": CONDITIONS,
        "_INT_MIN": INT_MIN,
        "_INT_MAX": INT_MAX,
        "_MAX_DOUBLE": MAX_DOUBLE,
        "_has_surrogate": has_surrogate,
        "_not_text": _not_text,
        "_DUPS": DUPS,
        "_dedupe": _dedupe,
    }
    for cls in _NESTED:  # the placeholder of an unreadable object: every field unknown
        placeholder = object.__new__(cls)
        for spec in field_specs(cls):  # nested objects come earlier in _NESTED
            value = ns[f"_P_{spec.target.__name__}"] if spec.kind == "object" else None
            object.__setattr__(placeholder, spec.name, value)
        ns[f"_P_{cls.__name__}"] = placeholder
        ns[f"_F_{cls.__name__}"] = _Failed(placeholder)  # what a non-object reads as
    ns["_Failed"] = _Failed
    return ns


_STRICT: dict[type, Walker] = {}
_READABLE: dict[type, Walker] = {}
_QUICK: dict[type, Walker] = {}
_NS: dict[str, Any] = {}
_SOURCE: dict[str, str] = {}  # the source of each compiled set, by its prefix


def _compile(prefix: str) -> None:
    """Generate and compile one set of walkers (``_w_``, ``_r_`` or ``_q_``), once, on use.

    The accelerated path (:mod:`._fast`) reads clean lines without them, so a run whose lines
    are all clean never pays for a compilation, and a run with rejected rows compiles only the
    set it uses (the validator: the quick readable walkers when msgspec is installed).
    """
    if prefix in _SOURCE:
        return
    if not _NS:
        _NS.update(_namespace())
    ns = _NS
    if prefix == "_q_":
        converter = _fast.part_converter(_NESTED)
        if converter is None:  # without msgspec: the readable walkers stand in
            _compile("_r_")
            _QUICK.update(_READABLE)
            _SOURCE[prefix] = ""
            return
        ns["_cv"], ns["_CVE"], mirrors = converter
        ns.update({f"_T_{cls.__name__}": mirror for cls, mirror in mirrors.items()})
    source = "\n".join(walker_source(cls, ns, readable=prefix != "_w_", quick=prefix == "_q_")
                       for cls in _NESTED)
    code = compile(source, "<dryneedle-generated-walkers>", "exec")
    exec(code, ns)  # noqa: S102 - code generated from our own model definitions
    table = {"_w_": _STRICT, "_r_": _READABLE, "_q_": _QUICK}[prefix]
    table.update({cls: ns[f"{prefix}{cls.__name__}"] for cls in _NESTED})
    _SOURCE[prefix] = source


class _Walkers(Mapping[type, Walker]):
    """A read-only mapping of model class to walker, generated on first access."""

    __slots__ = ("_prefix", "_table")

    def __init__(self, table: dict[type, Walker], prefix: str) -> None:
        self._table = table
        self._prefix = prefix

    def __getitem__(self, cls: type) -> Walker:
        if not self._table:
            _compile(self._prefix)
        return self._table[cls]

    def __iter__(self) -> Iterator[type]:
        if not self._table:
            _compile(self._prefix)
        return iter(self._table)

    def __len__(self) -> int:
        if not self._table:
            _compile(self._prefix)
        return len(self._table)


WALKERS: Final[Mapping[type, Walker]] = _Walkers(_STRICT, "_w_")
"""The generated walker of each nested model class (compiled on first access)."""


def __getattr__(name: str) -> Any:
    """``GENERATED_SOURCE``: the walkers' generated source, for review (built on demand)."""
    if name == "GENERATED_SOURCE":
        for prefix in ("_w_", "_r_", "_q_"):
            _compile(prefix)
        return "\n".join(_SOURCE[p] for p in ("_w_", "_r_", "_q_") if _SOURCE[p])
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


READABLE_WALKERS: Final[Mapping[type, Walker]] = _Walkers(_READABLE, "_r_")
"""The readable walker of each nested model class: every finding and every readable part.

One pass for records that may have structural errors (SPEC section 6, 1.1: partial records
keep their clinical findings). It appends exactly the findings of the strict walker
(:data:`WALKERS`), in the same order, and returns the same instance when there are none.
Otherwise it returns a :class:`_Failed` holding what is readable: an unreadable value is
unknown (``None``), an unreadable object a placeholder whose fields are all unknown, an
unreadable item of an array such a placeholder at its position (so indices and the needle
count hold), and an unreadable array unknown (``None``).
"""


# --- one record ----------------------------------------------------------------------------------


class RecordError(FindingsError):
    """A record could not be structured; ``findings`` holds every problem found."""

    what = "record"


_ROOT_KEYS: Final = frozenset(s.name for s in field_specs(model.SessionRecord))


def _not_object(data: Any) -> Finding:
    return _f(R_NOT_OBJECT, "", f"expected a JSON object, got {_json_kind(data)}")


def _root_fields(data: dict[Any, Any], out: list[Finding]) -> tuple[str | None, bool]:
    """Check the format tag and the record id of a record; return (record_id, format_ok)."""
    fmt = data.get("format", _MISSING)
    format_ok = fmt == FORMAT
    if not format_ok:
        message = (
            "required field is missing" if fmt is _MISSING
            else f'expected "{FORMAT}"'
        )
        out.append(_f(R_FORMAT, "format", message))
    rid = data.get("record_id", _MISSING)
    record_id: str | None = rid if rid.__class__ is str and rid else None
    if record_id is None:
        out.append(_type("record_id", rid, "a non-empty string"))
    elif has_surrogate(record_id):
        record_id = None
        out.append(_not_text("record_id"))
    return record_id, format_ok


def walk_part(cls: type, data: Any, path: str, out: list[Finding]) -> Any:
    """Check one decoded part of a record (e.g. a bare session or patient) as the walkers do.

    Args:
        cls: The model class of the part (:class:`~dryneedle.model.Session`,
            :class:`~dryneedle.model.Patient`, ...).
        data: The decoded JSON value.
        path: Its path in findings (``"session"``).
        out: Every structural finding is appended here.

    Returns:
        The model object, or ``None`` when the part cannot be read at all.
    """
    walked = WALKERS[cls](data, path, out)
    return None if walked is BAD else walked


def walk_record(
    data: Any, out: list[Finding]
) -> tuple[str | None, model.Patient | None, model.Session | None, bool]:
    """Check a decoded record; return (record_id, patient, session, format_ok).

    Every structural finding is appended to ``out``. ``patient`` / ``session`` are ``None``
    when that part had errors (so the other part can still be checked).
    """
    if data.__class__ is not dict:
        if isinstance(data, Mapping):
            data = dict(data)
        else:
            out.append(_not_object(data))
            return None, None, None, False
    if DUPS in data:
        data = _dedupe(data, model.SessionRecord, "", out)
    record_id, format_ok = _root_fields(data, out)
    p = data.get("patient", _MISSING)
    if not _STRICT:
        _compile("_w_")
    patient = _STRICT[model.Patient](p, "patient", out)
    s = data.get("session", _MISSING)
    session = _STRICT[model.Session](s, "session", out)
    if not data.keys() <= _ROOT_KEYS:
        _unknown(data, _ROOT_KEYS, "", out)
    return (
        record_id,
        None if patient is BAD else patient,
        None if session is BAD else session,
        format_ok,
    )


def walk_readable(
    data: Any, out: list[Finding], quick: bool = False
) -> tuple[str | None, model.Patient | None, model.Session | None, bool]:
    """Check a decoded record in one pass; return (record_id, patient, session, whole).

    The findings appended to ``out`` are :func:`walk_record`'s, in the same order. ``patient``
    and ``session`` are the readable parts (see :data:`READABLE_WALKERS`), ``None`` only when
    that part is not a JSON object; ``whole`` says that the format tag, the record id and
    both parts were read without an error (the record can be built, unless ``out`` holds an
    error of another kind, such as a key repeated at the top level).

    With ``quick`` (and msgspec installed), each object is first converted into its msgspec
    mirror, in C, and walked field by field only when that fails: the same findings, and each
    clean object (a part, an insertion, ...) is its mirror instead of a model object, as on
    the accelerated path. Only for values orjson decoded from bytes (:func:`._json.parse`
    returning ``exact``): no lone surrogate, no infinite number, no integer of 19 digits or
    more, where a conversion and the walker agree; the parts are then not model objects, so
    build no record of them.
    """
    if data.__class__ is not dict:
        if isinstance(data, Mapping):
            data = dict(data)
        else:
            out.append(_not_object(data))
            return None, None, None, False
    if DUPS in data:
        data = _dedupe(data, model.SessionRecord, "", out)
    record_id, format_ok = _root_fields(data, out)
    whole = format_ok and record_id is not None
    p = data.get("patient", _MISSING)
    walkers = _QUICK if quick else _READABLE
    if not walkers:
        _compile("_q_" if quick else "_r_")
    patient = walkers[model.Patient](p, "patient", out)
    if patient.__class__ is _Failed:
        whole = False
        patient = patient.value if p.__class__ is dict else None
    s = data.get("session", _MISSING)
    session = walkers[model.Session](s, "session", out)
    if session.__class__ is _Failed:
        whole = False
        session = session.value if s.__class__ is dict else None
    if not data.keys() <= _ROOT_KEYS:
        _unknown(data, _ROOT_KEYS, "", out)
    return record_id, patient, session, whole


def structure_record(data: Mapping[str, Any]) -> model.SessionRecord:
    """Structure one decoded record into the model.

    Args:
        data: A decoded JSON object of format v1.

    Returns:
        The :class:`~dryneedle.model.SessionRecord`.

    Raises:
        RecordError: With every structural error (warnings such as unknown fields do not
            raise).

    >>> from dryneedle.records import structure_record
    >>> structure_record({"format": "dryneedle.session/1"})
    Traceback (most recent call last):
    ...
    dryneedle.records.RecordError: 3 problem(s) in record:
      record_id: required field is missing [structure.missing]
      patient: required field is missing [structure.missing]
      session: required field is missing [structure.missing]
    """
    out: list[Finding] = []
    record_id, patient, session, format_ok = walk_record(data, out)
    errors = [f for f in out if f.severity is Severity.ERROR]
    if errors or record_id is None or patient is None or session is None or not format_ok:
        raise RecordError(errors)
    return model.SessionRecord(record_id=record_id, patient=patient, session=session)


def unstructure_record(record: model.SessionRecord) -> dict[str, Any]:
    """Return a record as JSON-ready data (the inverse of :func:`structure_record`)."""
    from dryneedle.wire import converter  # noqa: PLC0415 - cattrs only when asked (start-up)

    data: dict[str, Any] = converter.unstructure(record)
    return data
