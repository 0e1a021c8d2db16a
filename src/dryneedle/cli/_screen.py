"""``dryneedle screen``: screen one patient (or the patient of each record) and explain why.

Layer: command line (the only layer that prints or exits). May import every layer below it,
through public names only (:mod:`dryneedle.screening`, :mod:`dryneedle.records`, ...).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from dryneedle.cli import (
    EXIT_ERRORS,
    EXIT_OK,
    Document,
    UsageError,
    _iso_date,
    add_input_options,
    add_policy_option,
    read_inputs,
    resolve_policy,
    write_json,
)
from dryneedle.findings import Decision, Finding, Severity
from dryneedle.model import Insertion, Patient, Session, Side
from dryneedle.policy import Policy
from dryneedle.records import escape_text
from dryneedle.screening import PlannedSite, ScreeningResult, screen

__all__ = ["register"]


def _structure_patient(
    data: Any,
) -> tuple[Patient | None, Session | None, bool, list[Finding]]:
    """Return (patient, session, is_record, structural findings) of a record or a patient."""
    from dryneedle.records import walk_part, walk_record  # noqa: PLC0415

    out: list[Finding] = []
    if isinstance(data, dict) and "patient" in data:
        _rid, patient, session, _ok = walk_record(data, out)
        return patient, session, True, out
    return walk_part(Patient, data, "patient", out), None, False, out


def _problems_text(title: str, problems: list[Finding]) -> str:
    # Paths hold field names from the input: escape control characters and terminal escapes.
    return title + "".join(
        f"  [{f.severity.value}] {f.code} at {escape_text(f.path) if f.path else '<input>'}: "
        f"{escape_text(f.message)}\n"
        for f in problems
    )


def _site(text: str) -> PlannedSite:
    try:
        muscle, side = text.split(":", 1)
        return PlannedSite(muscle=muscle, side=Side(side))
    except ValueError:
        msg = f"--site {text!r}: expected MUSCLE:SIDE with SIDE one of left, right, midline"
        raise argparse.ArgumentTypeError(msg) from None


def _render_text(result: ScreeningResult) -> str:
    lines = [f"decision: {result.decision.value} (on {result.on.isoformat()}, "
             f"policy {result.policy_name} {result.policy})"]
    for f in result.findings:
        lines.append(f"  [{f.severity.value}] {f.code} at {f.path}: {f.message}"
                     f" ({', '.join(f.sources)})")
    if result.missing:
        lines.append("missing answers: " + ", ".join(result.missing))
    for s in result.site_decisions:
        lines.append(f"  site {s.path} {s.muscle} {s.side.value}: "
                     f"{'allowed' if s.allowed else 'EXCLUDED'}")
    return "\n".join(lines) + "\n"


def _screen_one(
    data: Any, args: argparse.Namespace, policy: Policy
) -> tuple[dict[str, Any], ScreeningResult | None, str, bool]:
    """Screen one document; return (JSON, result, text, blocked)."""
    patient, session, is_record, problems = _structure_patient(data)
    errors = any(f.severity is Severity.ERROR for f in problems)
    if patient is None:
        report = {"decision": None, "findings": [f.as_dict() for f in problems]}
        return report, None, _problems_text("patient could not be read:\n", problems), True
    # A record is screened on its session's date with its insertions; when the session cannot
    # be read, neither is known: never fall back to today's date for a record.
    on = args.on or (session.date if session is not None else None)
    if on is None and not is_record:
        on = args.today
    if on is None:
        report = {"decision": None, "findings": [f.as_dict() for f in problems]}
        text = _problems_text(
            "the session could not be read, so its date and planned sites are unknown "
            "(give --on and --site to screen the patient alone):\n", problems)
        return report, None, text, True
    sites: list[Insertion | PlannedSite] = list(args.site or ())
    if not sites and session is not None:
        sites = list(session.insertions)
    result = screen(patient, on=on, sites=sites, policy=policy)
    data_out = result.as_dict()
    text = _render_text(result)
    if problems:
        data_out["findings"] = [f.as_dict() for f in problems] + data_out["findings"]
        text = _problems_text("problems in the input:\n", problems) + text
    blocked = errors or result.decision in (Decision.NOT_ELIGIBLE, Decision.NEEDS_REVIEW)
    return data_out, result, text, blocked


def _unreadable(doc: Document) -> tuple[dict[str, Any], str]:
    """The output of a record that could not be read (not JSON, too large)."""
    assert doc.error is not None
    code, message = doc.error
    finding = Finding(code=code, severity=Severity.ERROR, path="", message=message)
    report = {"decision": None, "findings": [finding.as_dict()]}
    return report, _problems_text(f"{doc.where}: record could not be read:\n", [finding])


def _cmd_screen(args: argparse.Namespace) -> int:
    policy = resolve_policy(args.policy)
    # The command line is the boundary where today's date may be read; rules never read it.
    args.today = datetime.now(UTC).date()
    blocked = False
    outputs: list[dict[str, Any]] = []
    texts: list[str] = []
    for doc in read_inputs(args, [args.file]):  # JSONL, a JSON array or one document
        if doc.error is not None:
            report, text = _unreadable(doc)
            is_blocked = True
        else:
            report, _result, text, is_blocked = _screen_one(doc.value, args, policy)
        outputs.append(report)
        texts.append(text)
        blocked = blocked or is_blocked
    if not outputs:
        msg = f"{escape_text(args.file)}: no patient or record found"
        raise UsageError(msg)
    if args.format == "json":
        write_json(sys.stdout, outputs[0] if len(outputs) == 1 else outputs)
    else:
        sys.stdout.write("\n".join(texts))
    return EXIT_ERRORS if blocked else EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``screen`` sub-command."""
    p = sub.add_parser(
        "screen",
        help="screen a patient (or each record's patient) and explain the decision",
        description="Screen a patient for dry needling. FILE holds a patient object, a "
        "session record (its session date and insertions are used), or many of them (JSONL, a "
        "JSON array, a glob). "
        "Exit code 0 for eligible / eligible_with_precautions, 1 for needs_review / "
        "not_eligible or an input with errors, 2 for usage errors.",
    )
    p.add_argument("file", metavar="FILE",
                   help="patients or records: JSONL, a JSON array or one JSON document "
                   "(compressed or not), a glob, or '-'")
    add_input_options(p)
    add_policy_option(p)
    p.add_argument("--on", type=_iso_date, metavar="DATE",
                   help="evaluation date (default: the record's session date, else today)")
    p.add_argument("--site", action="append", type=_site, metavar="MUSCLE:SIDE",
                   help="a planned site (repeatable); default: the record's insertions")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_screen)

