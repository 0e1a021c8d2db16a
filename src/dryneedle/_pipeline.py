"""The validation pipeline behind ``dryneedle validate``: chunks, processes, series pass.

Records are read in chunks. Each chunk is validated -- structure, screening and protocol --
either in this process or in a pool of worker processes (``--jobs N``), and comes back as
ready-to-write output lines plus, per record, a compact *series key* (patient id and a small
session summary). The series checks then run in one pass in the main process, in input order,
over those keys: they are the only checks that need to see records of the same patient across
chunks. A series finding is appended to its record's report, exactly where the single-process
validator puts it (last), so the output is byte for byte the same for any number of jobs.

Memory is bounded: at most ``2 * jobs`` chunks are in flight, and the series index keeps one
small tuple per patient.
"""

from __future__ import annotations

import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date
from typing import Any, Final

import attrs

from dryneedle import _io
from dryneedle._structure import R_JSON
from dryneedle.findings import Finding, Severity
from dryneedle.policy import Policy
from dryneedle.records import RecordReport, Validator

__all__ = ["CHUNK_RECORDS", "ChunkResult", "Summary", "run"]

CHUNK_RECORDS: Final = 2000
"""Records per chunk handed to a worker."""

try:
    import orjson as _orjson

    def dumps(data: dict[str, Any]) -> bytes:
        """Serialise one report compactly (orjson when installed; same bytes as the stdlib)."""
        return _orjson.dumps(data)

    _loads: Callable[[bytes], Any] = _orjson.loads

except ImportError:  # pragma: no cover - the stdlib gives the same bytes

    def dumps(data: dict[str, Any]) -> bytes:
        """Serialise one report compactly (orjson when installed; same bytes as the stdlib)."""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    _loads = json.loads


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

    def merge(self, other: Summary) -> None:
        """Add another summary's counts to this one."""
        self.records += other.records
        self.valid += other.valid
        self.findings.update(other.findings)
        self.severities.update(other.severities)
        self.decisions.update(other.decisions)

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


@attrs.frozen
class ChunkResult:
    """What validating one chunk gives back.

    Attributes:
        lines: One serialised JSON report per record (newline-terminated).
        sources: The input name of each record.
        summary: Counts over the chunk (before series findings).
        keys: ``(position in chunk, patient id, series summary)`` for each record whose
            patient and session were readable, in order.
        size: Bytes of input consumed (for progress).
    """

    lines: list[bytes]
    sources: list[str]
    summary: Summary
    keys: list[tuple[int, str, Any]]
    size: int


_worker: Validator | None = None


def _init_worker(policy: Policy, on: date | None, checks: tuple[str, ...]) -> None:
    global _worker  # noqa: PLW0603 - one validator per worker process, set once
    _worker = Validator(policy=policy, on=on, checks=checks)


def _array_error_report(index: int, line: int, message: str) -> RecordReport:
    finding = Finding(code=R_JSON.id, severity=Severity.ERROR, path="",
                      message=f"{message} (line {line})")
    return RecordReport(index=index, line=line, record_id=None, valid=False, decision=None,
                        findings=(finding,))


def process_chunk(
    start: int, items: list[tuple[str, int, Any]], multi: bool, validator: Validator | None = None
) -> ChunkResult:
    """Validate one chunk (without series checks) and serialise its reports.

    Args:
        start: Index of the chunk's first record in the whole stream.
        items: ``(source, line, data)`` per record.
        multi: Whether to add the ``file`` key (several inputs).
        validator: The validator (default: this worker process's).
    """
    v = validator if validator is not None else _worker
    assert v is not None
    lines: list[bytes] = []
    sources: list[str] = []
    keys: list[tuple[int, str, Any]] = []
    summary = Summary()
    size = 0
    for pos, (source, line, data) in enumerate(items):
        if isinstance(data, _io.ArrayError):
            report, key = _array_error_report(start + pos, line, data.message), None
        else:
            if data.__class__ is bytes:
                size += len(data)
            report, key = v.check_keyed(data, start + pos, line)
        d = report.as_dict()
        if multi:
            d["file"] = source
        summary.add(d)
        lines.append(dumps(d) + b"\n")
        sources.append(source)
        if key is not None:
            keys.append((pos, key[0], key[1]))
    return ChunkResult(lines, sources, summary, keys, size)


def _chunks(names: list[str], size: int) -> Iterator[tuple[int, list[tuple[str, int, Any]]]]:
    start = 0
    chunk: list[tuple[str, int, Any]] = []
    for name in names:
        with _io.open_input(name) as stream:
            for item in _io.iter_items(name, stream):
                chunk.append((item.source, item.line, item.data))
                if len(chunk) >= size:
                    yield start, chunk
                    start += len(chunk)
                    chunk = []
    if chunk:
        yield start, chunk


def _apply_series(result: ChunkResult, series: Any, summary: Summary) -> None:
    """Run the series checks over a chunk's keys; patch the reports they concern."""
    for pos, patient_id, key in result.keys:
        extra = series.add_summary(patient_id, key)
        if not extra:
            continue
        d = _loads(result.lines[pos])
        before_valid = d["valid"]
        d["findings"].extend(f.as_dict() for f in extra)
        d["valid"] = before_valid and all(f.severity is not Severity.ERROR for f in extra)
        if before_valid and not d["valid"]:
            result.summary.valid -= 1
        for f in extra:
            result.summary.findings[f.code] += 1
            result.summary.severities[f.severity.value] += 1
        result.lines[pos] = dumps(d) + b"\n"
    summary.merge(result.summary)


def run(
    names: list[str],
    *,
    policy: Policy,
    on: date | None,
    checks: Iterable[str],
    jobs: int = 1,
    chunk_records: int = CHUNK_RECORDS,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[ChunkResult, Summary]]:
    """Validate every record of the inputs; yield each chunk's results in input order.

    Args:
        names: Input names (``-`` for stdin).
        policy: The policy.
        on: Evaluation date for screening (default: each session's date).
        checks: Which checks to run (``series`` runs in the final pass here).
        jobs: Worker processes (1: validate in this process).
        chunk_records: Records per chunk.
        progress: Called with ``(records done, bytes consumed)`` after each chunk.

    Yields:
        ``(chunk result, running summary)`` per chunk, in order.
    """
    from dryneedle.protocol import SeriesIndex  # noqa: PLC0415

    checks = tuple(checks)
    per_record = tuple(c for c in checks if c != "series")
    series = SeriesIndex(policy=policy) if "series" in checks else _NoSeries()
    summary = Summary()
    multi = len(names) > 1
    done = consumed = 0
    if jobs <= 1:
        validator = Validator(policy=policy, on=on, checks=per_record)
        for start, items in _chunks(names, chunk_records):
            result = process_chunk(start, items, multi, validator)
            _apply_series(result, series, summary)
            done += len(items)
            consumed += result.size
            if progress is not None:
                progress(done, consumed)
            yield result, summary
        return
    fresh = attrs.evolve(policy)  # no caches travel to the workers
    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(fresh, on, per_record)
    ) as pool:
        pending: deque[tuple[int, Future[ChunkResult]]] = deque()
        for start, items in _chunks(names, chunk_records):
            pending.append((len(items), pool.submit(process_chunk, start, items, multi)))
            while len(pending) > 2 * jobs:
                n, fut = pending.popleft()
                result = fut.result()
                _apply_series(result, series, summary)
                done += n
                consumed += result.size
                if progress is not None:
                    progress(done, consumed)
                yield result, summary
        while pending:
            n, fut = pending.popleft()
            result = fut.result()
            _apply_series(result, series, summary)
            done += n
            consumed += result.size
            if progress is not None:
                progress(done, consumed)
            yield result, summary


class _NoSeries:
    """Stands in for the series index when series checks are off."""

    def add_summary(self, patient_id: str, key: Any) -> list[Finding]:
        return []


def default_jobs() -> int:
    """The number of CPUs available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
