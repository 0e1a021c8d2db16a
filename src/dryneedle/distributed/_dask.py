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

import copy
import pickle
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from types import MappingProxyType
from typing import Any, Final, NamedTuple, cast

from dryneedle.distributed._core import (
    SERIES,
    Checked,
    PolicyRef,
    SeriesPass,
    check_block,
    finish,
    import_extra,
    loads,
    local_names,
    series_findings,
)

__all__ = [
    "DASK_CONFIG",
    "DEFAULT_BLOCKSIZE",
    "MAX_BUCKETS",
    "Block",
    "Source",
    "as_reports",
    "blocks",
    "default_buckets",
    "graph",
    "ranges",
    "read_source",
    "stream_to_files",
    "write_lines",
]

DEFAULT_BLOCKSIZE: Final = "16 MiB"
"""Default bytes per partition of a plain JSONL file (about 11 000 records of 1.5 kB)."""

DASK_CONFIG: Final[Mapping[str, Any]] = MappingProxyType({
    # The worker's statistical profiler walks the running task's stack every 10 ms.
    "distributed.worker.profile.enabled": False,
    # Every scheduler, nanny and worker wakes its event loop every 20 ms to check its health.
    "distributed.admin.tick.interval": "1s",
    # psutil samples of each process (CPU, memory, network, disk) for the dashboard: 500 ms.
    "distributed.admin.system-monitor.interval": "2s",
    # The nanny polls its worker's memory every 100 ms (the limits still apply, checked less often).
    "distributed.worker.memory.monitor-interval": "500ms",
    # No block is queued on a busy worker ahead of the small tasks that pass a checked block's
    # keys to the client (write_reports): the client gets them as soon as the block is done.
    "distributed.scheduler.worker-saturation": 1.0,
})
"""Dask settings for a cluster that runs validations (``dask.config.set`` before starting it)."""

MAX_BUCKETS: Final = 64
"""Most buckets of patients for the series shuffle by default."""


def default_buckets(blocks: int) -> int:
    """Return the buckets of patients for ``blocks`` blocks (the series shuffle's default).

    One per 8 blocks, at least 2 (when there are two blocks), at most :data:`MAX_BUCKETS`: two
    at least, so that the series pass (after every block is checked, before any
    report is numbered) runs on two workers at once.

    >>> [default_buckets(n) for n in (1, 2, 9, 17, 10_000)]
    [1, 2, 2, 3, 64]
    """
    return max(1, min(blocks, max(2, -(-blocks // 8)), MAX_BUCKETS))

class Source(NamedTuple):
    """Where a block's bytes are: read by the task that checks them, never a result of its own.

    Attributes:
        file: The file (an ``fsspec.core.OpenFile``: picklable, opened on the worker).
        offset: First byte of the range; the block starts at the first line that starts there
            or after (``fsspec.utils.read_block`` with the delimiter LF).
        length: Bytes of the range (the block ends at the end of the line at its end), or
            ``None`` for the whole file (a compressed file).
        version: The file system's key of the file's version (``fs.ukey``: a changed file
            gives new task keys, as in ``dask.bytes``).
    """

    file: Any
    offset: int
    length: int | None
    version: str


def read_source(source: Source) -> bytes:
    """Return a block's bytes: whole lines, as ``dask.bytes.read_bytes`` cuts a file."""
    read_block = import_extra("fsspec.utils").read_block
    with copy.copy(source.file) as f:  # a copy: one open file per task, as dask.bytes does
        if source.length is None:
            return cast("bytes", f.read())
        return cast("bytes", read_block(f, source.offset, source.length, b"\n"))


def ranges(size: int, blocksize: int) -> list[tuple[int, int]]:
    """Cut ``size`` bytes into ranges of about ``blocksize``, as ``dask.bytes.read_bytes`` does.

    The spare bytes are spread over the ranges, so they are of nearly equal size; an empty
    file has none.

    >>> ranges(10, 4)
    [(0, 5), (5, 5)]
    >>> ranges(3, 4), ranges(0, 4)
    ([(0, 3)], [])
    """
    if size == 0:
        return []
    step = size / (size // blocksize) if size % blocksize and size > blocksize else blocksize
    offsets, place = [0], 0.0
    while size - place > step * 2 - 1:
        place += step
        offsets.append(int(place))
    return [(o, end - o) for o, end in zip(offsets, [*offsets[1:], size], strict=True)]


Block = tuple[str, str, bool, Source]  # (label, path, first block of its file, its bytes)


def blocks(
    urlpath: str | Sequence[str], blocksize: int | str | None, storage_options: Mapping[str, Any]
) -> list[Block]:
    """Return every block of the inputs, in input order (files in the order given)."""
    fsspec_core, fsspec_utils = import_extra("fsspec.core"), import_extra("fsspec.utils")
    size_of = import_extra("dask.utils").parse_bytes
    names = local_names(urlpath)
    if names is None:
        fs, _, names = fsspec_core.get_fs_token_paths(
            urlpath if isinstance(urlpath, str) else list(urlpath), mode="rb",
            storage_options=dict(storage_options),
        )
    else:
        fs = import_extra("fsspec").filesystem("file")
    if not names:
        msg = f"{urlpath!r} matches no files"
        raise FileNotFoundError(msg)
    step = None if blocksize is None else int(size_of(blocksize))
    out: list[Block] = []
    for name in names:
        compression = fsspec_utils.infer_compression(name)
        file = fsspec_core.OpenFile(fs, name, compression=compression)
        version = str(fs.ukey(name))
        if compression or step is None:
            out.append((name, name, True, Source(file, 0, None, version)))
            continue
        for i, (offset, length) in enumerate(ranges(fs.info(name)["size"], step)):
            out.append((name, name, i == 0, Source(file, offset, length, version)))
    return out


def _check_source(source: Source, **options: Any) -> Checked:
    """Read a block and check it in one task: its bytes are never a task result (nor moved)."""
    return check_block(read_source(source), **options)


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
        buckets: Buckets of patients for the series shuffle (default:
            :func:`default_buckets`). Each bucket's keys are sent from every block (one small
            transfer each), and each bucket's findings (sparse) to every worker.
        series_only: Return the series findings per block instead of the report lines.
    """
    delayed, tokenize = import_extra("dask").delayed, import_extra("dask.base").tokenize
    series = SERIES in checks
    n = len(parts)
    b = (max(1, default_buckets(n) if buckets is None else buckets)) if series else 1
    check = delayed(_check_source, pure=True)
    checked = [
        check(source, policy=policy, on=on, checks=checks, file=label if with_file else None,
              buckets=b, at_start=first,
              dask_key_name="check_block-" + tokenize(source, policy, on, checks, with_file,
                                                       b, first))
        for label, _, first, source in parts
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



# --- streaming to files on a distributed client (the command line's pipeline on workers) --------


def write_lines(lines: Iterable[bytes | str], fs: Any, path: str) -> int:
    """Write lines (each ending in LF) to ``path`` on ``fs``, a few thousand per write call."""
    n = 0
    batch: list[bytes] = []
    with fs.open(path, "wb") as fh:
        for line in lines:
            batch.append(line if isinstance(line, bytes) else line.encode("utf-8"))
            n += 1
            if len(batch) >= 4096:
                fh.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            fh.write(b"\n".join(batch) + b"\n")
    return n


def _meta(part: Checked) -> bytes:
    """What the client needs of a checked block: its counts and series keys (one blob)."""
    return pickle.dumps((len(part.tails), part.lines, part.keys[0]),
                        protocol=pickle.HIGHEST_PROTOCOL)


def _finish_write(part: Checked, index: int, line: int, found: bytes, fs: Any, path: str) -> int:
    lines, _ = finish(part, index, line, pickle.loads(found))  # noqa: S301 - our own blob
    return write_lines(lines, fs, path)


def stream_to_files(
    client: Any,
    parts: list[Block],
    fs: Any,
    paths: Sequence[str],
    *,
    policy: PolicyRef,
    on: date | None,
    checks: tuple[str, ...],
    with_file: bool,
) -> int:
    """Check every block on the workers and write its reports to ``paths``; return the records.

    The command line's pipeline, with the workers of a ``distributed`` client for processes:
    every block is checked where it is read (all submitted at once; the scheduler hands them
    out as workers free up), and, block after block in input order, the client fetches only
    the block's counts and series keys, runs the series checks over them and submits the
    block's numbering and writing, which depends on the checked block alone and so runs on
    the worker that holds it (the reports never move). Finishing overlaps with checking, and
    no step waits for every block.
    """
    series = SeriesPass(policy) if SERIES in checks else None
    tokenize = import_extra("dask.base").tokenize
    n = len(parts)
    checked = [  # in input order (higher priority first), as the client consumes them
        client.submit(_check_source, source, policy=policy, on=on, checks=checks,
                      file=label if with_file else None, buckets=1, at_start=first,
                      key="check_block-" + tokenize(source, policy, on, checks, with_file,
                                                     first), priority=n - k)
        for k, (label, _, first, source) in enumerate(parts)
    ]
    metas = [client.submit(_meta, c, key="meta-" + c.key, priority=n + 1) for c in checked]
    written: list[Any] = []
    index = line = 0
    for k, ((_, _, first, _), c, m) in enumerate(zip(parts, checked, metas, strict=True)):
        records, lines, keys = pickle.loads(m.result())  # noqa: S301 - our own blob
        if first:
            line = 1
        found = series.add(keys) if series is not None else []
        written.append(client.submit(
            _finish_write, c, index, line,
            pickle.dumps([found] if found else [], protocol=pickle.HIGHEST_PROTOCOL), fs,
            paths[k], key="write-" + tokenize(c.key, paths[k]), pure=False, priority=n + 1))
        checked[k] = metas[k] = None  # released once written
        index += records
        line += lines
    return sum(client.gather(written))
