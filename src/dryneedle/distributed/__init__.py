"""Validate record files on Dask or Spark when one machine is not enough (extras dask, spark).

These are tested recipes, not second validators: every record is checked by the same
:class:`dryneedle.records.Validator` as ``dryneedle validate``, and the reports are *byte for
byte* the command line's on the same files, series checks included, ``index`` and ``line``
exact.

.. code-block:: python

    import dask
    from dask.distributed import Client
    from dryneedle.distributed import DASK_CONFIG, report_lines, write_jsonl, write_reports

    dask.config.set(DASK_CONFIG)  # optional: recommended settings for a validation cluster
    client = Client()  # a local cluster; or Client("tcp://scheduler:8786")
    write_reports("exports/2026-*.jsonl", "reports/")  # part-00000.jsonl, ...: the CLI's output

    # or lazily: a bag of report lines, then the same files
    lines = report_lines("exports/2026-*.jsonl", blocksize="16 MiB")
    write_jsonl(lines, "reports/")

.. code-block:: python

    from pyspark.sql import SparkSession
    from dryneedle.distributed import validate_spark

    spark = SparkSession.builder.getOrCreate()
    reports = validate_spark(spark, "exports/2026-*.jsonl")  # index, line, file, valid, report
    reports.orderBy("index").select("report").write.text("reports")

**How it scales.** Three passes, the same for both engines (one private core module):

1. *Per partition* (a block of whole lines, read on the worker): each line is parsed once and
   checked for structure, screening and protocol; the partition keeps its serialised reports
   (without ``index``/``line``) and, per record, a **series key** -- patient id, session date,
   number, needle count, tolerated -- about 100 bytes. The record text never leaves the worker.
2. *Series*: only the series keys move. The series checks (session numbering, same-day
   sessions, needle counts after a poorly tolerated session) run over them in input order:
   per bucket of patients (a stable hash of the patient id) on Spark and in the lazy Dask
   bags, in the client with :func:`write_reports`.
3. *Per partition again*: the reports are numbered from the partition's offsets (prefix sums
   of the line and record counts of the partitions before it, lines restarting per file) and
   the few series findings are appended to their reports, where a single-process run puts
   them. The lazy Dask bags are one graph (each intermediate computed once); Spark persists
   the first pass. :func:`write_reports` is the ``--jobs`` pipeline on Dask workers: the client
   takes the blocks' keys in input order and has the worker that holds each block number and
   write it at once (no step waits for every block; reports never move between workers).

**``index``, ``line`` and ``file``** mean what they mean in ``dryneedle validate FILE...``:
``line`` is the 1-based line in *its file* (blank lines count, and are not reported), ``index``
the 0-based position among all records of all files (in the order given, globs sorted). Lines
are cut at LF and a trailing CR is removed, as the CLI does. ``file`` is present when there
are several input files (the CLI's rule); :func:`validate_bag` always adds it. Plain JSONL
files are cut into blocks of about ``blocksize`` bytes; compressed files are one partition.
JSON-array inputs are not supported here (use JSONL).

**Policies** travel to the workers by value (their fields; rebuilt once per worker process), so
any :class:`~dryneedle.policy.Policy` works, built-in or a clinic's own.

**Other engines** (Ray, a process pool) can map :func:`validate_partition` over partitions that
hold whole patients in order; it is :func:`dryneedle.records.validate_lines` with first line
and index numbers.

>>> from dryneedle.distributed import validate_partition
>>> [(r["index"], r["line"], r["valid"])
...  for r in validate_partition(['{"format": "dryneedle.session/1"}', "", "[]"])]
[(0, 1, False), (1, 3, False)]

May import: :mod:`dryneedle.policy`, :mod:`dryneedle.protocol`, :mod:`dryneedle.records`
(public names) and its own private modules (``_core`` lowest, then ``_dask`` and ``_spark``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Final, cast

from dryneedle.distributed import _core, _dask
from dryneedle.distributed._spark import validate_spark
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.records import CHECKS, validate_lines

if TYPE_CHECKING:  # pragma: no cover - typing only
    import dask.bag

__all__ = [
    "DASK_CONFIG",
    "DEFAULT_BLOCKSIZE",
    "LOCAL_CHECKS",
    "report_lines",
    "series_bag",
    "validate_bag",
    "validate_partition",
    "validate_spark",
    "with_series",
    "write_jsonl",
    "write_reports",
]

LOCAL_CHECKS: Final = _core.LOCAL_CHECKS
"""The checks that need one record only (everything but ``series``)."""

DASK_CONFIG: Final = _dask.DASK_CONFIG
"""Recommended Dask settings for a cluster that runs validations.

Apply them with ``dask.config.set(DASK_CONFIG)`` before the cluster starts (workers started by
a nanny inherit them). They turn off the worker's statistical profiler (a stack sample of the
running task every 10 ms) and make the event-loop health check (every 20 ms in every process),
the system monitor and the nanny's memory polling less frequent, and queue no extra block on
a busy worker (so a checked block's keys reach :func:`write_reports`'s client at once). On a
busy 2-core machine they saved 1-13 % of the recipe's CPU time (``benchmarks/distributed.py
--dask-config both``). The reports are the same bytes with or without them.
"""

DEFAULT_BLOCKSIZE: Final = _dask.DEFAULT_BLOCKSIZE
"""Default bytes per partition of a plain JSONL file (about 11 000 records of 1.5 kB)."""


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

    A per-partition function for any engine (``bag.map_partitions``, Spark
    ``mapPartitions``, a process pool): module-level, so it pickles by reference. It is
    :func:`dryneedle.records.validate_lines` with a first line number: ``line`` counts the
    lines from ``start_line`` (blank lines included, as in a file) and ``index`` counts the
    records from ``start_index`` (blank lines are skipped). Series checks only run when
    ``"series"`` is in ``checks``, and then see this partition only.

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


def report_lines(
    urlpath: str | Sequence[str],
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = CHECKS,
    blocksize: int | str | None = DEFAULT_BLOCKSIZE,
    storage_options: Mapping[str, Any] | None = None,
    buckets: int | None = None,
) -> dask.bag.Bag:
    """Validate JSONL files on Dask; return a lazy bag of report lines, as the CLI prints them.

    Each element is one report as a JSON text (no newline), byte for byte the line
    ``dryneedle validate FILE...`` prints for that record; partitions are blocks in input
    order, so the lines in order (:func:`write_jsonl`) are the command line's output.

    Args:
        urlpath: A path, glob or list of paths (any ``fsspec`` URL: local, ``s3://``, ...).
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`dryneedle.records.CHECKS` to run. With ``"series"`` (the
            default) the series checks run over all partitions (a shuffle of series keys).
        blocksize: Bytes per partition of a plain file (``None``: one partition per file).
            Compressed files are always one partition.
        storage_options: Options for the file system (credentials, ...).
        buckets: Buckets of patients for the series shuffle (default: one per 8 blocks, at
            least 2, at most 64).

    Returns:
        A ``dask.bag.Bag`` of ``str``.

    Raises:
        ValueError: On an unknown check.
        FileNotFoundError: When ``urlpath`` matches no file.
    """
    bag, _ = _lines_bag(urlpath, policy, on, checks, blocksize, storage_options, buckets, None)
    return cast("dask.bag.Bag", bag)


def _lines_bag(urlpath: str | Sequence[str], policy: Policy, on: date | None,
               checks: Iterable[str], blocksize: int | str | None,
               storage_options: Mapping[str, Any] | None, buckets: int | None,
               with_file: bool | None) -> tuple[Any, list[_dask.Block]]:
    chosen = _core.checked(checks)
    db = _core.import_extra("dask.bag")
    parts = _dask.blocks(urlpath, blocksize, dict(storage_options or {}))
    files = {label for label, _, _, _ in parts}
    tasks = _dask.graph(parts, policy=_core.PolicyRef.of(policy), on=on, checks=chosen,
                        with_file=len(files) > 1 if with_file is None else with_file,
                        buckets=buckets)
    return db.from_delayed(tasks), parts


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

    The reports of :func:`report_lines`, parsed, each with a ``file`` key (the input's name).

    Args:
        urlpath: A path, glob or list of paths (any ``fsspec`` URL: local, ``s3://``, ...).
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`dryneedle.records.CHECKS` to run (``"series"``: across all
            partitions, see :func:`report_lines`).
        blocksize: Bytes per partition of a plain file (``None``: one partition per file).
        storage_options: Options for the file system (credentials, ...).

    Returns:
        A ``dask.bag.Bag`` of report dicts, partitions in input order.

    Raises:
        ValueError: On an unknown check.
        FileNotFoundError: When ``urlpath`` matches no file.
    """
    bag, parts = _lines_bag(urlpath, policy, on, checks, blocksize, storage_options, None, True)
    delayed = _core.import_extra("dask").delayed
    db = _core.import_extra("dask.bag")
    parse = delayed(_dask.as_reports, pure=True)
    return cast("dask.bag.Bag", db.from_delayed([
        parse(part, label) for part, (label, _, _, _) in zip(bag.to_delayed(), parts,
                                                              strict=True)
    ]))


def series_bag(
    urlpath: str | Sequence[str],
    *,
    policy: Policy = DEFAULT_POLICY,
    blocksize: int | str | None = DEFAULT_BLOCKSIZE,
    storage_options: Mapping[str, Any] | None = None,
) -> dask.bag.Bag:
    """Run only the series checks over all files, exactly, on Dask.

    The series keys of the records (never the records) are shuffled into buckets by a stable
    hash of the patient id and checked in input order, so the findings equal those of a
    single-process run over the concatenated files.

    Args:
        urlpath: A path, glob or list of paths (any ``fsspec`` URL).
        policy: The policy (severities of the ``series.*`` rules).
        blocksize: Bytes per input partition of a plain file (``None``: one per file).
        storage_options: Options for the file system.

    Returns:
        A bag of ``{"index", "line", "file", "findings"}`` dicts, one per record that has
        series findings (usually few), partitions in input order.
    """
    db = _core.import_extra("dask.bag")
    parts = _dask.blocks(urlpath, blocksize, dict(storage_options or {}))
    return cast("dask.bag.Bag", db.from_delayed(_dask.graph(
        parts, policy=_core.PolicyRef.of(policy), on=None, checks=("structure", _core.SERIES),
        with_file=False, series_only=True)))


def with_series(reports: dask.bag.Bag, series: dask.bag.Bag) -> dask.bag.Bag:
    """Merge series findings (from :func:`series_bag`) into reports, by ``index``.

    For reports computed separately with ``checks=LOCAL_CHECKS``. The series findings are
    appended to the report's findings (where a single-process run puts them) and ``valid``
    turns false when one of them is an error. They are gathered into one mapping shared by
    every partition (they are sparse); :func:`report_lines` does the same without gathering.

    Args:
        reports: Reports computed without the series checks.
        series: The output of :func:`series_bag` over the same files.

    Returns:
        The merged reports, partitions in the order of ``reports``.
    """
    delayed = _core.import_extra("dask").delayed
    index = delayed(_series_index)(cast("Any", series).to_delayed())
    return cast("dask.bag.Bag", cast("Any", reports).map_partitions(_merge_partition, index))


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


def write_jsonl(
    lines: dask.bag.Bag, folder: str, *, storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Write a bag of report lines as JSONL files ``part-00000.jsonl``, ... and return them.

    Each partition becomes one file, each element one line ending in LF (a partition of no
    record gives an empty file), so the files in name order hold the command line's output.

    Args:
        lines: A bag of ``str`` (:func:`report_lines`).
        folder: The folder (any ``fsspec`` URL); created when missing.
        storage_options: Options for the file system.

    Returns:
        The paths written, in order.
    """
    dask = _core.import_extra("dask")
    fsspec = _core.import_extra("fsspec")
    fs, root = fsspec.core.url_to_fs(folder, **dict(storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    paths = [f"{root.rstrip('/')}/part-{i:05d}.jsonl" for i in range(lines.npartitions)]
    write = dask.delayed(_write_part, pure=False)
    dask.compute(*[write(part, fs, path)
                   for part, path in zip(cast("Any", lines).to_delayed(), paths, strict=True)])
    return paths


def _write_part(lines: Iterable[str], fs: Any, path: str) -> int:
    return _dask.write_lines(lines, fs, path)


def write_reports(
    urlpath: str | Sequence[str],
    folder: str,
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = CHECKS,
    blocksize: int | str | None = DEFAULT_BLOCKSIZE,
    storage_options: Mapping[str, Any] | None = None,
    client: Any = None,
) -> list[str]:
    """Validate JSONL files on a Dask cluster and write the reports; return the files written.

    The files are those of ``write_jsonl(report_lines(...), folder)``, byte for byte (one
    ``part-NNNNN.jsonl`` per block, together the command line's output), computed the way
    ``dryneedle validate --jobs N`` computes them: every block is read and checked on a
    worker; in input order, the client receives each block's counts and series keys only (a
    few dozen bytes a record), runs the series checks, and has the worker that holds the
    block's reports number and write them. Writing overlaps with checking (no step waits for
    every block) and the reports never move between workers. The series checks run in the
    client, as they run in the command line's main process; :func:`report_lines` spreads them
    over the workers instead (for very many patients), at the cost of a step that waits for
    every block.

    Args:
        urlpath: A path, glob or list of paths (any ``fsspec`` URL).
        folder: The output folder (any ``fsspec`` URL); created when missing.
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`dryneedle.records.CHECKS` to run.
        blocksize: Bytes per partition of a plain file (``None``: one partition per file).
        storage_options: Options for both file systems (credentials, ...).
        client: A ``distributed.Client`` (default: the current one).

    Returns:
        The paths written, in order.

    Raises:
        ValueError: On an unknown check, or when there is no client.
        FileNotFoundError: When ``urlpath`` matches no file.
    """
    chosen = _core.checked(checks)
    options = dict(storage_options or {})
    if client is None:
        client = _core.import_extra("distributed").default_client()
    parts = _dask.blocks(urlpath, blocksize, options)
    fs, root = _core.import_extra("fsspec").core.url_to_fs(folder, **options)
    fs.makedirs(root, exist_ok=True)
    paths = [f"{root.rstrip('/')}/part-{i:05d}.jsonl" for i in range(len(parts))]
    _dask.stream_to_files(client, parts, fs, paths, policy=_core.PolicyRef.of(policy), on=on,
                          checks=chosen, with_file=len({p[0] for p in parts}) > 1)
    return paths
