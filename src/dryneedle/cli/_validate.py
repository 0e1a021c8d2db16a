"""``dryneedle validate``: stream records, print one JSON report line per record."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from dryneedle.cli import (
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _iso_date,
    add_input_options,
    add_policy_option,
    resolve_policy,
)
from dryneedle.records import CHECKS, Validator, _input, _pipeline
from dryneedle.records._json import escape_text

__all__ = ["register"]


def _text_line(data: dict[str, Any], source: str) -> str:
    # Record ids, paths (field names) and file names come from the input: escape control
    # characters and terminal escapes so that they cannot move the cursor or fake lines.
    where = escape_text(f"{source}:{data['line']}")
    record_id = escape_text(data["record_id"]) if data["record_id"] else "?"
    head = f"{where} record {record_id}: {'valid' if data['valid'] else 'INVALID'}"
    if data["decision"]:
        head += f", decision {data['decision']}"
    out = [head]
    for f in data["findings"]:
        path = escape_text(f["path"]) if f["path"] else "<record>"
        text = f"  [{f['severity']}] {f['code']} at {path}: {escape_text(f['message'])}"
        if f["sources"]:
            text += f" ({', '.join(f['sources'])})"
        out.append(text)
    return "\n".join(out) + "\n"


class _Progress:
    """A progress bar on stderr (rich, extra ``cli``) for long runs; silent otherwise."""

    def __init__(self, total_bytes: int | None, *, enabled: bool) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._started = time.monotonic()
        if not enabled:
            return
        try:
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )
        except ImportError:  # pragma: no cover - the cli extra is not installed
            return
        from rich.console import Console  # noqa: PLC0415

        columns = [TextColumn("{task.description}"), BarColumn(),
                   TextColumn("{task.fields[records]} records, {task.fields[rate]} rec/s")]
        if total_bytes:
            columns.append(TimeRemainingColumn())
        self._bar = Progress(*columns, console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task("validating", total=total_bytes or None,
                                        records=0, rate="-")
        self._bar.start()

    def update(self, records: int, consumed: int) -> None:
        """Report records done and bytes consumed."""
        if self._bar is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, completed=consumed, records=records,
                         rate=f"{records / elapsed:,.0f}")

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.stop()


def _cmd_validate(args: argparse.Namespace) -> int:
    policy = resolve_policy(args.policy)
    checks = tuple(args.checks.split(",")) if args.checks else CHECKS
    try:
        Validator(policy=policy, on=args.on, checks=checks)  # rejects unknown checks early
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (all CPUs) or a positive number")
    jobs = args.jobs or _pipeline.default_jobs()
    try:
        names = _input.expand_inputs(args.files)
    except _input.InputError as exc:
        raise UsageError(str(exc)) from exc
    sizes = [_input.input_size(n) for n in names]
    total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
    progress = _Progress(total, enabled=not args.quiet and sys.stderr.isatty())
    out: BinaryIO = sys.stdout.buffer
    write: Callable[[_pipeline.ChunkResult], None]
    if args.format == "jsonl":
        def write(result: _pipeline.ChunkResult) -> None:
            out.write(b"".join(result.lines))
    elif args.format == "text":
        def write(result: _pipeline.ChunkResult) -> None:
            for line in result.lines:
                out.write(_text_line(json.loads(line), result.source).encode("utf-8"))
    else:
        def write(result: _pipeline.ChunkResult) -> None:
            pass
    summary_file = None
    if args.summary_json:  # opened first: an unwritable path fails before the run, not after
        try:
            summary_file = open(args.summary_json, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            msg = f"--summary-json: {args.summary_json}: {exc.strerror or exc}"
            raise UsageError(msg) from exc
    summary = _pipeline.Summary()
    try:
        for result, summary in _pipeline.run(  # noqa: B007 - the last summary is the total
            names, policy=policy, on=args.on, checks=checks, jobs=jobs,
            progress=progress.update, input_format=args.input_format,
            max_record_bytes=args.max_record_bytes,
        ):
            write(result)
    except BrokenPipeError:
        progress.close()
        raise  # stdout closed early: main() stops quietly with 141
    except (_input.InputError, OSError, EOFError) as exc:
        progress.close()
        out.flush()
        if summary_file is not None:
            summary_file.close()
        if not args.quiet:  # the counts say how far the run got
            sys.stderr.write(summary.to_text())
        sys.stderr.write(f"dryneedle: error: unreadable input: {exc} (after {summary.records} "
                         "records, each reported above; the rest was not read)\n")
        return EXIT_USAGE
    progress.close()
    out.flush()
    if args.format == "summary":
        sys.stdout.write(summary.to_text())
    elif not args.quiet:
        sys.stderr.write(summary.to_text())
    if summary_file is not None:
        with summary_file:
            json.dump(summary.as_dict(), summary_file, indent=2)
            summary_file.write("\n")
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
                   help="JSONL or JSON files (an array of records or one record), globs, "
                   "compressed (gz, bz2, xz, zst) or not, or '-' for stdin")
    add_input_options(p)
    add_policy_option(p)
    p.add_argument("--on", type=_iso_date, metavar="DATE",
                   help="evaluate screening on this date instead of each session's date")
    p.add_argument("--format", choices=("jsonl", "text", "summary"), default="jsonl",
                   help="jsonl: one JSON report per line (default); text: human-readable; "
                   "summary: only the summary, on stdout")
    p.add_argument("--checks", metavar="LIST",
                   help=f"comma-separated subset of {','.join(CHECKS)} (structure always runs)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes (0: one per CPU); output is identical for any N "
                   "(default: %(default)s)")
    p.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON here")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary on stderr")
    p.set_defaults(func=_cmd_validate)
