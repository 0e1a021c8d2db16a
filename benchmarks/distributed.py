"""Dask on a 2-worker local cluster against ``dryneedle validate --jobs 2`` and ``--jobs 1``.

Usage::

    python benchmarks/distributed.py [--records 200000] [--seed 7] [--blocksize "32 MiB"]
                                     [--workers 2] [--out FILE] [--keep FILE]

Generates one JSONL file of ``--records`` records with ``examples/generate.py`` (about 1.5 kB a
record: 200 000 records are about 300 MB; 5 % invalid; patients' courses interleaved, so each
patient's sessions span blocks), then, in one run, on the same file:

* ``cli --jobs 1`` and ``cli --jobs 2``: ``python -m dryneedle validate FILE --quiet --jobs N``
  with standard output to a file (every report written);
* ``dask``: :func:`dryneedle.distributed.report_lines` then
  :func:`~dryneedle.distributed.write_jsonl` on a ``LocalCluster`` of ``--workers`` worker
  processes with one thread each (started before the clock starts; its start-up time is
  printed apart), every report written to part files.

For each it prints the wall-clock time, the records per second, the ratio to ``--jobs 2`` and
the peak resident memory (RSS) of every process involved, sampled every 50 ms with psutil (the
CLI's main process and its workers; the Dask workers). It checks that the Dask part files,
concatenated, are byte for byte the CLI's output (and ``--jobs 2``'s the same as ``--jobs 1``'s)
and writes every number, with the environment, to ``--out`` (default
``benchmarks/results/distributed-latest.json``).

SPEC §9 target: Dask at least as fast as ``--jobs 2`` and under 500 MB per worker. On a shared
machine, compare ratios from the same run; the load average is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This script's name would shadow the ``distributed`` package (Dask's) for itself and for the
# worker processes it starts: drop its folder from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
GENERATOR = ROOT / "examples" / "generate.py"


def write_records(path: Path, n: int, *, seed: int) -> dict[str, int]:
    """Write ``n`` generated records to ``path`` (streaming); return records and bytes."""
    spec = importlib.util.spec_from_file_location("generate", GENERATOR)
    if spec is None or spec.loader is None:  # pragma: no cover - the path is ours
        msg = f"cannot load {GENERATOR}"
        raise ImportError(msg)
    gen = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate", gen)
    spec.loader.exec_module(gen)
    with path.open("w", encoding="utf-8") as fh:
        for line in gen.generate_lines(n, seed=seed):
            fh.write(line)
            fh.write("\n")
    return {"records": n, "bytes": path.stat().st_size}


class PeakSampler:
    """Samples the RSS of a set of processes (and, optionally, their children) every 50 ms."""

    def __init__(self, pids: Iterable[int], *, children: bool = False) -> None:
        self.roots = [psutil.Process(p) for p in pids]
        self.children = children
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            procs = list(self.roots)
            if self.children:
                for root in self.roots:
                    with contextlib.suppress(psutil.Error):
                        procs += root.children(recursive=True)
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[p.pid] = max(self.peaks.get(p.pid, 0), rss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def run_cli(path: Path, out: Path, jobs: int) -> dict[str, Any]:
    """Time ``python -m dryneedle validate PATH --quiet --jobs N > OUT``; sample its RSS."""
    with out.open("wb") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dryneedle", "validate", str(path), "--quiet",
             "--jobs", str(jobs)], stdout=fh, stderr=subprocess.PIPE,
        )
        with PeakSampler([proc.pid], children=True) as sampler:
            _, err = proc.communicate()
        seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        msg = f"dryneedle validate --jobs {jobs} failed ({proc.returncode}): {err[-2000:]!r}"
        raise RuntimeError(msg)
    main_peak = sampler.peaks.pop(proc.pid, 0)
    return {"seconds": seconds, "peak_rss_mib": {"main": main_peak / 2**20,
            "workers": sorted((v / 2**20 for v in sampler.peaks.values()), reverse=True)},
            "sha256": _digest([out])}


def run_dask(path: Path, out: Path, workers: int, blocksize: str) -> dict[str, Any]:
    """Time report_lines + write_jsonl on a fresh local cluster; sample the workers' RSS."""
    from dask.distributed import Client, LocalCluster  # noqa: PLC0415

    from dryneedle.distributed import report_lines, write_jsonl  # noqa: PLC0415

    t0 = time.perf_counter()
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=40) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        startup = time.perf_counter() - t0
        pids = list(client.run(os.getpid).values())
        with PeakSampler(pids) as sampler:
            start = time.perf_counter()
            lines = report_lines(str(path), blocksize=blocksize)
            parts = write_jsonl(lines, str(out))
            seconds = time.perf_counter() - start
        n_parts = lines.npartitions
    return {"seconds": seconds, "startup_seconds": startup, "partitions": n_parts,
            "blocksize": blocksize,
            "peak_rss_mib": {"workers": sorted((v / 2**20 for v in sampler.peaks.values()),
                                               reverse=True)},
            "sha256": _digest([Path(p) for p in parts])}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    out = {}
    for name in ("dryneedle", "dask", "distributed", "orjson", "msgspec", "psutil"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 when the outputs differ)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000,
                        help="records in the file (default 200000, about 300 MB)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--blocksize", default=None,
                        help="Dask bytes per partition (default: the library's default)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers and CLI jobs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed-latest.json")
    parser.add_argument("--keep", type=Path, help="generate the input here and keep it "
                        "(reused when it exists)")
    args = parser.parse_args(argv)
    from dryneedle.distributed import DEFAULT_BLOCKSIZE  # noqa: PLC0415

    blocksize = args.blocksize or DEFAULT_BLOCKSIZE
    with tempfile.TemporaryDirectory(prefix="dryneedle-dist-") as tmp:
        path = args.keep or Path(tmp) / "records.jsonl"
        if path.exists():
            info = {"records": sum(1 for _ in path.open("rb")), "bytes": path.stat().st_size}
        else:
            print(f"generating {args.records} records ...", file=sys.stderr)
            info = write_records(path, args.records, seed=args.seed)
        print(f"file: {info['records']:,} records, {info['bytes'] / 2**20:.0f} MiB",
              file=sys.stderr)
        results: dict[str, dict[str, Any]] = {}
        for jobs in (1, args.workers):
            print(f"cli --jobs {jobs} ...", file=sys.stderr)
            results[f"cli --jobs {jobs}"] = run_cli(path, Path(tmp) / f"cli-{jobs}.jsonl", jobs)
        print(f"dask ({args.workers} workers, blocksize {blocksize}) ...", file=sys.stderr)
        results["dask"] = run_dask(path, Path(tmp) / "dask", args.workers, blocksize)
    reference = results["cli --jobs 1"]["sha256"]
    same = {name: r["sha256"] == reference for name, r in results.items()}
    base = results[f"cli --jobs {args.workers}"]["seconds"]
    vs = f"vs --jobs {args.workers}"
    print(f"{'approach':<16} {'seconds':>8} {'records/s':>10} {vs:>11}"
          f"  peak RSS MiB (main; workers)   same bytes")
    for name, r in results.items():
        peaks = r["peak_rss_mib"]
        mem = (f"{peaks['main']:.0f}; " if "main" in peaks else "-; ") + ", ".join(
            f"{w:.0f}" for w in peaks["workers"])
        print(f"{name:<16} {r['seconds']:>8.1f} {info['records'] / r['seconds']:>10,.0f} "
              f"{base / r['seconds']:>10.2f}x  {mem:<30} {same[name]}")
    d = results["dask"]
    print(f"dask: {d['partitions']} partitions of {d['blocksize']}, cluster start-up "
          f"{d['startup_seconds']:.1f} s (not timed)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "file": info, "results": results, "same_bytes_as_cli": same,
        "environment": {"python": sys.version.split()[0], "platform": platform.platform(),
                        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                        "versions": _versions()},
    }, indent=2) + "\n", encoding="utf-8")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
