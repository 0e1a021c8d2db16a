"""``dryneedle report FILE… -o report.html``: one static HTML page about a validation run.

The inputs are validated exactly as ``dryneedle validate`` does (same pipeline, same policy
and options), then read once more for the needle, depth and adverse-event counts of the
structurally valid records. The page and its JSON summary are built by
:mod:`dryneedle.outputs`. Exit 0 when the page is written, 2 for usage errors, unreadable
input or a missing ``report`` extra (matplotlib).

Layer: command line (the only layer that prints or exits). May import every layer below it,
through public names only (:mod:`dryneedle.records`, :mod:`dryneedle.outputs`, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from dryneedle import records
from dryneedle.cli import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _iso_date,
    add_policy_option,
    resolve_policy,
)
from dryneedle.model import SessionRecord
from dryneedle.outputs import ReportUnavailableError, RunStats, render_html, require_report_extra
from dryneedle.records import CHECKS, Validator

__all__ = ["register"]


class _Records:
    """The structurally valid records of the inputs, counting those left out."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.left_out = 0

    def __iter__(self) -> Iterator[SessionRecord]:
        validator = Validator(checks=("structure",))
        index = 0
        for name in self.names:
            with records.open_input(name) as stream:
                for item in records.iter_items(name, stream):
                    index += 1
                    # An undelimitable or oversized record is a BadInput: its report is invalid.
                    report = validator.check(item.data, index - 1, item.line)
                    if report.record is None or not report.valid:
                        self.left_out += 1
                        continue
                    yield report.record


def _cmd_report(args: argparse.Namespace) -> int:
    policy = resolve_policy(args.policy)
    try:
        require_report_extra()  # before the run, not after it
    except ReportUnavailableError as exc:
        raise UsageError(str(exc)) from exc
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (all CPUs) or a positive number")
    try:
        names = records.expand_inputs(args.files)
    except records.InputError as exc:
        raise UsageError(str(exc)) from exc
    stats = RunStats()
    try:
        for result, _summary in records.run_pipeline(
            names, policy=policy, on=args.on, checks=CHECKS,
            jobs=args.jobs or records.default_jobs(),
        ):
            for line in result.lines:
                stats.add_report(json.loads(line), result.source)
        valid = _Records(names)
        stats.records_pass(valid)
        stats.left_out = valid.left_out
    except BrokenPipeError:  # pragma: no cover - handled by main()
        raise
    except (records.InputError, OSError, EOFError) as exc:
        sys.stderr.write(f"dryneedle: error: unreadable input: {exc}\n")
        return EXIT_USAGE
    summary = stats.summary(policy=policy, policy_name=args.policy)
    page = render_html(summary, title=args.title)
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(page)
        if args.summary_json:
            with open(args.summary_json, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2, ensure_ascii=False)
                f.write("\n")
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror or exc}") from exc
    v = summary["validation"]
    if not args.quiet:
        sys.stderr.write(f"{args.output}: {v['records']} records ({v['valid']} valid, "
                         f"{v['invalid']} invalid), {v['findings']} findings\n")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser(
        "report",
        help="write one static HTML page (plots, counts, metadata) about a validation run",
        description="Validate session records as 'dryneedle validate' does and write one "
        "self-contained HTML page (inline CSS and SVG, no network): decisions, top finding "
        "codes, findings by path, needles and depths by technique, adverse-event rates with "
        "95 %% Wilson intervals beside brady-2014 and boyce-2020, and the run's metadata. "
        "Needs the 'report' extra (matplotlib).",
    )
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="JSONL or JSON-array files, globs, gzip files, or '-' for stdin")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML page")
    p.add_argument("--summary-json", metavar="FILE",
                   help="also write the page's numbers (its embedded JSON summary) here")
    p.add_argument("--title", default="dryneedle validation report", help="the page title")
    add_policy_option(p)
    p.add_argument("--on", type=_iso_date, metavar="DATE",
                   help="evaluate screening on this date instead of each session's date")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes for the validation (0: one per CPU)")
    p.add_argument("-q", "--quiet", action="store_true", help="no line on stderr")
    p.set_defaults(func=_cmd_report)
