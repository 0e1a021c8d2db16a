"""Validate record files on a Dask cluster, when one machine is not enough (extra ``dask``).

This module is a tested recipe, not a second validator: every partition is checked by the
public, picklable :func:`validate_partition` (a thin wrapper of
:func:`dryneedle.records.validate_lines`), so the reports are exactly those of
``dryneedle validate`` on the same files, including their ``index`` and ``line``.

.. code-block:: python

    import json

    from dask.distributed import Client
    from dryneedle.distributed import validate_bag

    client = Client()  # a local cluster; or Client("tcp://scheduler:8786")
    reports = validate_bag("exports/2026-*.jsonl", blocksize="64 MiB")
    reports.map(json.dumps).to_textfiles("reports/part-*.jsonl")
    invalid = reports.filter(lambda r: not r["valid"]).count().compute()

Any engine that maps a function over partitions of lines (Spark's ``mapPartitions``,
:mod:`multiprocessing`, Ray) can use :func:`validate_partition` the same way.

**Why Dask, not Spark.** dryneedle is a pure-Python library whose users are clinical data teams
working in Python. Dask is pip-installable and pure Python (no JVM, no cluster to stand up for
a first run), runs the same code on a laptop (threads or local processes) and on a cluster,
reads local files, S3 or HDFS through ``fsspec``, and its local cluster makes the recipe testable
in the test suite. Spark (local mode) would need a JVM and would run Python in separate worker
processes behind Py4J; a team that already runs Spark can map :func:`validate_partition` with
``rdd.mapPartitions`` and get the same reports. Dask stays an optional extra
(``pip install dryneedle[dask]``) and is imported only when a function of this module runs.

**Partitions, ``index``, ``line`` and ``file``.** Plain JSONL files are cut into blocks of about
``blocksize`` bytes at line boundaries (``dask.bytes.read_bytes``); compressed files (``.gz``,
...) cannot be cut and are one partition each, read whole. Each report has the keys of the CLI
report plus ``file`` (the path as Dask names it), and its numbers mean exactly what they mean in
``dryneedle validate FILE...``: ``line`` is the 1-based line in *its file* and ``index`` the
0-based position of the record among all records of all files (in the order given, globs
sorted; blank lines are skipped, never reported). Lines are read as the CLI reads them (split
at LF, line endings removed), so LF and CRLF files give the same reports. To number them, a
cheap task per block counts its lines (on the block already in memory, no second read) and the
offsets are chained as prefix sums, so a block's reports never wait for other blocks'
validation. The bag's partitions are in input order; sorting by ``index`` restores it after
any reshuffle. JSON-array inputs are not supported here (use JSONL).

**Series checks** (``series.*``: session numbering, same-day sessions, needle counts after a
poorly tolerated session) compare the sessions of one patient, which may sit in different
partitions. When ``"series"`` is in ``checks`` (the default) :func:`validate_bag` runs them as
a separate, exact pass (:func:`series_bag`): the lines are shuffled into buckets by a stable
hash of the patient id, each patient's records are checked in input order, and the (sparse)
series findings are merged into the reports by ``index`` (:func:`with_series`). The result
equals a single-process run over the concatenated files. The shuffle moves the input lines once
across the cluster and the merged reports wait for it; for very large inputs, write the
reports of ``checks=LOCAL_CHECKS`` and the :func:`series_bag` findings separately instead. If
your partitions already hold whole patients in chronological order (one file per patient
group, ``blocksize=None``), map :func:`validate_partition` with
``checks=dryneedle.records.CHECKS`` and no shuffle is needed.

**Policies** travel to the workers by value (their fields; rebuilt once per worker process), so
any :class:`~dryneedle.policy.Policy` works, built-in or a clinic's own.

**Memory.** Each task holds one block and its reports; size ``blocksize`` so that a block's
reports (a few times the block) fit a worker's memory share.

>>> from dryneedle.distributed import validate_partition
>>> [(r["index"], r["line"], r["valid"])
...  for r in validate_partition(['{"format": "dryneedle.session/1"}', "", "[]"])]
[(0, 1, False), (1, 3, False)]
"""

from __future__ import annotations

import importlib
import io
import operator
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Final, cast

import attrs

from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.records import CHECKS, Validator, loads, validate_lines

if TYPE_CHECKING:  # pragma: no cover - typing only
    import dask.bag

__all__ = [
    "DEFAULT_BLOCKSIZE",
    "LOCAL_CHECKS",
    "series_bag",
    "validate_bag",
    "validate_partition",
    "with_series",
]

LOCAL_CHECKS: Final = ("structure", "screening", "protocol")
"""The checks that need one record only (everything but ``series``)."""

DEFAULT_BLOCKSIZE: Final = "64 MiB"
"""Default bytes per partition of a plain JSONL file (about 40 000 records of 1.5 kB)."""

_SERIES: Final = "series"


def validate_partition(
    lines: Iterable[str | bytes],
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = LOCAL_CHECKS,
    start_index: int = 0,
    start_line: int = 1,
) -> list[dict[str, Any]]:
    """Validate one partition of JSONL lines and return its JSON-ready reports.

    The per-partition function for any engine (``bag.map_partitions``, Spark
    ``mapPartitions``, a process pool): module-level, so it pickles by reference. It is
    :func:`dryneedle.records.validate_lines` with a first line number: ``line`` counts the
    lines from ``start_line`` (blank lines included, as in a file) and ``index`` counts the
    records from ``start_index`` (blank lines are skipped). Line endings (LF, CRLF) are removed
    first, as ``dryneedle validate`` does, so the reports equal the CLI's. Series checks only
    run when ``"series"`` is in ``checks``, and then see this partition only.

    Args:
        lines: The partition's lines (``str`` or ``bytes``, with or without the newline).
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`dryneedle.records.CHECKS` to run; by default all but series.
        start_index: ``index`` of the partition's first record.
        start_line: ``line`` of the partition's first line (in its file).

    Returns:
        One report dict per non-blank line, in order (the CLI's JSON-lines shape).
    """
    return validate_lines(lines, policy=policy, on=on, checks=checks,
                          start_index=start_index, start_line=start_line)


# --- policies travel by value -----------------------------------------------------------------


@attrs.frozen
class _PolicyRef:
    """A picklable stand-in for a policy: its init fields, rebuilt (once per process) on use."""

    fingerprint: str
    fields: Mapping[str, Any]

    @classmethod
    def of(cls, policy: Policy) -> _PolicyRef:
        fields = {str(a.alias): getattr(policy, a.name) for a in attrs.fields(Policy) if a.init}
        return cls(policy.fingerprint, fields)

    def resolve(self) -> Policy:
        policy = _POLICY_CACHE.get(self.fingerprint)
        if policy is None:
            if len(_POLICY_CACHE) >= 16:
                _POLICY_CACHE.clear()
            policy = _POLICY_CACHE[self.fingerprint] = Policy(**self.fields)
        return policy


_POLICY_CACHE: dict[str, Policy] = {
    DEFAULT_POLICY.fingerprint: DEFAULT_POLICY,
}


# --- per-block tasks (module-level: they run on the workers) ------------------------------------


def _split(data: bytes) -> list[bytes]:
    """Split a block into lines as the CLI reads a file: at LF, line endings removed."""
    return [line.rstrip(b"\r\n") for line in io.BytesIO(data).readlines()]


def _count_block(data: bytes) -> tuple[int, int]:
    """Return ``(lines, records)`` of a block: physical lines, and the non-blank ones."""
    lines = _split(data)
    return len(lines), sum(1 for line in lines if line.strip())


def _next_offsets(
    previous: tuple[int, int], counts: tuple[int, int], new_file: bool
) -> tuple[int, int]:
    """Return ``(index, line)`` offsets of a block from those of the block before it."""
    index, line = previous
    n_lines, n_records = counts
    return index + n_records, 0 if new_file else line + n_lines


def _validate_block(
    data: bytes,
    offsets: tuple[int, int],
    *,
    file: str,
    policy: _PolicyRef,
    on: date | None,
    checks: tuple[str, ...],
) -> list[dict[str, Any]]:
    index, line = offsets
    reports = validate_partition(_split(data), policy=policy.resolve(), on=on, checks=checks,
                                 start_index=index, start_line=line + 1)
    for report in reports:
        report["file"] = file
    return reports


def _patient_id(text: bytes) -> str | None:
    """Return the raw ``patient.patient_id`` of a line when it is a non-empty string."""
    try:
        data = loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    patient = data.get("patient") if data.__class__ is dict else None
    pid = patient.get("patient_id") if patient.__class__ is dict else None
    return pid if pid.__class__ is str and pid else None


_Keyed = tuple[int, int, int, str, bytes]  # (bucket, index, line, file, text)


def _keyed_block(
    data: bytes, offsets: tuple[int, int], *, file: str, buckets: int
) -> list[_Keyed]:
    """Return the block's records that name a patient, keyed by a bucket of the patient id.

    The bucket is a stable hash (CRC-32, the same in every process) of the patient id, so all
    records of a patient land in the same bucket; a bucket holds many patients.
    """
    index, line = offsets
    out: list[_Keyed] = []
    for n, text in enumerate(_split(data), start=line + 1):
        if not text.strip():
            continue
        pid = _patient_id(text)
        if pid is not None:
            out.append((zlib.crc32(pid.encode("utf-8")) % buckets, index, n, file, text))
        index += 1
    return out


def _series_of_bucket(
    group: tuple[int, list[_Keyed]], policy: _PolicyRef
) -> list[dict[str, Any]]:
    """Check a bucket's records in input order; return the records' series findings.

    Series state is kept per patient, so checking several patients' records interleaved in
    input order gives each patient's findings exactly.
    """
    validator = Validator(policy=policy.resolve(), checks=("structure", _SERIES))
    out: list[dict[str, Any]] = []
    for _, index, line, file, text in sorted(group[1], key=operator.itemgetter(1)):
        report = validator.check(text, index, line)
        found = [f.as_dict() for f in report.findings if f.code.startswith("series.")]
        if found:
            out.append({"index": index, "line": line, "file": file, "findings": found})
    return out


def _series_index(parts: Sequence[Iterable[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    return {item["index"]: item["findings"] for part in parts for item in part}


def _merge_partition(
    reports: Iterable[dict[str, Any]], series: Mapping[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    out = []
    for report in reports:
        extra = series.get(report["index"])
        if extra:
            report = {  # noqa: PLW2901 - a new dict; the input may be shared by Dask
                **report,
                "valid": report["valid"] and all(f["severity"] != "error" for f in extra),
                "findings": [*report["findings"], *extra],
            }
        out.append(report)
    return out


# --- graph construction -------------------------------------------------------------------------


def _import(name: str) -> Any:
    """Import a module of the optional ``dask`` extra, with an actionable error."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = (f"dryneedle.distributed needs the optional 'dask' extra ({name} is missing): "
               "pip install 'dryneedle[dask]'")
        raise ImportError(msg) from exc


def _blocks(
    urlpath: str | Sequence[str], blocksize: int | str | None, storage_options: Mapping[str, Any]
) -> list[tuple[str, bool, Any]]:
    """Return ``(file, first block of its file, delayed bytes)`` for every block, in order."""
    read_bytes = _import("dask.bytes").read_bytes
    fsspec_core, fsspec_utils = _import("fsspec.core"), _import("fsspec.utils")
    _, _, paths = fsspec_core.get_fs_token_paths(
        urlpath if isinstance(urlpath, str) else list(urlpath), mode="rb",
        storage_options=dict(storage_options),
    )
    if not paths:
        msg = f"{urlpath!r} matches no files"
        raise FileNotFoundError(msg)
    out: list[tuple[str, bool, Any]] = []
    for path in paths:
        compression = fsspec_utils.infer_compression(path)
        _, per_file = read_bytes(
            path, delimiter=b"\n", sample=False, compression=compression,
            blocksize=None if compression else blocksize, **storage_options,
        )
        for i, block in enumerate(per_file[0]):
            out.append((path, i == 0, block))
    return out


def _offsets(blocks: list[tuple[str, bool, Any]]) -> list[Any]:
    """Return the delayed ``(index, line)`` offsets of every block (chained prefix sums)."""
    delayed = _import("dask").delayed
    count = delayed(_count_block)
    step = delayed(_next_offsets)
    offsets: list[Any] = []
    previous: Any = (0, 0)
    for k, (_, first, _) in enumerate(blocks):
        if k:
            previous = step(previous, count(blocks[k - 1][2]), first)
        offsets.append(previous)
    return offsets


def _checked(checks: Iterable[str]) -> tuple[str, ...]:
    chosen = frozenset(checks)
    unknown = chosen - set(CHECKS)
    if unknown:
        msg = f"unknown checks {sorted(unknown)}; choose from {CHECKS}"
        raise ValueError(msg)
    return tuple(c for c in CHECKS if c in chosen)


def validate_bag(
    urlpath: str | Sequence[str],
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = CHECKS,
    blocksize: int | str | None = DEFAULT_BLOCKSIZE,
    storage_options: Mapping[str, Any] | None = None,
) -> dask.bag.Bag:
    """Validate JSONL record files on Dask; return a lazy bag of report dicts.

    The bag holds one report per record, as ``dryneedle validate`` prints them (plus
    ``file``); ``index`` and ``line`` are exact (see the module documentation). Nothing runs
    until the bag is computed or written.

    Args:
        urlpath: A path, glob or list of paths (any ``fsspec`` URL: local, ``s3://``, ...).
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`dryneedle.records.CHECKS` to run. With ``"series"`` (the
            default) the series checks run as an exact pass over all partitions
            (:func:`series_bag`, one shuffle by patient).
        blocksize: Bytes per partition of a plain file (``None``: one partition per file).
            Compressed files are always one partition.
        storage_options: Options for the file system (credentials, ...).

    Returns:
        A ``dask.bag.Bag`` of report dicts, partitions in input order.

    Raises:
        ValueError: On an unknown check.
        FileNotFoundError: When ``urlpath`` matches no file.
    """
    chosen = _checked(checks)
    db, delayed = _import("dask.bag"), _import("dask").delayed
    options = dict(storage_options or {})
    blocks = _blocks(urlpath, blocksize, options)
    offsets = _offsets(blocks)
    ref = _PolicyRef.of(policy)
    local = tuple(c for c in chosen if c != _SERIES)
    task = delayed(_validate_block)
    reports = db.from_delayed([
        task(block, off, file=path, policy=ref, on=on, checks=local)
        for (path, _, block), off in zip(blocks, offsets, strict=True)
    ])
    if _SERIES not in chosen:
        return cast("dask.bag.Bag", reports)
    return with_series(reports, _series(blocks, offsets, ref))


def series_bag(
    urlpath: str | Sequence[str],
    *,
    policy: Policy = DEFAULT_POLICY,
    blocksize: int | str | None = DEFAULT_BLOCKSIZE,
    storage_options: Mapping[str, Any] | None = None,
) -> dask.bag.Bag:
    """Run the series checks over all files, exactly, on Dask.

    Records that name a patient are shuffled into buckets by a stable hash of the patient id
    (``Bag.groupby``, task shuffle; as many buckets as input blocks), so all records of a
    patient meet in one bucket; each bucket's records are then checked in input order, so the
    findings equal those of a single-process run over the concatenated files.

    Args:
        urlpath: A path, glob or list of paths (any ``fsspec`` URL).
        policy: The policy (severities of the ``series.*`` rules).
        blocksize: Bytes per input partition of a plain file (``None``: one per file).
        storage_options: Options for the file system.

    Returns:
        A bag of ``{"index", "line", "file", "findings"}`` dicts, one per record that has
        series findings (usually few), in no particular order.
    """
    blocks = _blocks(urlpath, blocksize, dict(storage_options or {}))
    return cast("dask.bag.Bag", _series(blocks, _offsets(blocks), _PolicyRef.of(policy)))


def _series(blocks: list[tuple[str, bool, Any]], offsets: list[Any], ref: _PolicyRef) -> Any:
    db, delayed = _import("dask.bag"), _import("dask").delayed
    task = delayed(_keyed_block)
    buckets = max(1, len(blocks))
    keyed = db.from_delayed([
        task(block, off, file=path, buckets=buckets)
        for (path, _, block), off in zip(blocks, offsets, strict=True)
    ])
    groups = keyed.groupby(operator.itemgetter(0), shuffle="tasks")
    return groups.map(_series_of_bucket, ref).flatten()


def with_series(reports: dask.bag.Bag, series: dask.bag.Bag) -> dask.bag.Bag:
    """Merge series findings (from :func:`series_bag`) into reports, by ``index``.

    The series findings are appended to the report's findings (where a single-process run puts
    them) and ``valid`` turns false when one of them is an error. The series findings are
    gathered into one mapping shared by every partition: they are sparse (one entry per record
    with a series finding).

    Args:
        reports: Reports computed without the series checks.
        series: The output of :func:`series_bag` over the same files.

    Returns:
        The merged reports, partitions in the order of ``reports``.
    """
    delayed = _import("dask").delayed
    index = delayed(_series_index)(cast("Any", series).to_delayed())
    return cast("dask.bag.Bag", cast("Any", reports).map_partitions(_merge_partition, index))
