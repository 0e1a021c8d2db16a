"""Record format v1: structuring, unstructuring, JSON Schema and streaming validation.

One **session record** (format ``dryneedle.session/1``) is one JSON object holding a patient and
one session; JSONL files hold one record per line. This module turns records into the model
(:mod:`dryneedle.model`) and back, and validates streams of them:

* :func:`validate_records` takes any iterable of mappings or JSON lines and yields exactly one
  :class:`RecordReport` per input, in order, with *every* structural, screening and protocol
  finding. It never stops early and never raises on bad data.
* :func:`structure_record` returns the model of one valid record, or raises
  :class:`RecordError` carrying all findings; :func:`unstructure_record` is its inverse.
* :data:`converter` is the library's one cattrs converter (ISO dates, enums by value).
* :func:`json_schema` is the JSON Schema of the format, generated from the models.

>>> from dryneedle.records import validate_records
>>> bad = {"format": "dryneedle.session/1", "record_id": "r-1",
...        "patient": {"patient_id": "p-1", "sex": "femme"}, "session": 7}
>>> report = next(validate_records([bad]))
>>> report.valid
False
>>> [(f.code, f.path) for f in report.findings if f.severity == "error"]
[('structure.enum', 'patient.sex'), ('structure.type', 'session')]
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, Final, NamedTuple

import cattrs

from dryneedle import _fast, _structure, model
from dryneedle._structure import BAD, R_FORMAT, R_JSON, R_NOT_OBJECT, WALKERS, field_specs
from dryneedle._version import __version__
from dryneedle.findings import Decision, Finding, FindingsError, Severity
from dryneedle.policy import DEFAULT_POLICY, Policy

_ERROR: Final = Severity.ERROR

__all__ = [
    "CHECKS",
    "FAST_PATH",
    "FORMAT",
    "RecordError",
    "RecordReport",
    "Validator",
    "converter",
    "json_schema",
    "loads",
    "structure_record",
    "unstructure_record",
    "validate_lines",
    "validate_records",
]

FORMAT: Final = _structure.FORMAT
"""The value of the ``format`` field of every record of format v1."""

CHECKS: Final = ("structure", "screening", "protocol", "series")
"""The checks :func:`validate_records` can run, in pipeline order."""

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


# --- the cattrs converter --------------------------------------------------------------------


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    # Enums by value, as plain ``str``: StrEnum members are ``str`` subclasses, which cattrs
    # would pass through as-is, so every model enum is registered by class.
    for name in dir(model):
        obj = getattr(model, name)
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            conv.register_unstructure_hook(obj, _enum_value)
    conv.register_unstructure_hook(date, date.isoformat)
    conv.register_structure_hook(date, lambda v, _: date.fromisoformat(v))
    return conv


converter: Final = _make_converter()
"""The library's cattrs converter: dates as ISO strings, enums by value, tuples as lists.

>>> from datetime import date
>>> from dryneedle.records import converter
>>> from dryneedle.model import SiteFinding
>>> converter.unstructure(SiteFinding(region="neck", side="left", kind="scar",
...                                   date=date(2026, 1, 2)))
{'region': 'neck', 'side': 'left', 'kind': 'scar', 'date': '2026-01-02'}
"""


# --- reports -----------------------------------------------------------------------------------


class RecordReport(NamedTuple):
    """The result of validating one input record (an immutable named tuple).

    Attributes:
        index: 0-based position of the input in the stream.
        line: 1-based line number in the source file, when known.
        record_id: The record's ``record_id`` when readable.
        valid: ``True`` when no finding has severity ``error``.
        decision: The screening decision, when the patient part was readable.
        findings: Every finding: structural, screening, protocol and series.
        policy: Fingerprint of the policy used.
        version: Library version.
        parsed: The record as parsed, when the whole record was readable: a model object, or
            its internal mirror on the accelerated path (use :attr:`record`).
    """

    index: int  # type: ignore[assignment]  # the contract's name; shadows tuple.index
    line: int | None
    record_id: str | None
    valid: bool
    decision: Decision | None
    findings: tuple[Finding, ...]
    policy: str = DEFAULT_POLICY.fingerprint
    version: str = __version__
    parsed: Any = None

    @property
    def record(self) -> model.SessionRecord | None:
        """The structured record, when the whole record was readable (else ``None``)."""
        rec = self.parsed
        if rec is None or rec.__class__ is model.SessionRecord:
            return rec
        return _fast.to_model(rec)

    def as_dict(self) -> dict[str, Any]:
        """Return the report in the SPEC §7 JSON-lines shape."""
        return {
            "index": self.index,
            "line": self.line,
            "record_id": self.record_id,
            "valid": self.valid,
            "decision": None if self.decision is None else self.decision.value,
            "findings": [f.as_dict() for f in self.findings],
        }


_new_report = tuple.__new__  # builds a RecordReport from a full tuple, without keyword parsing


class RecordError(FindingsError):
    """A record could not be structured; ``findings`` holds every problem found."""

    what = "record"


# --- structure -----------------------------------------------------------------------------------

_ROOT_KEYS: Final = frozenset(s.name for s in field_specs(model.SessionRecord))
_walk_patient = WALKERS[model.Patient]
_walk_session = WALKERS[model.Session]


def _walk_record(
    data: Any, out: list[Finding]
) -> tuple[str | None, model.Patient | None, model.Session | None, bool]:
    """Check a decoded record; return (record_id, patient, session, format_ok).

    ``patient`` / ``session`` are ``None`` when that part had errors (so the other part can
    still be checked).
    """
    if data.__class__ is not dict:
        if isinstance(data, Mapping):
            data = dict(data)
        else:
            out.append(
                Finding(
                    code=R_NOT_OBJECT.id, severity=R_NOT_OBJECT.severity, path="",
                    message=f"expected a JSON object, got {_structure._json_kind(data)}",
                )
            )
            return None, None, None, False
    fmt = data.get("format", _structure._MISSING)
    format_ok = fmt == FORMAT
    if not format_ok:
        message = (
            "required field is missing" if fmt is _structure._MISSING
            else f'expected "{FORMAT}"'
        )
        out.append(Finding(code=R_FORMAT.id, severity=R_FORMAT.severity, path="format",
                           message=message))
    rid = data.get("record_id", _structure._MISSING)
    record_id: str | None = rid if rid.__class__ is str and rid else None
    if record_id is None:
        out.append(_structure._type("record_id", rid, "a non-empty string"))
    p = data.get("patient", _structure._MISSING)
    patient = _walk_patient(p, "patient", out)
    s = data.get("session", _structure._MISSING)
    session = _walk_session(s, "session", out)
    if not data.keys() <= _ROOT_KEYS:
        _structure._unknown(data, _ROOT_KEYS, "", out)
    return (
        record_id,
        None if patient is BAD else patient,
        None if session is BAD else session,
        format_ok,
    )


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
    record_id, patient, session, format_ok = _walk_record(data, out)
    errors = [f for f in out if f.severity is Severity.ERROR]
    if errors or record_id is None or patient is None or session is None or not format_ok:
        raise RecordError(errors)
    return model.SessionRecord(record_id=record_id, patient=patient, session=session)


def unstructure_record(record: model.SessionRecord) -> dict[str, Any]:
    """Return a record as JSON-ready data (the inverse of :func:`structure_record`)."""
    data: dict[str, Any] = converter.unstructure(record)
    return data


# --- validation pipeline ---------------------------------------------------------------------


class Validator:
    """A configured validation pipeline: structure, then the clinical checks.

    One instance validates one stream: it holds the series index (one small entry per
    patient) and nothing per record. :func:`validate_records` is the usual entry point.

    Args:
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`CHECKS` to run (``structure`` always runs).
        fast: Use the accelerated structure check for JSON texts when msgspec is installed
            (extra ``fast``); the reports are identical either way.
    """

    def __init__(
        self,
        *,
        policy: Policy = DEFAULT_POLICY,
        on: date | None = None,
        checks: Iterable[str] = CHECKS,
        fast: bool = True,
    ) -> None:
        checks = frozenset(checks)
        unknown = checks - set(CHECKS)
        if unknown:
            msg = f"unknown checks {sorted(unknown)}; choose from {CHECKS}"
            raise ValueError(msg)
        self.policy = policy
        self.on = on.date() if isinstance(on, datetime) else on
        self._compiled = _screening.screening_table(policy)
        self._table = _protocol.protocol_table(policy)
        self._summarize = series_summary
        self._screening = "screening" in checks
        self._protocol = "protocol" in checks
        self._series = _protocol.SeriesIndex(policy=policy) if "series" in checks else None
        self._fingerprint = policy.fingerprint
        self._fast = fast and _fast.AVAILABLE

    def check(self, obj: Any, index: int, line: int | None = None) -> RecordReport:
        """Validate one input (a mapping, or a JSON text) and return its report."""
        if self._fast and (obj.__class__ is bytes or obj.__class__ is str):
            try:
                wire = _fast_decode(obj)
            except _fast.DECODE_ERRORS:
                pass  # not clean: the walker below says why
            else:  # structurally clean: straight to the clinical checks
                return self._clinical(index, line, wire.record_id, wire.patient, wire.session,
                                      [], wire)[0]
        return self._check(obj, index, line, False)[0]

    def check_keyed(
        self, obj: Any, index: int, line: int | None = None, *, decoded: bool = False
    ) -> tuple[RecordReport, tuple[str, Any] | None]:
        """Validate one input and also return its series key, for a later series pass.

        The key is ``(patient_id, summary)`` with a small picklable summary of the session
        (see :meth:`dryneedle.protocol.SeriesIndex.add_summary`), or ``None`` when the patient
        or the session could not be read. Used by the parallel pipeline, whose validators run
        without the ``series`` check. With ``decoded``, ``obj`` is an already decoded JSON
        value (an element of a JSON array): a string is then a value, not JSON text.
        """
        return self._check(obj, index, line, True, decoded)

    def _check(
        self, obj: Any, index: int, line: int | None, keyed: bool, decoded: bool = False
    ) -> tuple[RecordReport, tuple[str, Any] | None]:
        cls = obj.__class__
        if decoded:
            pass  # a decoded value goes straight to the walker (a string is "not an object")
        elif cls is bytes or cls is str:
            if self._fast:
                try:
                    wire = _fast_decode(obj)
                except _fast.DECODE_ERRORS:
                    pass  # not clean: the walker below says why
                else:  # structurally clean: straight to the clinical checks
                    return self._clinical(index, line, wire.record_id, wire.patient,
                                          wire.session, [], wire, keyed)
            try:
                obj = loads(obj)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                return self._json_error(index, line, exc), None
        elif isinstance(obj, bytearray | memoryview):
            return self._check(bytes(obj), index, line, keyed)
        out: list[Finding] = []
        record_id, patient, session, format_ok = _walk_record(obj, out)
        record = None
        if patient is not None and session is not None and record_id is not None and format_ok:
            record = model.SessionRecord(record_id=record_id, patient=patient, session=session)
        return self._clinical(index, line, record_id, patient, session, out, record, keyed)

    def _json_error(self, index: int, line: int | None, exc: Exception) -> RecordReport:
        # The report carries the line number; the message names only the problem.
        finding = Finding(code=R_JSON.id, severity=R_JSON.severity, path="",
                          message=f"not valid JSON: {_json_error(exc)}")
        return RecordReport(index=index, line=line, record_id=None, valid=False, decision=None,
                            findings=(finding,), policy=self._fingerprint)

    def _clinical(
        self,
        index: int,
        line: int | None,
        record_id: str | None,
        patient: Any,
        session: Any,
        out: list[Finding],
        record: Any,
        keyed: bool = False,
    ) -> tuple[RecordReport, tuple[str, Any] | None]:
        """Run the clinical checks on the readable parts and build the report."""
        decision = None
        screened = False
        not_eligible = False
        excluded: frozenset[int] = _NO_SITES
        if self._screening and patient is not None:
            when = self.on if self.on is not None else (
                session.date if session is not None else None)
            if when is not None:  # without a date no decision can be made
                rank, found, _unknown, rows = screen_parts(
                    self._compiled, patient, when,
                    session.insertions if session is not None else (), _SITES_PATH, True,
                )
                screened = True
                decision = DECISION_BY_RANK[rank]
                if found:
                    out.extend(found)
                    not_eligible = rank == 3
                    excluded = frozenset(r[0] for r in rows if not r[4])
        if self._protocol and session is not None:
            if screened:
                out.extend(check_screened_session(session, patient, not_eligible, excluded,
                                                  self._table))
            else:
                out.extend(check_session_findings(session, patient=patient, screening=None,
                                                  policy=self.policy, on=self.on))
        key = None
        if session is not None and patient is not None:
            if self._series is not None:
                series = self._series.add_summary(patient.patient_id, (
                    session.date, session.number, len(session.insertions), tolerated(session)))
                if series:
                    out.extend(series)
            elif keyed:
                key = (patient.patient_id, self._summarize(session))
        valid = True
        for f in out:
            if f.severity is _ERROR:
                valid = False
                break
        return _new_report(RecordReport, (
            index, line, record_id, valid, decision, tuple(out), self._fingerprint, __version__,
            record,
        )), key


# The clinical modules import the model and policy, not this module: safe to import here.
from dryneedle import protocol as _protocol  # noqa: E402
from dryneedle import screening as _screening  # noqa: E402
from dryneedle.protocol import (  # noqa: E402
    check_screened_session,
    check_session_findings,
    series_summary,
    tolerated,
)
from dryneedle.screening import DECISION_BY_RANK, screen_parts  # noqa: E402

_fast_decode = _fast.decoder()
FAST_PATH: Final = _fast.AVAILABLE
"""Whether JSON lines take the accelerated structure check (extra ``fast``: msgspec)."""

_NO_SITES: Final[frozenset[int]] = frozenset()
_SITES_PATH: Final = "session.insertions"


def _json_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc).split(":", 1)[0] if isinstance(exc, UnicodeDecodeError) else str(exc)
    # Decoder messages quote positions, not content; keep them short and PHI-free.
    return text[:120]


def validate_records(
    records: Iterable[Any],
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = CHECKS,
) -> Iterator[RecordReport]:
    """Validate a stream of records, yielding exactly one report per input, in order.

    Args:
        records: Mappings (decoded records) or JSON texts (``str``/``bytes`` lines). For
            texts, ``line`` in the report is the 1-based position in ``records``.
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`CHECKS` to run.

    Yields:
        One :class:`RecordReport` per input. Never raises on bad data.
    """
    validator = Validator(policy=policy, on=on, checks=checks)
    for index, obj in enumerate(records):
        line = index + 1 if isinstance(obj, str | bytes) else None
        yield validator.check(obj, index, line)


def validate_lines(
    lines: Iterable[str | bytes],
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = CHECKS,
    start_index: int = 0,
    start_line: int = 1,
) -> list[dict[str, Any]]:
    """Validate a partition of JSON lines and return the JSON-ready reports.

    A public, picklable per-partition function for engines that map over partitions (Dask,
    Spark, multiprocessing). Blank lines are skipped (``line`` still counts them); line endings
    are removed, as the command line does. Series checks see only this partition: partition by
    patient to keep them exact (see :mod:`dryneedle.distributed`).

    Args:
        lines: The partition's lines.
        policy: The policy.
        on: Evaluation date for screening (default: each session's date).
        checks: Which of :data:`CHECKS` to run.
        start_index: ``index`` of the partition's first record.
        start_line: ``line`` of the partition's first line in its file.

    >>> from dryneedle.records import validate_lines
    >>> [r["findings"][0]["code"] for r in validate_lines(["not json"])]
    ['structure.json']
    """
    validator = Validator(policy=policy, on=on, checks=checks)
    out = []
    index = start_index
    for n, raw in enumerate(lines, start=start_line):
        if not raw.strip():
            continue
        text = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n")
        out.append(validator.check(text, index, n).as_dict())
        index += 1
    return out


# --- JSON Schema ---------------------------------------------------------------------------------


def _schema_of(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for spec in field_specs(cls):
        props[spec.name] = _field_schema(spec, defs)
        if spec.required:
            required.append(spec.name)
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    out: dict[str, Any] = {"type": "object", "description": doc, "properties": props}
    if required:
        out["required"] = required
    return out


def _field_schema(spec: _structure.FieldSpec, defs: dict[str, Any]) -> dict[str, Any]:
    from dryneedle.catalog import CONDITIONS, MUSCLES  # noqa: PLC0415

    s: dict[str, Any]
    if spec.kind == "bool":
        s = {"type": "boolean"}
    elif spec.kind == "str":
        s = {"type": "string", "minLength": 1}
    elif spec.kind in ("int", "float"):
        s = {"type": "integer" if spec.kind == "int" else "number"}
        if spec.minimum is not None:
            s["minimum"] = spec.minimum
    elif spec.kind == "date":
        s = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    elif spec.kind == "enum":
        s = {"type": "string", "enum": [m.value for m in spec.target]}
    elif spec.kind == "muscle":
        s = {"type": "string", "enum": list(MUSCLES)}
    elif spec.kind == "object":
        name = spec.target.__name__
        if name not in defs:
            defs[name] = {}
            defs[name] = _schema_of(spec.target, defs)
        s = {"$ref": f"#/$defs/{name}"}
    else:  # array
        if spec.target == "condition":
            items: dict[str, Any] = {"type": "string", "enum": list(CONDITIONS)}
        else:
            name = spec.target.__name__
            if name not in defs:
                defs[name] = {}
                defs[name] = _schema_of(spec.target, defs)
            items = {"$ref": f"#/$defs/{name}"}
        s = {"type": "array", "items": items}
    if not spec.required:
        s = {"anyOf": [s, {"type": "null"}]}
    return s


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of record format v1, generated from the models.

    Unknown fields are allowed by the schema (the validator reports them as warnings).

    >>> from dryneedle.records import json_schema
    >>> json_schema()["properties"]["format"]
    {'const': 'dryneedle.session/1'}
    """
    defs: dict[str, Any] = {}
    root = _schema_of(model.SessionRecord, defs)
    root["properties"]["format"] = {"const": FORMAT}
    root["required"] = ["format", *root.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dryneedle.readthedocs.io/schema/session-1.json",
        "title": "dryneedle session record, format v1",
        **root,
        "$defs": dict(sorted(defs.items())),
    }
