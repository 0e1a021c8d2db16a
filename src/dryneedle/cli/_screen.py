"""``dryneedle screen``: screen one patient (or the patient of each record) and explain why."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from dryneedle.cli import (
    EXIT_ERRORS,
    EXIT_OK,
    UsageError,
    _iso_date,
    add_policy_option,
    resolve_policy,
    write_json,
)
from dryneedle.findings import Decision, Finding, Severity
from dryneedle.model import Insertion, Patient, Session, Side
from dryneedle.policy import Policy
from dryneedle.records import _input
from dryneedle.screening import PlannedSite, ScreeningResult, screen

__all__ = ["register"]


def _structure_patient(
    data: Any,
) -> tuple[Patient | None, Session | None, bool, list[Finding]]:
    """Return (patient, session, is_record, structural findings) of a record or a patient."""
    from dryneedle.records._structure import BAD, WALKERS, walk_record  # noqa: PLC0415

    out: list[Finding] = []
    if isinstance(data, dict) and "patient" in data:
        _rid, patient, session, _ok = walk_record(data, out)
        return patient, session, True, out
    walked = WALKERS[Patient](data, "patient", out)
    return (None if walked is BAD else walked), None, False, out


def _problems_text(title: str, problems: list[Finding]) -> str:
    return title + "".join(
        f"  [{f.severity.value}] {f.code} at {f.path or '<input>'}: {f.message}\n"
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


def _documents(name: str) -> list[Any]:
    """Decode the input: one JSON document (possibly multi-line), a JSON array, or JSONL."""
    try:
        with _input.open_input(name) as stream:
            whole = stream.read()
    except (_input.InputError, OSError, EOFError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        doc = json.loads(whole)
    except (ValueError, RecursionError):
        pass
    else:
        return doc if isinstance(doc, list) else [doc]
    docs = []
    for n, line in enumerate(whole.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            msg = f"{name}:{n}: not valid JSON"
            raise UsageError(msg) from exc
    return docs


def _cmd_screen(args: argparse.Namespace) -> int:
    policy = resolve_policy(args.policy)
    # The command line is the boundary where today's date may be read; rules never read it.
    args.today = datetime.now(UTC).date()
    try:
        (name,) = _input.expand_inputs([args.file])
    except _input.InputError as exc:
        raise UsageError(str(exc)) from exc
    docs = _documents(name)
    if not docs:
        msg = f"{name}: no patient or record found"
        raise UsageError(msg)
    blocked = False
    outputs: list[dict[str, Any]] = []
    texts: list[str] = []
    for data in docs:
        report, _result, text, is_blocked = _screen_one(data, args, policy)
        outputs.append(report)
        texts.append(text)
        blocked = blocked or is_blocked
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
        "session record (its session date and insertions are used), or JSONL records. "
        "Exit code 0 for eligible / eligible_with_precautions, 1 for needs_review / "
        "not_eligible or an input with errors, 2 for usage errors.",
    )
    p.add_argument("file", metavar="FILE", help="JSON patient or record, JSONL, or '-'")
    add_policy_option(p)
    p.add_argument("--on", type=_iso_date, metavar="DATE",
                   help="evaluation date (default: the record's session date, else today)")
    p.add_argument("--site", action="append", type=_site, metavar="MUSCLE:SIDE",
                   help="a planned site (repeatable); default: the record's insertions")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_screen)

