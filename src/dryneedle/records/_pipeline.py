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

Every record is read by the input layer (:mod:`._input`, :mod:`._documents`): the main
process cuts plain JSONL files into byte ranges that the workers read with the same JSONL
reader, and reads every other input (JSON, compressed, stdin, pipes) itself. When an input
becomes unreadable, every chunk read before it is still written, for any number of jobs.

May import: :mod:`dryneedle.findings`, :mod:`dryneedle.policy`, :mod:`dryneedle.protocol` and
:mod:`._input`, :mod:`._documents`, :mod:`._validate`.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Any, Final

import attrs

from dryneedle.findings import Decision, Finding, Severity
from dryneedle.policy import Policy
from dryneedle.records import _input
from dryneedle.records._documents import DEFAULT_MAX_RECORD_BYTES, BadInput, jsonl_records
from dryneedle.records._validate import Validator

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["CHUNK_RECORDS", "ChunkResult", "Summary", "default_jobs", "run"]

CHUNK_RECORDS: Final = 2000
"""Records per chunk handed to a worker."""

try:
    import orjson as _orjson

    def dumps(data: Any) -> bytes:
        """Serialise one report compactly (orjson when installed; same bytes as the stdlib)."""
        return _orjson.dumps(data)

    _loads: Callable[[bytes], Any] = _orjson.loads
    _encode: Callable[[Any], bytes] = _orjson.dumps

except ImportError:  # pragma: no cover - the stdlib gives the same bytes

    def dumps(data: Any) -> bytes:
        """Serialise one report compactly (orjson when installed; same bytes as the stdlib)."""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    _loads = json.loads
    _encode_str = json.encoder.encode_basestring  # what json.dumps writes for a str (no ASCII)

    def _encode(value: str | None) -> bytes:
        """A record id (a string or ``None``) as JSON, as :func:`dumps` writes it."""
        return b"null" if value is None else _encode_str(value).encode("utf-8")


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


@attrs.define
class ChunkResult:
    """What validating one chunk gives back.

    Attributes:
        tails: Per record, its serialised JSON report *without* the leading
            ``{"index":N,"line":L,`` (known only once earlier chunks are counted).
        sources: The input name of the chunk.
        summary: Counts over the chunk (before series findings).
        keys: ``(position in chunk, patient id, series summary)`` for each record whose
            patient and session were readable, in order; dates as ordinals.
        size: Bytes of input consumed (for progress).
        rel_lines: Per record, its line: relative to the chunk's first line (JSONL blocks) or
            absolute (JSON array elements).
        newlines: Lines in the block (JSONL), or ``None`` (JSON array).
        lines: The full report lines, filled in by the main process.
    """

    tails: list[bytes]
    source: str
    summary: Summary
    keys: list[tuple[int, str, Any]]
    size: int
    rel_lines: list[int]
    newlines: int | None
    lines: list[bytes] = attrs.field(factory=list)


_worker: Validator | None = None


def _init_worker(policy: Policy, on: date | None, checks: tuple[str, ...]) -> None:
    global _worker  # noqa: PLW0603 - one validator per worker process, set once
    _worker = Validator(policy=policy, on=on, checks=checks)


@attrs.frozen
class _Range:
    """A byte range of a plain JSONL file, read by the worker itself (whole lines)."""

    path: str
    start: int
    end: int
    max_bytes: int

    def records(self, lines_read: list[int]) -> Iterator[tuple[int, bytes | BadInput]]:
        """``(line relative to the range, text)`` of each record of the range."""
        with open(self.path, "rb") as f:
            f.seek(self.start)
            yield from jsonl_records(f, self.max_bytes, first_line=0, at_start=self.start == 0,
                                     limit=self.end - self.start, lines_read=lines_read)


Payload = _Range | list[tuple[int, bytes | BadInput]]


class _FindingBytes:
    """Each finding's serialised JSON, cached by identity (the rules memoise their findings).

    An entry holds the finding itself, so its ``id`` cannot be reused while it is cached; the
    cache is emptied when it reaches :attr:`LIMIT` entries (bounded memory).
    """

    LIMIT: Final = 1 << 15

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Finding, bytes, str, str]] = {}

    def get(self, f: Finding) -> tuple[Finding, bytes, str, str]:
        """Return ``(finding, its JSON bytes, code, severity)``."""
        entry = self._cache.get(id(f))
        if entry is None or entry[0] is not f:
            if len(self._cache) >= self.LIMIT:
                self._cache.clear()
            entry = (f, dumps(f.as_dict()), f.code, f.severity.value)
            self._cache[id(f)] = entry
        return entry


_FINDING_BYTES = _FindingBytes()
_VALID: Final = {True: b"true", False: b"false"}
# decision -> (its JSON, its key in the summary)
_DECISIONS: Final[dict[Decision | None, tuple[bytes, str]]] = {
    None: (b"null", "none"), **{d: (dumps(d.value), d.value) for d in Decision}}


def process_chunk(
    source: str,
    payload: Payload,
    multi: bool,
    validator: Validator | None = None,
) -> ChunkResult:
    """Validate one chunk (without series checks) and serialise its reports.

    Each report's tail is assembled from its parts: the same bytes as ``dumps`` of
    :meth:`RecordReport.as_dict` without ``index`` and ``line`` (the JSON encoding of a dict
    is the concatenation of its members' encodings), with each finding serialised once and
    cached. The summary is counted once per chunk.

    Args:
        source: Input name.
        payload: A byte range of a plain JSONL file for the worker to read, or
            ``(line, text)`` records read by the input layer (absolute lines).
        multi: Whether to add the ``file`` key (several inputs).
        validator: The validator (default: this worker process's).
    """
    v = validator if validator is not None else _worker
    assert v is not None
    tails: list[bytes] = []
    lines: list[int] = []
    keys: list[tuple[int, str, Any]] = []
    codes: list[str] = []
    severities: list[str] = []
    decisions: list[str] = []
    valid = 0
    lines_read: list[int] = []
    records = payload.records(lines_read) if isinstance(payload, _Range) else payload
    check = v.check_keyed
    cache = _FINDING_BYTES._cache  # each finding's bytes, by identity (see _FindingBytes)
    cached = cache.get
    finding_bytes = _FINDING_BYTES.get
    end = b'],"file":' + dumps(source) + b"}" if multi else b"]}"
    decision_bytes = _DECISIONS
    encode = _encode
    join = b"".join
    comma = b",".join
    valid_bytes = _VALID
    add_tail = tails.append
    add_line = lines.append
    add_key = keys.append
    add_code = codes.append
    add_severity = severities.append
    add_decision = decisions.append
    for pos, (line, data) in enumerate(records):
        report, key = check(data, 0, line)
        dbytes, dkey = decision_bytes[report.decision]
        add_decision(dkey)
        findings = report.findings
        if findings:
            parts = []
            for f in findings:
                entry = cached(id(f))
                if entry is None or entry[0] is not f:
                    entry = finding_bytes(f)
                parts.append(entry[1])
                add_code(entry[2])
                add_severity(entry[3])
            found = comma(parts)
        else:  # a quarter of clean records: no list to build
            found = b""
        is_valid = report.valid
        if is_valid:
            valid += 1
        add_tail(join((
            b'"record_id":', encode(report.record_id), b',"valid":',
            valid_bytes[is_valid], b',"decision":', dbytes, b',"findings":[', found, end,
        )))
        add_line(line)
        if key is not None:
            pid, (day, number, count, tolerated) = key
            add_key((pos, pid, (day.toordinal(), number, count, tolerated)))
    summary = Summary()
    summary.records = len(tails)
    summary.valid = valid
    summary.findings.update(codes)
    summary.severities.update(severities)
    summary.decisions.update(decisions)
    if isinstance(payload, _Range):
        return ChunkResult(tails, source, summary, keys, payload.end - payload.start, lines,
                           lines_read[0] if lines_read else 0)
    return ChunkResult(tails, source, summary, keys, 0, lines, None)


def _ranges(name: str, block_bytes: int, max_bytes: int) -> Iterator[_Range] | None:
    """Cut a plain, regular, non-empty file into byte ranges of whole lines (else None).

    Files whose size reads 0 although they have content (``/proc``, some virtual file
    systems), pipes and compressed files are streamed by the input layer instead.
    """
    if name == "-" or _input.input_size(name) is None:
        return None
    try:
        with _input.open_input(name) as probe:
            if not isinstance(probe.raw, io.FileIO):
                return None  # compressed (recognised by its magic number)
    except _input.InputError:
        return None  # the input layer says why, below
    size = os.path.getsize(name)

    def cut() -> Iterator[_Range]:
        with open(name, "rb") as stream:
            start = 0
            while start < size:
                end = start + block_bytes
                if end >= size:
                    end = size
                else:
                    stream.seek(end)
                    while True:
                        piece = stream.read(1 << 16)
                        if not piece:
                            end = size
                            break
                        nl = piece.find(b"\n")
                        if nl >= 0:
                            end += nl + 1
                            break
                        end += len(piece)
                yield _Range(name, start, end, max_bytes)
                start = end

    return cut()


@attrs.frozen
class _Failure:
    """An input became unreadable after the chunks before it (raised once they are written)."""

    error: Exception


def _chunks(
    names: list[str], chunk_records: int, *, ranges: bool, fmt: str | None, max_bytes: int
) -> Iterator[tuple[str, Payload, bool] | _Failure]:
    """Yield ``(source, payload, first)`` per chunk, then a :class:`_Failure` if reading failed.

    ``first`` marks the first chunk of each input (where line numbers start again). With
    ``ranges``, a plain JSONL file is only cut into byte ranges (the workers read them with
    the input layer's own JSONL reader); every other input is read here, by the input layer.
    """
    block_bytes = max(1, chunk_records) * 1024  # about chunk_records records of 1 kB
    for name in names:
        first = True
        cuts = None
        if ranges and _input.input_format(name, fmt) == "jsonl":
            cuts = _ranges(name, block_bytes, max_bytes)
        if cuts is not None:
            for r in cuts:
                yield name, r, first
                first = False
            continue
        items: list[tuple[int, bytes | BadInput]] = []
        size = 0
        try:
            for item in _input.read_items([name], fmt, max_bytes):
                items.append((item.line, item.data))
                size += len(item.data) if isinstance(item.data, bytes) else 0
                if len(items) >= chunk_records or size >= block_bytes:
                    yield name, items, first
                    items, first, size = [], False, 0
        except (OSError, EOFError) as exc:
            if items:
                yield name, items, first
            yield _Failure(exc)
            return
        if items:
            yield name, items, first


def _finish(result: ChunkResult, start: int, line_base: int, series: Any,
            summary: Summary) -> None:
    """Number the chunk's reports, run the series checks over its keys, patch what they add."""
    if result.newlines is None:  # array elements carry their own line numbers
        line_base = 0
    lines = [
        b'{"index":%d,"line":%d,%b\n' % (i, line_base + n, tail)
        for i, n, tail in zip(range(start, start + len(result.tails)), result.rel_lines,
                              result.tails, strict=True)
    ]
    for pos, patient_id, key in result.keys:
        extra = series.add_summary(patient_id, key)
        if not extra:
            continue
        d = _loads(lines[pos])
        before_valid = d["valid"]
        d["findings"].extend(f.as_dict() for f in extra)
        d["valid"] = before_valid and all(f.severity is not Severity.ERROR for f in extra)
        if before_valid and not d["valid"]:
            result.summary.valid -= 1
        for f in extra:
            result.summary.findings[f.code] += 1
            result.summary.severities[f.severity.value] += 1
        lines[pos] = dumps(d) + b"\n"
    result.lines = lines
    result.tails = []
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
    input_format: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[tuple[ChunkResult, Summary]]:
    """Validate every record of the inputs; yield each chunk's results in input order.

    Args:
        names: Input names (``-`` for stdin).
        policy: The policy.
        on: Evaluation date for screening (default: each session's date).
        checks: Which checks to run (``series`` runs in the final pass here).
        jobs: Worker processes (1: validate in this process).
        chunk_records: About how many records make a chunk.
        progress: Called with ``(records done, bytes consumed)`` after each chunk.
        input_format: ``jsonl`` or ``json`` for every input (default: from each name).
        max_record_bytes: Larger records are skipped unread and reported.

    Raises:
        InputError: When an input cannot be read; every report of the records read before
            it has been yielded first, the same for any number of jobs.

    Yields:
        ``(chunk result, running summary)`` per chunk, in order; ``result.lines`` holds the
        report lines.
    """
    from dryneedle.protocol import SeriesIndex  # noqa: PLC0415

    checks = tuple(checks)
    per_record = tuple(c for c in checks if c != "series")
    series = SeriesIndex(policy=policy) if "series" in checks else _NoSeries()
    summary = Summary()
    multi = len(names) > 1
    done = consumed = 0

    line_base = 1

    def finish(result: ChunkResult, first: bool) -> tuple[ChunkResult, Summary]:
        nonlocal done, consumed, line_base
        if first:
            line_base = 1
        _finish(result, done, line_base, series, summary)
        if result.newlines is not None:
            line_base += result.newlines
        done += len(result.lines)
        consumed += result.size
        if progress is not None:
            progress(done, consumed)
        return result, summary

    failure: _Failure | None = None
    if jobs <= 1:
        validator = Validator(policy=policy, on=on, checks=per_record)
        for chunk in _chunks(names, chunk_records, ranges=True, fmt=input_format,
                             max_bytes=max_record_bytes):
            if isinstance(chunk, _Failure):
                failure = chunk
                break
            source, payload, first = chunk
            yield finish(process_chunk(source, payload, multi, validator), first)
    else:
        # Imported only here: multiprocessing costs a one-job run start-up time.
        from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

        fresh = attrs.evolve(policy)  # no caches travel to the workers
        with ProcessPoolExecutor(
            max_workers=jobs, initializer=_init_worker, initargs=(fresh, on, per_record)
        ) as pool:
            pending: deque[tuple[Future[ChunkResult], bool]] = deque()
            for chunk in _chunks(names, chunk_records, ranges=True, fmt=input_format,
                                 max_bytes=max_record_bytes):
                if isinstance(chunk, _Failure):
                    failure = chunk
                    break
                source, payload, first = chunk
                pending.append((pool.submit(process_chunk, source, payload, multi), first))
                while len(pending) > 2 * jobs:
                    fut, was_first = pending.popleft()
                    yield finish(fut.result(), was_first)
            while pending:  # every chunk read before a failure is written, as with one job
                fut, was_first = pending.popleft()
                yield finish(fut.result(), was_first)
    if failure is not None:
        error = failure.error
        if isinstance(error, _input.InputError):
            raise error
        raise _input.InputError(str(error)) from error


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
