"""``dryneedle aftercare``, ``dryneedle triage`` and ``dryneedle rates``.

* ``aftercare FILE`` -- FILE holds a session record or a bare session object; prints the
  patient's aftercare plan as text (default), Markdown or JSON. Exit 0, or 1 when the record or
  session could not be read in full (problems listed on stderr): the plan is then still
  printed, failing closed (every conditional line, SPEC §5 1.1), never nothing.
* ``triage FILE [--session FILE]`` -- FILE holds a symptom report (JSON shape of
  :class:`dryneedle.aftercare.SymptomReport`); prints the triage level and its cited reasons.
  Without ``--session``, or with one that cannot be read in full, the session counts as near
  the lung (fail closed) and the triage is still printed. Exit 0 when the level is
  ``expected`` and the inputs were read; 1 for ``contact_clinic`` / ``urgent``, an unreadable
  session or an invalid report.
* ``rates FILE...`` -- streams JSONL records (or a JSON array; gzip and ``-`` work) and prints
  adverse-event rates beside the published ones. Exit 0, or 1 when some records were invalid
  (they are listed on stderr and left out of the rates).

Exit code 2: usage error or unreadable input. Inputs may be ``-`` for standard input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

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
    UsageError,
    add_policy_option,
    resolve_policy,
    write_json,
)
from dryneedle.findings import Finding, Severity
from dryneedle.model import Patient, Session, SessionRecord
from dryneedle.records import Validator, _input, loads

__all__ = ["register"]


def _error(message: str) -> int:
    sys.stderr.write(f"dryneedle: error: {message}\n")
    return EXIT_USAGE


class _NotJsonError(UsageError):
    """The document was read but is not JSON (a usage error, except where failing closed)."""


def _read_document(name: str) -> object:
    """Read one JSON document from a file or ``-`` (raises :class:`UsageError`)."""
    try:
        with _input.open_input(name) as stream:
            raw = stream.read()
    except (OSError, EOFError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        msg = f"{name}: not valid JSON"
        raise _NotJsonError(msg) from exc


def _report_problems(name: str, findings: tuple[Finding, ...] | list[Finding]) -> None:
    for f in findings:
        sys.stderr.write(
            f"{name}: [{f.severity.value}] {f.code} at {f.path or '<input>'}: {f.message}\n"
        )


def _load_session(name: str) -> tuple[Session | None, Patient | None, tuple[str, ...]]:
    """Read a record or a bare session, fail closed; return (session, patient, unreadable).

    ``unreadable`` holds the path of every structural problem (errors, and unknown fields,
    which may be misspelt answers): what could not be read. A document that is not JSON is
    unreadable as a whole (path ``""``). Problems are reported on stderr. Raises
    :class:`UsageError` only when the file itself cannot be opened.
    """
    from dryneedle.records._structure import BAD, WALKERS, walk_record  # noqa: PLC0415

    try:
        data = _read_document(name)
    except _NotJsonError as exc:
        sys.stderr.write(f"dryneedle: error: {exc}; treated as unreadable (fail closed)\n")
        return None, None, ("",)
    out: list[Finding] = []
    patient: Patient | None = None
    session: Session | None
    if isinstance(data, dict) and ({"format", "patient", "session"} & data.keys()):
        _rid, patient, session, _format_ok = walk_record(data, out)
    else:
        walked = WALKERS[Session](data, "session", out)
        session = None if walked is BAD else walked
    _report_problems(name, out)
    unreadable = tuple(dict.fromkeys(f.path for f in out))
    if session is None and "session" not in unreadable:
        unreadable = (*unreadable, "session")
    return session, patient, unreadable


# --- aftercare -----------------------------------------------------------------------------------


def _cmd_aftercare(args: argparse.Namespace) -> int:
    try:
        session, patient, unreadable = _load_session(args.file)
    except UsageError as exc:
        return _error(str(exc))
    if unreadable:
        sys.stderr.write(f"{args.file}: could not be read in full; the plan below fails "
                         "closed (every conditional line included)\n")
    plan = aftercare_plan(session, patient=patient, unreadable=unreadable)
    code = EXIT_USAGE if unreadable == ("",) else EXIT_ERRORS if unreadable else EXIT_OK
    if args.format == "json":
        write_json(sys.stdout, plan.as_dict())
    elif args.format == "markdown":
        sys.stdout.write(plan.to_markdown(with_sources=args.sources))
    else:
        sys.stdout.write(plan.to_text(with_sources=args.sources))
    return code


# --- triage ---------------------------------------------------------------------------------------


def _cmd_triage(args: argparse.Namespace) -> int:
    try:
        policy = resolve_policy(args.policy)
        data = _read_document(args.file)
        session: Session | None = None
        unreadable: tuple[str, ...] = ()
        if args.session is not None:
            session, _patient, unreadable = _load_session(args.session)
            if unreadable:
                sys.stderr.write(f"{args.session}: could not be read in full; the session "
                                 "counts as near the lung (fail closed)\n")
    except UsageError as exc:
        return _error(str(exc))
    try:
        report = structure_report(data)
    except ReportError as exc:
        _report_problems(args.file, exc.findings)
        sys.stderr.write(f"{args.file}: not a valid symptom report; not triaged\n")
        return EXIT_ERRORS
    follow_up = triage(report, session=session, policy=policy, unreadable=unreadable)
    if args.format == "json":
        write_json(sys.stdout, follow_up.as_dict())
    else:
        sys.stdout.write(follow_up.to_text(with_sources=args.sources))
    expected = follow_up.level is TriageLevel.EXPECTED and not unreadable
    return EXIT_OK if expected else EXIT_ERRORS


# --- rates ----------------------------------------------------------------------------------------


class _Counted:
    """Stream the valid records of the inputs, counting (and reporting) the invalid ones."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.invalid = 0
        self._validator = Validator(checks=("structure",))

    def __iter__(self) -> Iterator[SessionRecord]:
        index = 0
        for name in self.names:
            with _input.open_input(name) as stream:
                for item in _input.iter_items(name, stream):
                    record = self._record(item, index)
                    index += 1
                    if record is not None:
                        yield record

    def _record(self, item: _input.Item, index: int) -> SessionRecord | None:
        where = f"{item.source}:{item.line}"
        if isinstance(item.data, _input.ArrayError):
            self.invalid += 1
            sys.stderr.write(f"{where}: {item.data.message}\n")
            return None
        report = self._validator.check(item.data, index, item.line)
        if report.record is None or not report.valid:
            self.invalid += 1
            errors = [f for f in report.findings if f.severity is Severity.ERROR]
            first = errors[0] if errors else None
            detail = f" ({first.code} at {first.path or '<record>'})" if first else ""
            more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
            sys.stderr.write(f"{where}: invalid record left out of the rates{detail}{more}\n")
            return None
        return report.record


def _cmd_rates(args: argparse.Namespace) -> int:
    try:
        names = _input.expand_inputs(args.files)
    except _input.InputError as exc:
        return _error(str(exc))
    stream = _Counted(names)
    try:
        rates: AdverseEventRates = adverse_event_rates(stream)
    except (OSError, EOFError) as exc:
        return _error(f"unreadable input: {exc}")
    if args.format == "json":
        data = rates.as_dict()
        data["invalid_records"] = stream.invalid
        write_json(sys.stdout, data)
    else:
        sys.stdout.write(rates.to_text())
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
        "unknown: the bleeding lines are included). A record or session that cannot be read "
        "in full still gets a plan, failing closed (every conditional line). Exit 0, 1 when "
        "the input could not be read in full, 2 for usage errors.",
    )
    p.add_argument("file", metavar="FILE", help="JSON session record or session, or '-'")
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
        "--session, or with one that cannot be read in full, the session counts as near the lung "
        "(fail closed). Exit 0 for expected, 1 for contact_clinic, urgent, an unreadable "
        "session or an invalid report, 2 for usage errors.",
    )
    p.add_argument("file", metavar="FILE", help="JSON symptom report, or '-'")
    p.add_argument("--session", metavar="FILE",
                   help="the session the symptoms follow (a record or a bare session)")
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
        "brady-2014 and boyce-2020. Exit 0, 1 when some records were invalid (left out and "
        "listed on stderr), 2 for usage errors.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="JSONL or JSON array, or '-'")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_rates)
