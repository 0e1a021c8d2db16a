"""Validation of record streams: the :class:`Validator` pipeline and its reports.

A :class:`Validator` runs, for one input, the structure check (the accelerated path of
:mod:`._fast` when it applies, else the walkers of :mod:`._structure`) and then the clinical
checks (screening, protocol, series), and returns one :class:`RecordReport` with every
finding. :func:`validate_records` and :func:`validate_lines` are its streaming entry points.
A new output format starts from :meth:`RecordReport.as_dict`.

May import: :mod:`dryneedle.model`, :mod:`dryneedle.findings`, :mod:`dryneedle.policy`, the
rules (:mod:`dryneedle.screening`, :mod:`dryneedle.protocol`) and :mod:`._structure`,
:mod:`._fast`, :mod:`._json`, :mod:`._documents`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any, Final, NamedTuple

from dryneedle import model
from dryneedle import protocol as _protocol
from dryneedle import screening as _screening
from dryneedle._version import __version__
from dryneedle.findings import Decision, Finding, Severity, rule
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.protocol import (
    check_screened_session,
    check_session_findings,
    series_summary,
    tolerated,
)
from dryneedle.records import _fast, _json
from dryneedle.records._documents import BadInput
from dryneedle.records._duplicates import parse_seeing_duplicates
from dryneedle.records._json import JSONError, escape_surrogates, is_blank
from dryneedle.records._json import parse as loads
from dryneedle.records._json import parse_exact as _parse_exact
from dryneedle.records._structure import (
    R_JSON,
    R_TOO_LARGE,
    loads_with_duplicates,
    may_have_duplicates,
    walk_readable,
)
from dryneedle.screening import DECISION_BY_RANK, screen_parts

__all__ = ["CHECKS", "RecordReport", "Validator", "validate_lines", "validate_records"]

_ERROR: Final = Severity.ERROR

CHECKS: Final = ("structure", "screening", "protocol", "series")
"""The checks :func:`validate_records` can run, in pipeline order."""

_fast_decode = _fast.decoder()
_NO_SITES: Final[frozenset[int]] = frozenset()
_SITES_PATH: Final = "session.insertions"
_SITE_FINDING: Final = rule("screening.site_finding")  # what the planned sites are needed by


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
            an internal form (its mirror on the accelerated path, the decoded value after a
            quick walk); use :attr:`record`.
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
        if rec.__class__ is _Unbuilt:
            return rec.build()
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


class _Unbuilt:
    """A whole record the quick walk read: its parts are mirrors, so it is built on demand.

    :attr:`RecordReport.record` builds it by the walkers, the record they would have built.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value  # the decoded JSON value

    def build(self) -> model.SessionRecord:
        parts: Any = walk_readable(self.value, [])  # whole: the quick walk read it so
        return model.SessionRecord(record_id=parts[0], patient=parts[1], session=parts[2])


_new_report = tuple.__new__  # builds a RecordReport from a full tuple, without keyword parsing


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
        """Validate one input (a mapping, a JSON text, or an input item's ``BadInput``).

        Returns its report.
        """
        if self._fast and (obj.__class__ is bytes or obj.__class__ is str):
            try:
                wire = _fast_decode(obj)
            except _fast.DECODE_ERRORS:
                pass  # not clean: the walker below says why
            else:  # structurally clean: straight to the clinical checks (unless a key repeats)
                if _no_repeated_key(obj) or not _duplicates_possible(obj):
                    return self._clean(index, line, wire, False)[0]
        return self._check(obj, index, line, False, fast=False)[0]

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
        if self._fast and not decoded and (obj.__class__ is bytes or obj.__class__ is str):
            try:  # the accelerated path, as in check()
                wire = _fast_decode(obj)
            except _fast.DECODE_ERRORS:
                pass  # not clean: the walker below says why
            else:
                if _no_repeated_key(obj) or not _duplicates_possible(obj):
                    return self._clean(index, line, wire, True)
            return self._check(obj, index, line, True, fast=False)
        return self._check(obj, index, line, True, decoded)

    def _check(
        self, obj: Any, index: int, line: int | None, keyed: bool, decoded: bool = False,
        fast: bool = True,
    ) -> tuple[RecordReport, tuple[str, Any] | None]:
        cls = obj.__class__
        quick = False  # see walk_readable
        if decoded:
            pass  # a decoded value goes straight to the walker (a string is "not an object")
        elif cls is BadInput:
            return self._bad_input(index, line, obj), None
        elif cls is bytes or cls is str:
            text = obj
            if self._fast and fast:
                try:
                    wire = _fast_decode(obj)
                except _fast.DECODE_ERRORS:
                    pass  # not clean: the walker below says why
                else:  # structurally clean: straight to the clinical checks
                    if _no_repeated_key(obj) or not _duplicates_possible(obj):
                        return self._clean(index, line, wire, keyed)
            if _json._fast_loads is None:  # the reference decoder parses: once, seeing repeats
                try:
                    obj = parse_seeing_duplicates(obj)
                except JSONError as exc:
                    return self._json_error(index, line, exc), None
                text = None
            elif cls is bytes and self._fast:  # exact values: the quick walk (walk_readable)
                try:
                    obj, quick = _parse_exact(obj)
                except JSONError as exc:
                    return self._json_error(index, line, exc), None
            else:
                try:
                    obj = loads(obj)
                except JSONError as exc:
                    return self._json_error(index, line, exc), None
            if text is not None and _may_have_duplicates(text, obj):  # rare: parse again
                try:
                    again, repeated = loads_with_duplicates(text)
                except (ValueError, UnicodeDecodeError, RecursionError):
                    pass  # the parsers disagree on validity: the first parse stands
                else:
                    if repeated:
                        obj = again
        elif isinstance(obj, bytearray | memoryview):
            return self._check(bytes(obj), index, line, keyed)
        out: list[Finding] = []
        # One pass: every structural finding, and the readable parts of a record with errors
        # (SPEC section 6, 1.1), which the clinical checks then see; clean objects of an
        # exact value as their msgspec mirrors (the quick walk).
        record_id, patient, session, whole = walk_readable(obj, out, quick)
        record: Any = None
        if whole and record_id is not None and patient is not None and session is not None:
            for f in out:
                if f.severity is _ERROR:
                    break
            else:
                if quick:  # mirrors are no model objects: built by the walkers on demand
                    record = _Unbuilt(obj)
                else:
                    record = model.SessionRecord(record_id=record_id, patient=patient,
                                                 session=session)
        return self._clinical(index, line, record_id, patient, session, out, record, keyed)

    def _json_error(self, index: int, line: int | None, exc: Exception) -> RecordReport:
        # The report carries the line number; the message names only the problem.
        finding = Finding(code=R_JSON.id, severity=R_JSON.severity, path="",
                          message=f"not valid JSON: {escape_surrogates(str(exc))}")
        return RecordReport(index=index, line=line, record_id=None, valid=False, decision=None,
                            findings=(finding,), policy=self._fingerprint)

    def _bad_input(self, index: int, line: int | None, bad: BadInput) -> RecordReport:
        rule = R_TOO_LARGE if bad.code == R_TOO_LARGE.id else R_JSON
        finding = Finding(code=rule.id, severity=rule.severity, path="", message=bad.message)
        return RecordReport(index=index, line=line, record_id=None, valid=False, decision=None,
                            findings=(finding,), policy=self._fingerprint)

    def _clean(
        self, index: int, line: int | None, wire: Any, keyed: bool
    ) -> tuple[RecordReport, tuple[str, Any] | None]:
        """:meth:`_clinical` for a structurally clean mirror record (the accelerated path).

        The same checks and the same report, without the branches a clean record cannot
        take: no structural finding; the patient, the session and its insertions (a tuple),
        the patient id, the session date and number are all read (the mirror requires them).
        """
        patient = wire.patient
        session = wire.session
        sites = session.insertions
        d = session.date
        decision = None
        out: list[Finding]
        if self._screening:
            rank, out, unknown, rows = screen_parts(
                self._compiled, patient, d if self.on is None else self.on, sites,
                _SITES_PATH, True,
            )
            decision = DECISION_BY_RANK[rank]
            if self._protocol:
                excluded = _NO_SITES
                if out:  # an excluded site always comes with its finding
                    for row in rows:
                        if not row[4]:
                            excluded = frozenset([r[0] for r in rows if not r[4]])
                            break
                out.extend(check_screened_session(
                    session, patient, rank == 3, excluded, self._table,
                    unknown if rank == 2 else None,
                ))
        else:
            out = []
            if self._protocol:
                out.extend(check_session_findings(session, patient=patient, screening=None,
                                                  policy=self.policy, on=self.on))
        key = None
        if self._series is not None or keyed:
            events = session.adverse_events  # tolerated(session), without a call when empty
            summary = (d, session.number, len(sites),
                       tolerated(session) if events else None if events is None else True)
            if self._series is None:
                key = (patient.patient_id, summary)
            else:
                series = self._series.add_summary(patient.patient_id, summary)
                if series:
                    out.extend(series)
        valid = True
        for f in out:
            if f.severity is _ERROR:
                valid = False
                break
        return _new_report(RecordReport, (
            index, line, wire.record_id, valid, decision, tuple(out), self._fingerprint,
            __version__, wire,
        )), key

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
        review: list[str] | None = None
        excluded: frozenset[int] = _NO_SITES
        if session is not None:
            sites = session.insertions  # None: unreadable
            # An unknown date (None: unreadable) makes the age unknown (needs review).
            when = session.date if self.on is None else self.on
        else:
            sites = ()
            when = self.on
        if patient is not None and self._screening:
            rank, found, unknown, rows = screen_parts(
                self._compiled, patient, when, sites or (), _SITES_PATH, True,
            )
            if sites is None:  # the insertions could not be read: the planned sites unknown
                hit = self._compiled.unknown(_SITES_PATH, "the planned sites (unreadable)",
                                             _SITE_FINDING)
                found.append(hit[0])
                rank = max(rank, hit[1])
            screened = True
            decision = DECISION_BY_RANK[rank]
            if found:
                if out:
                    out.extend(found)
                else:  # the usual case: no structural finding (found is a new list)
                    out = found
                not_eligible = rank == 3
                if rank == 2:  # needs_review: the unknown answers, as screen() lists them
                    review = unknown
                excluded_rows = [r[0] for r in rows if not r[4]]
                if excluded_rows:
                    excluded = frozenset(excluded_rows)
        if session is not None:
            if self._protocol:
                if screened:
                    out.extend(check_screened_session(session, patient, not_eligible,
                                                      excluded, self._table, review))
                else:
                    out.extend(check_session_findings(session, patient=patient, screening=None,
                                                      policy=self.policy, on=self.on))
            key = None
            if patient is not None:
                patient_id = patient.patient_id
                d = session.date
                number = session.number
                if patient_id is not None and d is not None and number is not None:
                    if self._series is not None:
                        series = self._series.add_summary(patient_id, (
                            d, number, 0 if sites is None else len(sites), tolerated(session)))
                        if series:
                            out.extend(series)
                    elif keyed:
                        key = (patient_id, self._summarize(session))
        else:
            key = None
        valid = True
        for f in out:
            if f.severity is _ERROR:
                valid = False
                break
        return _new_report(RecordReport, (
            index, line, record_id, valid, decision, tuple(out), self._fingerprint, __version__,
            record,
        )), key



def _duplicates_possible(text: str | bytes) -> bool:
    """Return ``False`` when no object of the line repeats a key (the second pre-test).

    msgspec, like orjson, keeps one value per key, so the accelerated path asks first: the
    exact key count of :func:`._fast.no_repeated_key` (no second parse), then, only when it
    cannot tell (e.g. a value spaced oddly), this count of the keys orjson keeps.
    """
    return _may_have_duplicates(text, loads(text))


_no_repeated_key = _fast.no_repeated_key


_may_have_duplicates = may_have_duplicates  # rebound by benchmarks/duplicate_keys.py only


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
    Spark, multiprocessing). Blank lines (only space, tab, CR, LF) are skipped (``line`` still
    counts them); the JSON whitespace around each line is removed, as the command line does.
    Series checks see only this partition: partition by patient to keep them exact (see
    :mod:`dryneedle.distributed`).

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
        if is_blank(raw):  # only JSON whitespace (space, tab, CR, LF): not a record
            continue
        # Without the JSON whitespace around it, as the command line reads a line.
        text = raw.strip(b" \t\r\n") if isinstance(raw, bytes) else raw.strip(" \t\r\n")
        out.append(validator.check(text, index, n).as_dict())
        index += 1
    return out

