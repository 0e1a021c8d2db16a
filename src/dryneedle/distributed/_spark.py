"""The Spark engine: the three passes of :mod:`._core` over the splits of JSONL files.

The files are read with Spark's text source, cut at LF only (``lineSep``), each line taken as
its raw bytes (the text column cast to binary: invalid UTF-8 stays invalid and is reported, as
by the CLI), with the split it comes from (``_metadata.file_path``, ``file_block_start``). Each
Spark partition holds whole splits; :func:`~._core.check_lines` runs once per split and the
result is persisted (memory and disk), because it is used twice: its counts (collected: one
pair per split) give every split's offsets, and its series keys are shuffled by bucket of
patients (``partitionBy``) to :func:`~._core.series_findings`; the series findings (sparse)
are collected and broadcast, and :func:`~._core.finish` numbers each split's reports.

May import: :mod:`dryneedle.policy`, :mod:`dryneedle.records` (public names) and :mod:`._core`
(and the optional ``pyspark``, imported when a function runs).
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from dryneedle.distributed._core import (
    SERIES,
    Checked,
    PolicyRef,
    bucket_of,
    check_lines,
    checked,
    finish,
    import_extra,
    local_names,
    series_findings,
)
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.records import CHECKS

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pyspark.sql

__all__ = ["validate_spark"]

SplitKey = tuple[int, int]  # (file position among the inputs, byte offset of the split)


def _normal(name: str) -> str:
    """A file's name as comparable with Spark's ``_metadata.file_path`` (a URI)."""
    parsed = urlparse(name)
    if parsed.scheme in ("", "file"):
        return os.path.normpath(os.path.abspath(unquote(parsed.path) if parsed.scheme
                                                else name))
    return name.rstrip("/")


def _check_partition(
    rows: Iterable[Any],
    *,
    files: Mapping[str, tuple[int, str]],
    policy: PolicyRef,
    on: date | None,
    checks: tuple[str, ...],
    multi: bool,
) -> Iterator[tuple[SplitKey, Checked]]:
    """Run the per-record checks over each split of a Spark partition."""
    for (path, start), group in itertools.groupby(rows, key=operator.itemgetter(1, 2)):
        ordinal, label = files.get(_normal(path), (len(files), path))
        part = check_lines((row[0] for row in group), policy=policy, on=on, checks=checks,
                           file=label if multi else None, at_start=start == 0)
        yield (ordinal, start), part


def _keys(item: tuple[SplitKey, Checked], buckets: int) -> Iterator[tuple[int, Any]]:
    split, part = item
    for pos, pid, summary in part.keys[0]:
        yield bucket_of(pid, buckets), (split, pos, pid, summary)


def _bucket(key: int) -> int:
    return key


def _series(items: Iterable[tuple[int, Any]], policy: PolicyRef) -> Iterator[Any]:
    ordered = sorted((v for _, v in items), key=operator.itemgetter(0, 1))
    parts = ((split, [(pos, pid, s) for _, pos, pid, s in group])
             for split, group in itertools.groupby(ordered, key=operator.itemgetter(0)))
    for split, found in series_findings(policy, parts).items():
        for pos, extra in found:
            yield split, pos, extra


def _rows(item: tuple[SplitKey, Checked], offsets: Any, series: Any,
          labels: Sequence[str]) -> Iterator[tuple[int, int, str, bool, str]]:
    split, part = item
    index, line = offsets.value[split]
    found = series.value.get(split)
    lines, valid = finish(part, index, line, [found] if found else ())
    label = labels[split[0]] if split[0] < len(labels) else ""
    for k, (text, ok) in enumerate(zip(lines, valid, strict=True)):
        yield index + k, line + part.rel_lines[k], label, ok, text.decode("utf-8")


def _offsets(counts: Iterable[tuple[SplitKey, int, int]]) -> dict[SplitKey, tuple[int, int]]:
    out: dict[SplitKey, tuple[int, int]] = {}
    index, line, current = 0, 1, -1
    for split, records, lines in sorted(counts):
        if split[0] != current:
            current, line = split[0], 1
        out[split] = (index, line)
        index += records
        line += lines
    return out


def validate_spark(
    spark: pyspark.sql.SparkSession,
    paths: str | Sequence[str],
    *,
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
    checks: Iterable[str] = CHECKS,
    buckets: int | None = None,
) -> pyspark.sql.DataFrame:
    """Validate JSONL files on Spark; return a DataFrame of the command line's reports.

    One row per record: ``index`` (long), ``line`` (long), ``file`` (string: the input's name),
    ``valid`` (boolean) and ``report`` (string), the JSON line ``dryneedle validate FILE...``
    prints for the record, byte for byte (with a ``file`` key only when there are several
    inputs, as the CLI does). ``reports.orderBy("index").select("report").write.text(out)``
    writes the CLI's output. The first pass runs now (two small actions: the splits' counts and
    the series findings) and is persisted for the returned DataFrame.

    Args:
        spark: The session.
        paths: A path, glob or list of paths (local names are expanded as the CLI does; other
            URIs are passed to Spark as they are).
        policy: The policy to apply.
        on: Evaluation date for screening; by default each session's own date.
        checks: Which of :data:`dryneedle.records.CHECKS` to run (``"series"``: across all
            splits, a shuffle of series keys by patient).
        buckets: Partitions of the series shuffle (default ``spark.sql.shuffle.partitions``).

    Returns:
        A ``pyspark.sql.DataFrame``.

    Raises:
        ValueError: On an unknown check.
        FileNotFoundError: When ``paths`` matches no file.
    """
    chosen = checked(checks)
    functions = import_extra("pyspark.sql.functions", "spark")
    types = import_extra("pyspark.sql.types", "spark")
    storage = import_extra("pyspark", "spark").StorageLevel
    names = local_names(paths)
    if names is None:
        names = [paths] if isinstance(paths, str) else list(paths)
    if not names:
        msg = f"{paths!r} matches no files"
        raise FileNotFoundError(msg)
    files = {_normal(n): (i, n) for i, n in enumerate(names)}
    ref = PolicyRef.of(policy)
    lines = spark.read.option("lineSep", "\n").text(names).select(
        functions.col("value").cast("binary"),
        functions.col("_metadata.file_path"),
        functions.col("_metadata.file_block_start"),
    )
    first = lines.rdd.mapPartitions(functools.partial(
        _check_partition, files=files, policy=ref, on=on, checks=chosen, multi=len(names) > 1,
    )).persist(storage.MEMORY_AND_DISK)
    sc = spark.sparkContext
    offsets = sc.broadcast(_offsets(first.map(_counts).collect()))
    found: dict[SplitKey, list[Any]] = {}
    if SERIES in chosen:
        n = buckets or int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
        for split, pos, extra in (
            first.flatMap(functools.partial(_keys, buckets=n))
            .partitionBy(n, _bucket)
            .mapPartitions(functools.partial(_series, policy=ref))
            .collect()
        ):
            found.setdefault(split, []).append((pos, extra))
    for items in found.values():
        items.sort(key=operator.itemgetter(0))
    series = sc.broadcast(found)
    schema = types.StructType([
        types.StructField("index", types.LongType(), False),
        types.StructField("line", types.LongType(), False),
        types.StructField("file", types.StringType(), False),
        types.StructField("valid", types.BooleanType(), False),
        types.StructField("report", types.StringType(), False),
    ])
    rows = first.flatMap(functools.partial(_rows, offsets=offsets, series=series,
                                           labels=names))
    return spark.createDataFrame(rows, schema)


def _counts(item: tuple[SplitKey, Checked]) -> tuple[SplitKey, int, int]:
    split, part = item
    return split, len(part.tails), part.lines
