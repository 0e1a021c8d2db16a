"""``dryneedle validate``: stream records, print one JSON report line per record."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

from dryneedle import _io
from dryneedle.cli import (
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _iso_date,
    add_policy_option,
    resolve_policy,
)
from dryneedle.findings import Finding, Severity
from dryneedle.records import CHECKS, RecordReport, Validator

__all__ = ["Summary", "register"]

try:
    import orjson as _orjson

    def _dumps(data: dict[str, Any]) -> bytes:
        return _orjson.dumps(data)

except ImportError:  # pragma: no cover - the stdlib gives the same bytes

    def _dumps(data: dict[str, Any]) -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Summary:
    """Counts over a validation run (records, validity, findings by code, decisions)."""

    def __init__(self) -> None:
        self.records = 0
        self.valid = 0
        self.findings: Counter[str] = Counter()
        self.severities: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()

    def add(self, report: dict[str, Any]) -> None:
        """Count one report (JSON-ready shape)."""
        self.records += 1
        if report["valid"]:
            self.valid += 1
        self.decisions[report["decision"] or "none"] += 1
        for f in report["findings"]:
            self.findings[f["code"]] += 1
            self.severities[f["severity"]] += 1

    @property
    def invalid(self) -> int:
        """Records with at least one error."""
        return self.records - self.valid

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data (sorted, deterministic)."""
        return {
            "records": self.records,
            "valid": self.valid,
            "invalid": self.invalid,
            "findings_by_severity": dict(sorted(self.severities.items())),
            "findings_by_code": dict(sorted(self.findings.items())),
            "decisions": dict(sorted(self.decisions.items())),
        }

    def to_text(self) -> str:
        """Return a short human summary."""
        lines = [f"{self.records} records: {self.valid} valid, {self.invalid} invalid"]
        if self.decisions:
            lines.append(
                "decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.decisions.items()))
            )
        if self.findings:
            lines.append("findings by code:")
            width = max(len(c) for c in self.findings)
            lines += [f"  {c:<{width}}  {n}" for c, n in self.findings.most_common()]
        return "\n".join(lines) + "\n"


def _array_error_report(index: int, line: int, message: str) -> RecordReport:
    from dryneedle._structure import R_JSON  # noqa: PLC0415

    finding = Finding(code=R_JSON.id, severity=Severity.ERROR, path="",
                      message=f"{message} (line {line})")
    return RecordReport(index=index, line=line, record_id=None, valid=False, decision=None,
                        findings=(finding,))


def iter_reports(
    names: list[str], validator: Validator, *, multi: bool
) -> Iterator[tuple[dict[str, Any], _io.Item]]:
    """Yield ``(report dict, item)`` for every record of every input, in order."""
    index = 0
    for name in names:
        with _io.open_input(name) as stream:
            for item in _io.iter_items(name, stream):
                if isinstance(item.data, _io.ArrayError):
                    report = _array_error_report(index, item.line, item.data.message)
                else:
                    report = validator.check(item.data, index, item.line)
                data = report.as_dict()
                if multi:
                    data["file"] = name
                yield data, item
                index += 1


def _text_line(data: dict[str, Any], source: str) -> str:
    where = f"{source}:{data['line']}"
    head = f"{where} record {data['record_id'] or '?'}: {'valid' if data['valid'] else 'INVALID'}"
    if data["decision"]:
        head += f", decision {data['decision']}"
    out = [head]
    for f in data["findings"]:
        out.append(f"  [{f['severity']}] {f['code']} at {f['path'] or '<record>'}: {f['message']}"
                   f" ({', '.join(f['sources'])})" if f["sources"] else
                   f"  [{f['severity']}] {f['code']} at {f['path'] or '<record>'}: {f['message']}")
    return "\n".join(out) + "\n"


def _cmd_validate(args: argparse.Namespace) -> int:
    policy = resolve_policy(args.policy)
    checks = tuple(args.checks.split(",")) if args.checks else CHECKS
    try:
        validator = Validator(policy=policy, on=args.on, checks=checks)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        names = _io.expand_inputs(args.files)
    except _io.InputError as exc:
        raise UsageError(str(exc)) from exc
    summary = Summary()
    out: BinaryIO = sys.stdout.buffer
    try:
        for data, item in iter_reports(names, validator, multi=len(names) > 1):
            summary.add(data)
            if args.format == "jsonl":
                out.write(_dumps(data) + b"\n")
            elif args.format == "text":
                out.write(_text_line(data, item.source).encode("utf-8"))
    except (_io.InputError, OSError, EOFError) as exc:
        out.flush()
        sys.stderr.write(f"dryneedle: error: unreadable input: {exc}\n")
        return EXIT_USAGE
    out.flush()
    if args.format == "summary":
        sys.stdout.write(summary.to_text())
    elif not args.quiet:
        sys.stderr.write(summary.to_text())
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary.as_dict(), f, indent=2)
            f.write("\n")
    return EXIT_ERRORS if summary.invalid else EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``validate`` sub-command."""
    p = sub.add_parser(
        "validate",
        help="validate session records (JSONL or JSON array; '-' for stdin)",
        description="Validate session records of format v1 and print one JSON report per "
        "record on stdout, in input order; a summary goes to stderr. Screening uses each "
        "session's date (or --on) and its insertions as the planned sites.",
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="JSONL or JSON-array files, globs, .gz files, or '-' for stdin")
    add_policy_option(p)
    p.add_argument("--on", type=_iso_date, metavar="DATE",
                   help="evaluate screening on this date instead of each session's date")
    p.add_argument("--format", choices=("jsonl", "text", "summary"), default="jsonl",
                   help="jsonl: one JSON report per line (default); text: human-readable; "
                   "summary: only the summary, on stdout")
    p.add_argument("--checks", metavar="LIST",
                   help=f"comma-separated subset of {','.join(CHECKS)} (structure always runs)")
    p.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=_cmd_validate)


