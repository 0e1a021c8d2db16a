"""The Dask engine: the graph of the three passes of :mod:`._core` over blocks of JSONL files.

Per block (a byte range of a plain file cut at line ends, or a whole compressed file, read on
the worker): :func:`~._core.check_block` (one task: tails, validity and series keys, by bucket
of patients). Then, all small: the offsets of every block (one task over the blocks' counts),
the series keys shuffled by bucket (``block x bucket`` getitem tasks that run where the block's
result lives, so only keys move), :func:`~._core.series_findings` per bucket, the findings
split back by block, and :func:`~._core.finish` per block on the worker that holds its tails.
Every intermediate result is used by several tasks of one graph and computed once.

May import: :mod:`._core` (and the optional ``dask`` and ``fsspec``, imported when a function
runs).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Final

from dryneedle.distributed._core import (
    SERIES,
    Checked,
    PolicyRef,
    check_block,
    finish,
    import_extra,
    loads,
    local_names,
    series_findings,
)

__all__ = ["DEFAULT_BLOCKSIZE", "MAX_BUCKETS", "Block", "as_reports", "blocks", "graph"]

DEFAULT_BLOCKSIZE: Final = "32 MiB"
"""Default bytes per partition of a plain JSONL file (about 20 000 records of 1.5 kB)."""

MAX_BUCKETS: Final = 64
"""Most buckets of patients for the series shuffle (by default one per 8 blocks)."""

Block = tuple[str, str, bool, Any]  # (label, fsspec path, first block of its file, delayed bytes)


def blocks(
    urlpath: str | Sequence[str], blocksize: int | str | None, storage_options: Mapping[str, Any]
) -> list[Block]:
    """Return every block of the inputs, in input order (files in the order given)."""
    read_bytes = import_extra("dask.bytes").read_bytes
    fsspec_core, fsspec_utils = import_extra("fsspec.core"), import_extra("fsspec.utils")
    names = local_names(urlpath)
    if names is None:
        _, _, names = fsspec_core.get_fs_token_paths(
            urlpath if isinstance(urlpath, str) else list(urlpath), mode="rb",
            storage_options=dict(storage_options),
        )
    if not names:
        msg = f"{urlpath!r} matches no files"
        raise FileNotFoundError(msg)
    out: list[Block] = []
    for name in names:
        compression = fsspec_utils.infer_compression(name)
        _, per_file = read_bytes(
            name, delimiter=b"\n", sample=False, compression=compression,
            blocksize=None if compression else blocksize, **storage_options,
        )
        for i, block in enumerate(per_file[0]):
            out.append((name, name, i == 0, block))
    return out


# --- small tasks (module-level: they run on the workers) ----------------------------------------


def _counts(part: Checked) -> tuple[int, int]:
    return len(part.tails), part.lines


def _offsets(firsts: Sequence[bool], *counts: tuple[int, int]) -> list[tuple[int, int]]:
    """``(index_start, line_base)`` of every block: prefix sums, lines restart per file."""
    out = []
    index, line = 0, 1
    for first, (records, lines) in zip(firsts, counts, strict=True):
        if first:
            line = 1
        out.append((index, line))
        index += records
        line += lines
    return out


# Keys and findings travel between workers as one pickled blob each: Dask would otherwise
# serialise a list of many small tuples element by element (seconds for 100 000 keys).


def _piece(part: Checked, bucket: int) -> bytes:
    return pickle.dumps(part.keys[bucket], protocol=pickle.HIGHEST_PROTOCOL)


def _bucket(policy: PolicyRef, *pieces: bytes) -> bytes:
    found = series_findings(policy, enumerate(pickle.loads(p) for p in pieces))  # noqa: S301 - ours
    return pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)


def _found(buckets: Sequence[bytes], block: int) -> list[Any]:
    out = []
    for blob in buckets:
        found = pickle.loads(blob).get(block)  # noqa: S301 - our own blobs
        if found:
            out.append(found)
    return out


def _finish_lines(part: Checked, offsets: list[tuple[int, int]], block: int,
                  *buckets: bytes) -> list[str]:
    index, line = offsets[block]
    lines, _ = finish(part, index, line, _found(buckets, block))
    return [x.decode("utf-8") for x in lines]


def _finish_series(part: Checked, offsets: list[tuple[int, int]], block: int, file: str,
                   *buckets: bytes) -> list[dict[str, Any]]:
    """Only the records with series findings: ``{"index", "line", "file", "findings"}``."""
    index, line = offsets[block]
    return [
        {"index": index + pos, "line": line + part.rel_lines[pos], "file": file,
         "findings": found}
        for per_bucket in _found(buckets, block) for pos, found in per_bucket
    ]


def as_reports(lines: Iterable[str], file: str) -> list[dict[str, Any]]:
    """Parse report lines into dicts with a ``file`` key (last, as the command line puts it)."""
    out = []
    for text in lines:
        d = loads(text)
        if "file" not in d:
            d["file"] = file
        out.append(d)
    return out


def graph(
    parts: list[Block],
    *,
    policy: PolicyRef,
    on: date | None,
    checks: tuple[str, ...],
    with_file: bool,
    buckets: int | None = None,
    series_only: bool = False,
) -> list[Any]:
    """Return one delayed result per block: its report lines, or its series findings.

    Args:
        parts: The blocks (:func:`blocks`).
        policy: The policy.
        on: Screening date.
        checks: The checks (series run across blocks when included).
        with_file: Whether reports carry the ``file`` key.
        buckets: Buckets of patients for the series shuffle (default: one per 8 blocks, at
            most :data:`MAX_BUCKETS`). Each bucket's keys are sent from every block (one small
            transfer each), and each bucket's findings (sparse) to every worker.
        series_only: Return the series findings per block instead of the report lines.
    """
    delayed = import_extra("dask").delayed
    series = SERIES in checks
    n = len(parts)
    b = max(1, min(-(-n // 8), MAX_BUCKETS) if buckets is None else buckets) if series else 1
    check = delayed(check_block, pure=True)
    checked = [
        check(data, policy=policy, on=on, checks=checks, file=label if with_file else None,
              buckets=b, at_start=first)
        for label, _, first, data in parts
    ]
    counts = [delayed(_counts, pure=True)(c) for c in checked]
    offsets = delayed(_offsets, pure=True)([first for _, _, first, _ in parts], *counts)
    found: list[Any] = []
    if series:
        piece, bucket = delayed(_piece, pure=True), delayed(_bucket, pure=True)
        found = [bucket(policy, *[piece(c, j) for c in checked]) for j in range(b)]
    if series_only:
        done = delayed(_finish_series, pure=True)
        return [done(c, offsets, k, parts[k][0], *found) for k, c in enumerate(checked)]
    done = delayed(_finish_lines, pure=True)
    return [done(c, offsets, k, *found) for k, c in enumerate(checked)]

