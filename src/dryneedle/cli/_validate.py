"""``dryneedle validate``: stream records, print one JSON report line per record.

Besides the report lines (or JUnit, SARIF, GitHub annotations), a run can split its input into
valid and invalid records, write a failure-cases table and apply thresholds; the writers live
in :mod:`dryneedle.outputs`, this module wires them to the options.

Layer: command line (the only layer that prints or exits). May import every layer below it,
through public names only (:mod:`dryneedle.records`, :mod:`dryneedle.outputs`, ...).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from dryneedle import outputs as writers
from dryneedle import records
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
from dryneedle.outputs import FAIL_ON, Threshold, exit_status
from dryneedle.records import CHECKS, Validator, escape_text

if TYPE_CHECKING:  # the writers are imported when their output is asked for (start-up time)
    from dryneedle.outputs import FailureCasesWriter, InputSplitter, ReportWriter

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


class _Outputs:
    """What a run writes besides the report lines (opened before the run: bad paths fail early)."""

    def __init__(self, args: argparse.Namespace, policy: Any, out: BinaryIO) -> None:
        self.files: list[BinaryIO] = []
        self.threshold = _threshold(args)
        self.writer: ReportWriter | None = None
        if args.format == "junit":
            self.writer = writers.JUnitWriter(out)
        elif args.format == "sarif":
            self.writer = writers.SarifWriter(out, policy)
        elif args.format == "github":
            self.writer = writers.GitHubWriter(out)
        self.failures: FailureCasesWriter | None = None
        if args.failure_cases:
            try:
                self.failures = writers.FailureCasesWriter(args.failure_cases)
            except writers.ParquetUnavailableError as exc:
                raise UsageError(f"--failure-cases: {exc}") from exc
            except OSError as exc:
                msg = f"--failure-cases: {args.failure_cases}: {exc.strerror or exc}"
                raise UsageError(msg) from exc
        self.splitter: InputSplitter | None = None
        self.spool: Any = None
        self._stdin: Any = None
        if args.valid_out or args.invalid_out:
            valid = self._open("--valid-out", args.valid_out)
            invalid = self._open("--invalid-out", args.invalid_out)
            self.splitter = writers.InputSplitter(self._open_input, valid, invalid)
        self.reads_reports = args.format not in {"jsonl", "summary"} or bool(
            self.failures or self.splitter or self.threshold.reads_findings)
        self.failing = 0

    def _open(self, option: str, name: str | None) -> BinaryIO | None:
        if not name:
            return None
        try:
            f = open(name, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise UsageError(f"{option}: {name}: {exc.strerror or exc}") from exc
        self.files.append(f)
        return f

    def _open_input(self, name: str) -> IO[bytes]:
        if name == "-" and self.spool is not None:
            return records.open_input(self.spool.name)
        return records.open_input(name)

    def spool_stdin(self, names: list[str]) -> None:
        """With a split of standard input, keep a copy of it to read the records again."""
        if self.splitter is None or "-" not in names:
            return
        import shutil  # noqa: PLC0415 - only for this rare case (start-up time)
        import tempfile  # noqa: PLC0415

        self.spool = tempfile.NamedTemporaryFile(prefix="dryneedle-stdin-")  # noqa: SIM115
        shutil.copyfileobj(sys.stdin.buffer, self.spool)
        self.spool.flush()
        self._stdin = sys.stdin
        sys.stdin = io.TextIOWrapper(open(self.spool.name, "rb"))  # noqa: SIM115 - close()

    def add(self, report: dict[str, Any], source: str, *, array: bool) -> None:
        """Hand one report to every output."""
        if self.writer is not None:
            self.writer.write(report, source)
        if self.splitter is not None:
            self.splitter.add(source, report["line"], report["valid"], array=array)
        if self.failures is not None:
            self.failures.write(report)
        if self.threshold.reads_findings and self.threshold.fails(report):
            self.failing += 1

    def close(self, *, complete: bool) -> None:
        """Finish the documents (only when the run completed) and close the files."""
        if complete and self.writer is not None:
            self.writer.close()
        if self.splitter is not None:
            self.splitter.close()
        if self.failures is not None:
            self.failures.close()
        for f in self.files:
            f.close()
        if self.spool is not None:
            sys.stdin.close()
            sys.stdin = self._stdin
            self.spool.close()


def _threshold(args: argparse.Namespace) -> Threshold:
    rate = args.max_invalid_rate
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise UsageError(f"--max-invalid-rate must be between 0 and 1, got {rate}")
    return Threshold(fail_on=args.fail_on, max_invalid_rate=rate)


def _open_output(name: str | None) -> BinaryIO:
    if not name or name == "-":
        return sys.stdout.buffer
    try:
        return open(name, "wb")
    except OSError as exc:
        raise UsageError(f"--output: {name}: {exc.strerror or exc}") from exc


def _cmd_validate(args: argparse.Namespace) -> int:
    policy = resolve_policy(args.policy)
    checks = tuple(args.checks.split(",")) if args.checks else CHECKS
    try:
        Validator(policy=policy, on=args.on, checks=checks)  # rejects unknown checks early
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (all CPUs) or a positive number")
    jobs = args.jobs or records.default_jobs()
    try:
        names = records.expand_inputs(args.files)
    except records.InputError as exc:
        raise UsageError(str(exc)) from exc
    sizes = [records.input_size(n) for n in names]
    total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
    summary_file = None
    if args.summary_json:  # opened first: an unwritable path fails before the run, not after
        try:
            summary_file = open(args.summary_json, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            msg = f"--summary-json: {args.summary_json}: {exc.strerror or exc}"
            raise UsageError(msg) from exc
    out = _open_output(args.output)
    outputs = _Outputs(args, policy, out)
    outputs.spool_stdin(names)
    progress = _Progress(total, enabled=not args.quiet and sys.stderr.isatty())
    write: Callable[[records.ChunkResult], None]
    if args.format == "jsonl":
        def write(result: records.ChunkResult) -> None:
            out.write(b"".join(result.lines))
    elif args.format == "text":
        def write(result: records.ChunkResult) -> None:
            for line in result.lines:
                out.write(_text_line(json.loads(line), result.source).encode("utf-8"))
    else:
        def write(result: records.ChunkResult) -> None:
            pass
    summary = records.Summary()
    complete = False
    # What start-up built (modules, tables, the policy) lives as long as the run: out of the
    # collector's generations, its periodic full passes scan only what records allocate.
    # (Undone after the run, unless the caller had frozen objects itself.)
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    try:
        for result, summary in records.run_pipeline(  # noqa: B007 - the last summary is the total
            names, policy=policy, on=args.on, checks=checks, jobs=jobs,
            progress=progress.update, input_format=args.input_format,
            max_record_bytes=args.max_record_bytes,
        ):
            write(result)
            if outputs.reads_reports:
                # The input layer's format decision (the option or the name, never sniffing).
                array = records.input_format(result.source, args.input_format) == "json"
                for line in result.lines:
                    outputs.add(json.loads(line), result.source, array=array)
        complete = True
    except BrokenPipeError:  # stdout closed early (`| head`): main() stops quietly with 141
        raise
    except (records.InputError, OSError, EOFError) as exc:
        progress.close()
        if not args.quiet:  # the counts say how far the run got
            sys.stderr.write(summary.to_text())
        sys.stderr.write(f"dryneedle: error: unreadable input: {exc} (after {summary.records} "
                         "records, each reported above; the rest was not read)\n")
    except writers.SplitError as exc:  # (imported here only when an exception gets here)
        sys.stderr.write(f"dryneedle: error: --valid-out/--invalid-out: {exc}\n")
    finally:
        if froze:
            gc.unfreeze()
        progress.close()
        outputs.close(complete=complete)
        out.flush()
        if out is not sys.stdout.buffer:
            out.close()
        if summary_file is not None and not complete:
            summary_file.close()
    if not complete:
        return EXIT_USAGE
    failing = outputs.failing if outputs.threshold.reads_findings else summary.invalid
    code, rate_line = exit_status(outputs.threshold, summary.records, failing)
    text = summary.to_text() + (rate_line or "")
    if outputs.splitter is not None and outputs.splitter.unwritten:
        text += (f"{outputs.splitter.unwritten} report(s) had no record text to copy to "
                 "--valid-out/--invalid-out (an undecodable JSON array)\n")
    if args.format == "summary":
        if args.output and args.output != "-":
            with open(args.output, "a", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
    elif not args.quiet:
        sys.stderr.write(text)
    if summary_file is not None:
        with summary_file:
            data = summary.as_dict()
            if not outputs.threshold.is_default:
                data["threshold"] = {
                    "fail_on": outputs.threshold.fail_on,
                    "max_invalid_rate": outputs.threshold.max_invalid_rate,
                    "failing": failing,
                    "failing_rate": failing / summary.records if summary.records else 0.0,
                    "passed": code == EXIT_OK,
                }
            json.dump(data, summary_file, indent=2)
            summary_file.write("\n")
    return EXIT_ERRORS if code else EXIT_OK


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
    p.add_argument("--format", choices=("jsonl", "text", "summary", "junit", "sarif", "github"),
                   default="jsonl",
                   help="jsonl: one JSON report per line (default); text: human-readable; "
                   "summary: only the summary, on stdout; junit: JUnit XML, one test case per "
                   "record; sarif: SARIF 2.1.0; github: GitHub workflow annotations")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the reports to FILE instead of stdout (the summary stays on "
                   "stderr)")
    p.add_argument("--valid-out", metavar="FILE",
                   help="copy each valid record here, in input order (JSONL lines byte for "
                   "byte; JSON-array elements as compact JSONL lines)")
    p.add_argument("--invalid-out", metavar="FILE",
                   help="copy each invalid record here, in input order (a dead-letter queue)")
    p.add_argument("--failure-cases", metavar="FILE",
                   help="one row per finding (index, line, record_id, code, severity, path, "
                   "message): Parquet when FILE ends with .parquet (extra 'parquet'), else CSV")
    p.add_argument("--fail-on", choices=FAIL_ON, default="error",
                   help="exit 1 for records with an error (default) or also a warning")
    p.add_argument("--max-invalid-rate", type=float, metavar="R",
                   help="exit 0 while the share of failing records is at most R (0 to 1); "
                   "the rate is added to the summary")
    p.add_argument("--checks", metavar="LIST",
                   help=f"comma-separated subset of {','.join(CHECKS)} (structure always runs)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes (0: one per CPU); output is identical for any N "
                   "(default: %(default)s)")
    p.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON here")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary on stderr")
    p.set_defaults(func=_cmd_validate)
