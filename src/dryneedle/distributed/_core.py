"""The engine-agnostic passes of the distributed recipes: one rule set, several engines.

Dask (:mod:`._dask`) and Spark (:mod:`._spark`) build different graphs from the same three
steps, each a plain, picklable function of small values:

1. :func:`check_lines` / :func:`check_block` -- *per partition*: parse every line once, run the
   per-record checks (structure, screening, protocol) and keep, per record, its serialised report
   *without* ``index`` and ``line`` (a "tail"), whether it is valid, and its **series key**
   (patient id, session date as an ordinal, number, needle count, tolerated). The record text
   never leaves the partition.
2. :func:`series_findings` -- *per bucket of patients*: the series checks over the keys of the
   records whose patients hash to the bucket, in input order (one
   :class:`~dryneedle.protocol.SeriesIndex`, whose state is per patient).
3. :func:`finish` -- *per partition again*: number the reports from the partition's offsets
   (prefix sums of the line and record counts of the partitions before it) and append the few
   series findings to their reports, exactly where ``dryneedle validate`` puts them (last).

The output lines are byte for byte those of ``dryneedle validate`` (orjson when installed,
else the standard library's compact JSON, the same bytes).

May import: :mod:`dryneedle.policy`, :mod:`dryneedle.protocol` and the public names of
:mod:`dryneedle.records`.
"""

from __future__ import annotations

import glob as _glob
import importlib
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, Final, NamedTuple

import attrs

from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.protocol import SeriesIndex
from dryneedle.records import CHECKS, DEFAULT_MAX_RECORD_BYTES, Validator, jsonl_line_record

__all__ = [
    "LOCAL_CHECKS",
    "SERIES",
    "Checked",
    "PolicyRef",
    "SeriesKey",
    "SeriesPass",
    "bucket_of",
    "check_block",
    "check_lines",
    "checked",
    "dumps",
    "finish",
    "import_extra",
    "iter_lines",
    "loads",
    "local_names",
    "series_findings",
]

LOCAL_CHECKS: Final = ("structure", "screening", "protocol")
"""The checks that need one record only (everything but ``series``)."""

SERIES: Final = "series"

try:
    import orjson as _orjson

    def dumps(data: Mapping[str, Any]) -> bytes:
        """Serialise a report compactly, as ``dryneedle validate`` writes it."""
        return _orjson.dumps(data)

    loads: Callable[[bytes | str], Any] = _orjson.loads

except ImportError:  # pragma: no cover - the stdlib gives the same bytes

    def dumps(data: Mapping[str, Any]) -> bytes:
        """Serialise a report compactly, as ``dryneedle validate`` writes it."""
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    loads = json.loads


def checked(checks: Iterable[str]) -> tuple[str, ...]:
    """Return the chosen checks in pipeline order; reject unknown names (ValueError)."""
    chosen = frozenset(checks)
    unknown = chosen - set(CHECKS)
    if unknown:
        msg = f"unknown checks {sorted(unknown)}; choose from {CHECKS}"
        raise ValueError(msg)
    return tuple(c for c in CHECKS if c in chosen)


def import_extra(name: str, extra: str = "dask") -> Any:
    """Import a module of an optional extra, with an actionable error."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = (f"dryneedle.distributed needs the optional {extra!r} extra ({name} is missing): "
               f"pip install 'dryneedle[{extra}]'")
        raise ImportError(msg) from exc


def local_names(urlpath: str | Sequence[str]) -> list[str] | None:
    """Expand local names as ``dryneedle validate`` does (globs sorted), or ``None`` for URLs."""
    names = [urlpath] if isinstance(urlpath, str) else list(urlpath)
    if any("://" in n for n in names):
        return None
    out: list[str] = []
    for name in names:
        if os.path.exists(name):
            out.append(name)
        else:
            out.extend(sorted(_glob.glob(name, recursive=True)))
    return out


# --- policies travel by value -----------------------------------------------------------------


@attrs.frozen
class PolicyRef:
    """A picklable stand-in for a policy: its init fields, rebuilt (once per process) on use."""

    fingerprint: str
    fields: Mapping[str, Any]

    @classmethod
    def of(cls, policy: Policy) -> PolicyRef:
        """Return the reference of a policy."""
        fields = {str(a.alias): getattr(policy, a.name) for a in attrs.fields(Policy) if a.init}
        return cls(policy.fingerprint, fields)

    def resolve(self) -> Policy:
        """Return the policy (built once per process and fingerprint)."""
        policy = _POLICY_CACHE.get(self.fingerprint)
        if policy is None:
            if len(_POLICY_CACHE) >= 16:
                _POLICY_CACHE.clear()
            policy = _POLICY_CACHE[self.fingerprint] = Policy(**self.fields)
        return policy


_POLICY_CACHE: dict[str, Policy] = {DEFAULT_POLICY.fingerprint: DEFAULT_POLICY}
_VALIDATORS: dict[tuple[str, date | None, tuple[str, ...]], Validator] = {}


def _validator(policy: PolicyRef, on: date | None, checks: tuple[str, ...]) -> Validator:
    """One validator per process and configuration (its caches warm up once, then stay)."""
    key = (policy.fingerprint, on, checks)
    v = _VALIDATORS.get(key)
    if v is None:
        if len(_VALIDATORS) >= 16:
            _VALIDATORS.clear()
        v = _VALIDATORS[key] = Validator(policy=policy.resolve(), on=on, checks=checks)
    return v


# --- 1. per partition: parse once, per-record checks, series keys -------------------------------

SeriesKey = tuple[int, str, tuple[int, int, int, bool]]
"""``(position in the partition, patient id, (date ordinal, number, needles, tolerated))``."""


class Checked(NamedTuple):
    """What the per-partition pass keeps of a partition (report text, never record text).

    Attributes:
        tails: Per record, its serialised report without the leading ``{"index":N,"line":L,``.
        rel_lines: Per record, its line relative to the partition's first line (0-based).
        valid: Per record, whether it is valid before the series checks.
        lines: Physical lines in the partition (newlines, for the next partition's offset).
        keys: The series keys, per bucket of patients (``buckets`` lists; one when not
            bucketed), each in input order.
    """

    tails: list[bytes]
    rel_lines: list[int]
    valid: list[bool]
    lines: int
    keys: list[list[SeriesKey]]


def iter_lines(data: bytes) -> Iterator[bytes]:
    r"""Yield the lines of a block as ``dryneedle validate`` reads them: cut at LF only.

    One line is copied at a time (not the whole block). A trailing ``\r`` is kept here and
    removed with the other JSON whitespace by :func:`check_lines`, as the input layer does.
    """
    start = 0
    find = data.find
    while True:
        end = find(b"\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start:end]
        start = end + 1


def bucket_of(patient_id: str, buckets: int) -> int:
    """Return the bucket of a patient: a stable hash (CRC-32, the same in every process)."""
    return zlib.crc32(patient_id.encode("utf-8", "surrogatepass")) % buckets


def check_lines(
    lines: Iterable[bytes | bytearray],
    *,
    policy: PolicyRef,
    on: date | None,
    checks: tuple[str, ...],
    file: str | None,
    buckets: int = 1,
    at_start: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Checked:
    """Validate a partition's lines with the per-record checks; keep tails and series keys.

    Args:
        lines: The partition's physical lines, without their LF (blank ones included).
        policy: The policy.
        on: Screening date (default: each session's own date).
        checks: The checks to run; with ``"series"`` the series keys are kept (the series
            checks themselves run later, over all partitions).
        file: The ``file`` key of each report, or ``None`` for none (one input file).
        buckets: Into how many buckets of patients to sort the series keys.
        at_start: Whether the first line is its input's first line (a BOM is removed).
        max_record_bytes: A longer line is reported (``structure.too_large``), not read.

    Each line is read as the input layer reads it
    (:func:`dryneedle.records.jsonl_line_record`), so every engine gives the CLI's reports.
    """
    series = SERIES in checks
    v = _validator(policy, on, tuple(c for c in checks if c != SERIES))
    tails: list[bytes] = []
    rel: list[int] = []
    valid: list[bool] = []
    keys: list[list[SeriesKey]] = [[] for _ in range(max(1, buckets))]
    n = -1
    for n, raw in enumerate(lines):
        text = jsonl_line_record(bytes(raw), max_record_bytes, first=at_start and n == 0)
        if text is None:
            continue
        report, key = v.check_keyed(text, 0, None)
        d = report.as_dict()
        del d["index"], d["line"]
        if file is not None:
            d["file"] = file
        if series and key is not None:
            pid, (day, number, count, tolerated) = key
            keys[bucket_of(pid, buckets) if buckets > 1 else 0].append(
                (len(tails), pid, (day.toordinal(), number, count, tolerated)))
        tails.append(dumps(d)[1:])
        rel.append(n)
        valid.append(report.valid)
    return Checked(tails, rel, valid, n + 1, keys)


def check_block(
    data: bytes,
    *,
    policy: PolicyRef,
    on: date | None,
    checks: tuple[str, ...],
    file: str | None,
    buckets: int = 1,
    at_start: bool = False,
) -> Checked:
    """:func:`check_lines` over a block of whole lines (bytes cut at line ends)."""
    result = check_lines(iter_lines(data), policy=policy, on=on, checks=checks, file=file,
                         buckets=buckets, at_start=at_start)
    return result._replace(lines=data.count(b"\n"))


# --- 2. per bucket: the series checks over the keys ---------------------------------------------


def series_findings(
    policy: PolicyRef, parts: Iterable[tuple[Any, Sequence[SeriesKey]]]
) -> dict[Any, list[tuple[int, list[dict[str, Any]]]]]:
    """Run the series checks over keys given in input order; return the findings by partition.

    Args:
        policy: The policy (severities of the ``series.*`` rules).
        parts: ``(partition id, its keys of this bucket)`` in input order of the partitions.

    Returns:
        Partition id -> ``(position in the partition, findings as dicts)`` of the records that
        have series findings (usually few).
    """
    series = SeriesPass(policy)
    out: dict[Any, list[tuple[int, list[dict[str, Any]]]]] = {}
    for part, keys in parts:
        found = series.add(keys)
        if found:
            out[part] = found
    return out


class SeriesPass:
    """The series checks over keys fed block after block, in input order (one process).

    Args:
        policy: The policy (severities of the ``series.*`` rules).
    """

    def __init__(self, policy: PolicyRef) -> None:
        self._index = SeriesIndex(policy=policy.resolve())

    def add(self, keys: Iterable[SeriesKey]) -> list[tuple[int, list[dict[str, Any]]]]:
        """Check the next keys; return ``(position, findings as dicts)`` of those with any."""
        out = []
        add = self._index.add_summary
        for pos, pid, summary in keys:
            found = add(pid, summary)  # type: ignore[arg-type]  # dates as ordinals
            if found:
                out.append((pos, [f.as_dict() for f in found]))
        return out


# --- 3. per partition: numbers and series findings ---------------------------------------------


def finish(
    checked_part: Checked,
    index_start: int,
    line_base: int,
    series: Iterable[Sequence[tuple[int, list[dict[str, Any]]]]] = (),
) -> tuple[list[bytes], list[bool]]:
    """Return a partition's report lines (no newline) and validity, numbered and complete.

    Args:
        checked_part: The partition's :class:`Checked`.
        index_start: ``index`` of its first record (records in the partitions before it).
        line_base: ``line`` of its first line (1 + lines before it in its file).
        series: Lists of ``(position, findings)`` (one per bucket) for this partition.
    """
    tails, rel, valid = checked_part.tails, checked_part.rel_lines, list(checked_part.valid)
    lines = [
        b'{"index":%d,"line":%d,%b' % (i, line_base + n, tail)
        for i, n, tail in zip(range(index_start, index_start + len(tails)), rel, tails,
                              strict=True)
    ]
    for found in series:
        for pos, extra in found:
            d = loads(lines[pos])
            d["findings"].extend(extra)
            d["valid"] = d["valid"] and all(f["severity"] != "error" for f in extra)
            valid[pos] = d["valid"]
            lines[pos] = dumps(d)
    return lines, valid
