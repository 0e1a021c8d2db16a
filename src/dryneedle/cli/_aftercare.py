"""``dryneedle aftercare``, ``dryneedle triage`` and ``dryneedle rates``.

* ``aftercare FILE`` -- FILE holds session records or bare session objects (one or many:
  JSONL, a JSON array or one document); prints each patient's aftercare plan as text
  (default), Markdown or JSON. Exit 0, or 1 when a record or session could not be read in full
  (problems listed on stderr): its plan is then still printed, failing closed (every
  conditional line, SPEC §5 1.1), never nothing; 2 when a record is not JSON (its plan too
  fails closed).
* ``triage FILE [--session FILE]`` -- FILE holds a symptom report (JSON shape of
  :class:`dryneedle.aftercare.SymptomReport`); prints the triage level and its cited reasons.
  Without ``--session`` the session counts as having needled over the lung (fail closed). Exit
  0 when the level is ``expected``; 1 for ``contact_clinic`` / ``urgent`` or an invalid report.
* ``rates FILE...`` -- streams JSONL records (or a JSON array; gzip and ``-`` work) and prints
  adverse-event rates beside the published ones, with the 95 % Wilson interval of each.
  Exit 0, or 1 when some records were invalid
  (they are listed on stderr and left out of the rates).

Every input is read by the one input layer (:func:`dryneedle.cli.read_inputs`): JSONL, a JSON
array or one JSON document, compressed or not, files, globs or ``-`` for standard input. Exit
code 2: usage error or unreadable input (a record that is not JSON is reported on stderr, the
other records are still processed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from dryneedle.aftercare import (
    AdverseEventRates,
    ReportError,
    TriageLevel,
    adverse_event_rates,
    aftercare_plan,
    structure_report,
    triage,
)
from dryneedle.cli import (
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    Document,
    UsageError,
    add_input_options,
    add_policy_option,
    read_inputs,
    resolve_policy,
    write_json,
)
from dryneedle.findings import Finding, Severity
from dryneedle.model import Patient, Session, SessionRecord
from dryneedle.outputs import rates_intervals_text, rates_with_intervals
from dryneedle.records import Validator, escape_text

__all__ = ["register"]


def _error(message: str) -> int:
    sys.stderr.write(f"dryneedle: error: {message}\n")
    return EXIT_USAGE


def _unreadable(doc: Document) -> None:
    assert doc.error is not None
    code, message = doc.error
    sys.stderr.write(f"{doc.where}: [error] {code}: {escape_text(message)}\n")


def _report_problems(name: str, findings: tuple[Finding, ...] | list[Finding]) -> None:
    for f in findings:
        sys.stderr.write(
            f"{escape_text(name)}: [{f.severity.value}] {f.code} at "
            f"{escape_text(f.path) if f.path else '<input>'}: {escape_text(f.message)}\n"
        )


_Read = tuple[Session | None, Patient | None, tuple[str, ...]]
"""A session as read: (session, patient, the paths that could not be read)."""


def _session_of(data: object, where: str) -> _Read:
    """Structure a record or a bare session, fail closed; return (session, patient, unreadable).

    ``unreadable`` holds the path of every structural problem (errors, and unknown fields,
    which may be misspelt answers): what could not be read. Problems are reported on stderr.
    """
    from dryneedle.records import walk_part, walk_record  # noqa: PLC0415

    out: list[Finding] = []
    patient: Patient | None = None
    session: Session | None
    if isinstance(data, dict) and ({"format", "patient", "session"} & data.keys()):
        _rid, patient, session, _format_ok = walk_record(data, out)
    else:
        session = walk_part(Session, data, "session", out)
    _report_problems(where, out)
    unreadable = tuple(dict.fromkeys(f.path for f in out))
    if session is None and "session" not in unreadable:
        unreadable = (*unreadable, "session")
    raw_session = data.get("session") if isinstance(data, dict) and "session" in data else data
    if isinstance(raw_session, dict) and raw_session.get("insertions") is None:
        # Absent or null insertions are unknown, not "no needles" (SPEC §3, §4 1.1): the plan
        # keeps every conditional line and triage counts the session as near the lung.
        unreadable = (*unreadable, "session.insertions")
    return session, patient, unreadable


def _document_session(doc: Document) -> _Read:
    """The session of one input document, fail closed (not JSON: unreadable as a whole)."""
    if doc.error is not None:
        _unreadable(doc)
        return None, None, ("",)
    return _session_of(doc.value, doc.where)


def _load_session(args: argparse.Namespace, name: str) -> _Read:
    """Read one record or bare session (``--session``), fail closed.

    A file with no record, or with several (which session do the symptoms follow?), is
    reported and read as an unknown session: triage still answers, near the lung (SPEC §5 1.1:
    never nothing).
    """
    docs = list(read_inputs(args, [name]))
    if len(docs) != 1:
        sys.stderr.write(f"{escape_text(name)}: expected one session record or session, found "
                         f"{len(docs)} records; the session is unknown (fail closed)\n")
        return None, None, ("session",)
    return _document_session(docs[0])


# --- aftercare -----------------------------------------------------------------------------------


def _cmd_aftercare(args: argparse.Namespace) -> int:
    plans: list[Any] = []
    code = EXIT_OK
    try:
        docs = list(read_inputs(args, [args.file]))
    except UsageError as exc:
        return _error(str(exc))
    if not docs:  # nothing readable at all: still a plan, failing closed (SPEC §5 1.1)
        sys.stderr.write(f"{escape_text(args.file)}: no session record or session found; the "
                         "plan below fails closed (every conditional line included)\n")
        docs_sessions: list[_Read] = [(None, None, ("",))]
        code = EXIT_USAGE
    else:
        docs_sessions = [_document_session(doc) for doc in docs]
    for doc_i, (session, patient, unreadable) in enumerate(docs_sessions):
        if unreadable:
            where = docs[doc_i].where if docs else escape_text(args.file)
            sys.stderr.write(f"{where}: could not be read in full; the plan below fails "
                             "closed (every conditional line included)\n")
            code = max(code, EXIT_USAGE if unreadable == ("",) else EXIT_ERRORS)
        plans.append(aftercare_plan(session, patient=patient, unreadable=unreadable))
    if args.format == "json":
        data = [plan.as_dict() for plan in plans]
        write_json(sys.stdout, data[0] if len(data) == 1 else data)
    else:
        markdown = args.format == "markdown"
        sys.stdout.write("\n".join(
            plan.to_markdown(with_sources=args.sources) if markdown
            else plan.to_text(with_sources=args.sources)
            for plan in plans))
    return code


# --- triage ---------------------------------------------------------------------------------------


def _cmd_triage(args: argparse.Namespace) -> int:
    try:
        policy = resolve_policy(args.policy)
        session: Session | None = None
        session_unreadable: tuple[str, ...] = ()
        if args.session is not None:
            session, _patient, session_unreadable = _load_session(args, args.session)
            if session_unreadable:
                sys.stderr.write(f"{escape_text(args.session)}: could not be read in full; the "
                                 "session counts as near the lung (fail closed)\n")
        results: list[Any] = []
        unreadable = invalid = False
        for doc in read_inputs(args, [args.file]):
            if doc.error is not None:
                _unreadable(doc)
                unreadable = True
                continue
            if doc.repeats_a_key():  # a repeated "symptoms" could hide a symptom (SPEC §6 1.1)
                sys.stderr.write(f"{doc.where}: [error] structure.duplicate_key: a key is given "
                                 "more than once in one object; not triaged\n")
                invalid = True
                continue
            try:
                report = structure_report(doc.value)
            except ReportError as exc:
                _report_problems(doc.where, exc.findings)
                sys.stderr.write(f"{doc.where}: not a valid symptom report; not triaged\n")
                invalid = True
                continue
            results.append(triage(report, session=session, policy=policy,
                                  unreadable=session_unreadable))
    except UsageError as exc:
        return _error(str(exc))
    if not results and not (unreadable or invalid):
        return _error(f"{escape_text(args.file)}: no symptom report found")
    if args.format == "json":
        data = [r.as_dict() for r in results]
        if data:
            write_json(sys.stdout, data[0] if len(data) == 1 else data)
    else:
        sys.stdout.write("\n".join(r.to_text(with_sources=args.sources) for r in results))
    if unreadable:
        return EXIT_USAGE
    if invalid or session_unreadable:
        return EXIT_ERRORS
    return EXIT_OK if all(r.level is TriageLevel.EXPECTED for r in results) else EXIT_ERRORS


# --- rates ----------------------------------------------------------------------------------------


class _Counted:
    """Stream the valid records of the inputs, counting (and reporting) the invalid ones."""

    def __init__(self, args: argparse.Namespace, names: list[str]) -> None:
        self.args = args
        self.names = names
        self.invalid = 0
        self._validator = Validator(checks=("structure",))

    def __iter__(self) -> Iterator[SessionRecord]:
        for index, doc in enumerate(read_inputs(self.args, self.names)):
            record = self._record(doc, index)
            if record is not None:
                yield record

    def _record(self, doc: Document, index: int) -> SessionRecord | None:
        if doc.error is not None:
            self.invalid += 1
            sys.stderr.write(f"{doc.where}: invalid record left out of the rates "
                             f"({doc.error[0]} at <record>)\n")
            return None
        report = self._validator.check(doc.value, index, doc.line)
        if report.record is None or not report.valid:
            self.invalid += 1
            errors = [f for f in report.findings if f.severity is Severity.ERROR]
            first = errors[0] if errors else None
            detail = (f" ({first.code} at {escape_text(first.path) if first.path else '<record>'})"
                      if first else "")
            more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
            sys.stderr.write(f"{doc.where}: invalid record left out of the rates{detail}{more}\n")
            return None
        return report.record


def _cmd_rates(args: argparse.Namespace) -> int:
    stream = _Counted(args, args.files)
    try:
        rates: AdverseEventRates = adverse_event_rates(stream)
    except UsageError as exc:
        return _error(str(exc))
    if args.format == "json":
        data = rates_with_intervals(rates)  # as_dict() plus each rate's 95 % Wilson interval
        data["invalid_records"] = stream.invalid
        write_json(sys.stdout, data)
    else:
        sys.stdout.write(rates.to_text())
        sys.stdout.write(rates_intervals_text(rates))
        if stream.invalid:
            sys.stdout.write(f"{stream.invalid} invalid record(s) left out\n")
    return EXIT_ERRORS if stream.invalid else EXIT_OK


# --- registration ---------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``aftercare``, ``triage`` and ``rates`` sub-commands."""
    p = sub.add_parser(
        "aftercare",
        help="print a patient's aftercare plan for a session",
        description="Print the cited aftercare plan for a session. FILE holds a session "
        "record (its patient's bleeding risk is used) or a bare session object (bleeding risk "
        "unknown: the bleeding lines are included). Exit 0, 1 for an invalid record or "
        "session, 2 for usage errors.",
    )
    p.add_argument("file", metavar="FILE",
                   help="session records or sessions (JSONL, JSON array or one JSON "
                   "document), a glob, or '-'")
    add_input_options(p)
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p.add_argument("--sources", action="store_true",
                   help="append each line's source ids (text and Markdown)")
    p.set_defaults(func=_cmd_aftercare)

    p = sub.add_parser(
        "triage",
        help="triage a symptom report: expected, contact_clinic or urgent",
        description="Classify the symptoms a patient reports after a session, with cited "
        "reasons. FILE holds a symptom report: {\"hours_since_session\": 37, \"symptoms\": "
        "[{\"kind\": \"soreness\", \"duration_h\": 30, \"severity\": \"mild\"}]}. Without "
        "--session the session counts as having needled over the lung. Exit 0 for expected, "
        "1 for contact_clinic, urgent or an invalid report, 2 for usage errors.",
    )
    p.add_argument("file", metavar="FILE", help="JSON symptom report, or '-'")
    p.add_argument("--session", metavar="FILE",
                   help="the session the symptoms follow (a record or a bare session)")
    add_input_options(p)
    add_policy_option(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--sources", action="store_true",
                   help="append each reason's rule id and source ids (text)")
    p.set_defaults(func=_cmd_triage)

    p = sub.add_parser(
        "rates",
        help="adverse-event rates of session records beside the published rates",
        description="Stream session records (JSONL or a JSON array; gzip and '-' work) and "
        "print adverse events per kind, per session, beside the rates published by "
        "brady-2014 and boyce-2020, with the 95 %% Wilson confidence interval of each observed "
        "rate. Exit 0, 1 when some records were invalid (left out and "
        "listed on stderr), 2 for usage errors.",
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="JSONL, JSON array or one JSON document (compressed or not), globs, "
                   "or '-'")
    add_input_options(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_rates)
