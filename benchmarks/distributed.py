"""Dask on a 2-worker local cluster against ``dryneedle validate --jobs 2``, in interleaved rounds.

Usage::

    python benchmarks/distributed.py [--records 200000] [--rounds 3] [--seed 7]
                                     [--blocksize "32 MiB"] [--workers 2] [--jobs1]
                                     [--recipes stream,graph]
                                     [--dask-config recommended|default|both]
                                     [--out FILE] [--keep FILE]
    python benchmarks/distributed.py --smoke    # 2 000 records, one round (the tests run it)

Generates one JSONL file of ``--records`` records with ``examples/generate.py`` (about 1.5 kB a
record: 200 000 records are about 290 MB; 5 % invalid; patients' courses interleaved, so each
patient's sessions span blocks), then runs ``--rounds`` rounds on it. Each round runs every
approach once, in an order rotated from round to round, so that each ratio compares runs made
at nearly the same moment of a shared machine:

* ``cli --jobs 2`` (and ``cli --jobs 1`` with ``--jobs1``): ``python -m dryneedle validate FILE
  --quiet --jobs N`` in a fresh process, standard output to a file (every report written). Its
  time includes the interpreter's start-up and imports (about 0.4 s), as a user sees it.
* ``dask stream``: :func:`dryneedle.distributed.write_reports`, and ``dask graph``:
  :func:`~dryneedle.distributed.report_lines` then :func:`~dryneedle.distributed.write_jsonl`,
  each on a ``LocalCluster`` of ``--workers`` worker processes with one thread each, every
  report written to part files. A fresh cluster is started for each timed run, *before* the
  clock starts, and warmed (the workers import :mod:`dryneedle.distributed`): a data team
  starts its cluster once, so the cluster's start-up is reported apart (``startup_seconds``),
  never in the ratio. They apply :data:`dryneedle.distributed.DASK_CONFIG` (the recommended
  settings for a validation cluster); the ``(default config)`` variants (``--dask-config
  default`` or ``both``) run with Dask's defaults.

Per run it records the wall-clock time; the **CPU seconds** (user + system) of every process
of the approach -- for the CLI its process and its pool workers (``os.wait4``); for Dask the
worker processes and this process (where a ``LocalCluster`` runs the client, the scheduler and
the nannies; minus the memory sampler's own thread), which depends much less on the machine's
load than the wall time; the peak resident memory (RSS) of every process, sampled every 50 ms
with psutil; the 1-minute load average before and after; and the SHA-256 of the output. Every
output must be the same bytes as the first ``cli`` run's (exit code 1 otherwise).

Printed: per approach the median (min-max) wall time, CPU seconds and peak RSS, and per Dask
approach the per-round ratios ``cli --jobs 2`` / ``dask`` of wall and of CPU time (median and
range). Every number, with the environment, goes to ``--out`` (default
``benchmarks/results/distributed-latest.json``).

SPEC §9 target: Dask at least as fast as ``--jobs 2`` and under 500 MB per worker.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This script's name would shadow the ``distributed`` package (Dask's) for itself and for the
# worker processes it starts: drop its folder from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
GENERATOR = ROOT / "examples" / "generate.py"
CLI2 = "cli --jobs 2"


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
    """Samples the RSS of a set of processes (and, optionally, their children) every 50 ms.

    ``cpu_seconds`` is the CPU time of the sampling thread itself (to subtract when this
    process's own CPU time is counted).
    """

    def __init__(self, pids: Iterable[int], *, children: bool = False) -> None:
        self.roots = [psutil.Process(p) for p in pids]
        self.children = children
        self.peaks: dict[int, int] = {}
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.thread_time()
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
        self.cpu_seconds = time.thread_time() - start

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


def _load() -> float:
    return os.getloadavg()[0]


def run_cli(path: Path, out: Path, jobs: int) -> dict[str, Any]:
    """Time ``python -m dryneedle validate PATH --quiet --jobs N > OUT``; CPU and RSS."""
    load = _load()
    with out.open("wb") as fh, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dryneedle", "validate", str(path), "--quiet",
             "--jobs", str(jobs)], stdout=fh, stderr=err,
        )
        with PeakSampler([proc.pid], children=True) as sampler:
            # wait4: the child's resource usage, its own waited-for children (the pool) included
            _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        message = err.read()[-2000:]
    if proc.returncode not in (0, 1):
        msg = f"dryneedle validate --jobs {jobs} failed ({proc.returncode}): {message!r}"
        raise RuntimeError(msg)
    main_peak = sampler.peaks.pop(proc.pid, 0)
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "load_before": load, "load_after": _load(),
            "peak_rss_mib": {"main": main_peak / 2**20,
                             "workers": sorted((v / 2**20 for v in sampler.peaks.values()),
                                               reverse=True)},
            "sha256": _digest([out])}


def _warm() -> int:
    import dryneedle.distributed  # noqa: F401, PLC0415 - what a warm worker has imported

    return os.getpid()


def _cpu(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def _dask_config(config: Mapping[str, Any] | None) -> Iterator[None]:
    import dask  # noqa: PLC0415

    if config is None:
        yield
    else:
        with dask.config.set(dict(config)):
            yield


def run_dask(path: Path, out: Path, workers: int, blocksize: str,
             config: Mapping[str, Any] | None, recipe: str) -> dict[str, Any]:
    """Start and warm a local cluster (not timed); time the recipe on it.

    ``recipe`` is ``stream`` (:func:`~dryneedle.distributed.write_reports`) or ``graph``
    (:func:`~dryneedle.distributed.report_lines` then
    :func:`~dryneedle.distributed.write_jsonl`).
    """
    from dask.distributed import Client, LocalCluster  # noqa: PLC0415

    from dryneedle.distributed import report_lines, write_jsonl, write_reports  # noqa: PLC0415

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with (
        _dask_config(config),
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     dashboard_address=None, silence_logs=40) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        pids = list(client.run(_warm).values())
        startup = time.perf_counter() - t0
        procs = [psutil.Process(p) for p in pids]
        load = _load()
        with PeakSampler(pids) as sampler:
            cpu0, me0 = _cpu(procs), time.process_time()
            start = time.perf_counter()
            if recipe == "stream":
                parts = write_reports(str(path), str(out), blocksize=blocksize, client=client)
            else:
                parts = write_jsonl(report_lines(str(path), blocksize=blocksize), str(out))
            seconds = time.perf_counter() - start
            cpu1, me1 = _cpu(procs), time.process_time()
        # The scheduler and the nannies of a LocalCluster run in this process, with the client.
        here = me1 - me0 - sampler.cpu_seconds
    return {"seconds": seconds, "recipe": recipe, "startup_seconds": startup,
            "partitions": len(parts), "blocksize": blocksize,
            "cpu_seconds": (cpu1 - cpu0) + here,
            "cpu_seconds_by_process": {"workers": cpu1 - cpu0,
                                       "client_scheduler_and_nannies": here},
            "load_before": load, "load_after": _load(),
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


def _spread(values: Sequence[float], fmt: str = ".2f") -> str:
    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
            if values else "-")


def _approaches(args: argparse.Namespace) -> list[str]:
    names = [CLI2]
    if args.jobs1:
        names.append("cli --jobs 1")
    for recipe in args.recipes.split(","):
        if args.dask_config in ("recommended", "both"):
            names.append(f"dask {recipe}")
        if args.dask_config in ("default", "both"):
            names.append(f"dask {recipe} (default config)")
    return names


def _run(name: str, path: Path, tmp: Path, args: argparse.Namespace,
         blocksize: str) -> dict[str, Any]:
    from dryneedle.distributed import DASK_CONFIG  # noqa: PLC0415

    if name.startswith("cli"):
        jobs = int(name.rsplit(" ", 1)[1])
        return run_cli(path, tmp / f"cli-{jobs}.jsonl", jobs)
    config = None if name.endswith("(default config)") else DASK_CONFIG
    return run_dask(path, tmp / "dask", args.workers, blocksize, config, name.split()[1])


def _report(runs: dict[str, list[dict[str, Any]]], records: int) -> dict[str, Any]:
    """Print the table of medians and per-round ratios; return the summary as JSON data."""
    summary: dict[str, Any] = {}
    print(f"{'approach':<34} {'seconds':>18} {'CPU seconds':>18} {'records/s':>9}"
          f"  peak RSS MiB per worker (max)")
    for name, rs in runs.items():
        secs = [r["seconds"] for r in rs]
        cpus = [r["cpu_seconds"] for r in rs]
        peaks = [max(r["peak_rss_mib"]["workers"], default=0.0) for r in rs]
        summary[name] = {"seconds_median": statistics.median(secs),
                         "cpu_seconds_median": statistics.median(cpus),
                         "peak_rss_mib_per_worker_max": max(peaks)}
        print(f"{name:<34} {_spread(secs, '.1f'):>18} {_spread(cpus, '.1f'):>18} "
              f"{records / statistics.median(secs):>9,.0f}  {max(peaks):.0f}")
    for name, rs in runs.items():
        if not name.startswith("dask"):
            continue
        wall = [c["seconds"] / d["seconds"] for c, d in zip(runs[CLI2], rs, strict=True)]
        cpu = [c["cpu_seconds"] / d["cpu_seconds"] for c, d in zip(runs[CLI2], rs, strict=True)]
        summary[name] |= {"wall_ratio_vs_jobs2": wall, "cpu_ratio_vs_jobs2": cpu}
        start = [r["startup_seconds"] for r in rs]
        print(f"{name}: {CLI2} / {name} per round: wall {_spread(wall)}x, CPU {_spread(cpu)}x"
              f" ({', '.join(f'{w:.2f}' for w in wall)}); {rs[0]['partitions']} partitions "
              f"of {rs[0]['blocksize']}; cluster start-up and warm-up {_spread(start, '.1f')}"
              " s, not timed")
    loads = [r[k] for rs in runs.values() for r in rs for k in ("load_before", "load_after")]
    summary["load_average_1min"] = [min(loads), max(loads)]
    print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} CPUs")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 when the outputs differ)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=200_000,
                        help="records in the file (default 200000, about 290 MB)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--blocksize", default=None,
                        help="Dask bytes per partition (default: the library's default)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--jobs1", action="store_true", help="also run cli --jobs 1")
    parser.add_argument("--recipes", default="stream,graph",
                        help="Dask recipes, comma-separated: stream (write_reports), graph "
                        "(report_lines + write_jsonl); default both")
    parser.add_argument("--dask-config", choices=("recommended", "default", "both"),
                        default="recommended",
                        help="Dask with dryneedle.distributed.DASK_CONFIG, Dask's defaults, "
                        "or both (default: recommended)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed-latest.json")
    parser.add_argument("--keep", type=Path, help="generate the input here and keep it "
                        "(reused when it exists)")
    parser.add_argument("--smoke", action="store_true",
                        help="2 000 records, one round, blocks of 256 KiB (a quick check)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.records, args.rounds = 2000, 1
        args.blocksize = args.blocksize or "256 KiB"
    from dryneedle.distributed import DASK_CONFIG, DEFAULT_BLOCKSIZE  # noqa: PLC0415

    blocksize = args.blocksize or DEFAULT_BLOCKSIZE
    names = _approaches(args)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="dryneedle-dist-") as tmp:
        path = args.keep or Path(tmp) / "records.jsonl"
        if path.exists():
            info = {"records": sum(1 for _ in path.open("rb")), "bytes": path.stat().st_size}
        else:
            print(f"generating {args.records} records ...", file=sys.stderr)
            info = write_records(path, args.records, seed=args.seed)
        print(f"file: {info['records']:,} records, {info['bytes'] / 2**20:.0f} MiB",
              file=sys.stderr)
        for rnd in range(args.rounds):
            k = rnd % len(names)
            for name in names[k:] + names[:k]:
                r = _run(name, path, Path(tmp), args, blocksize)
                runs[name].append(r)
                print(f"round {rnd + 1}: {name:<34} {r['seconds']:6.1f} s, CPU "
                      f"{r['cpu_seconds']:6.1f} s, load {r['load_before']:.1f}", file=sys.stderr)
    reference = runs[CLI2][0]["sha256"]
    same = all(r["sha256"] == reference for rs in runs.values() for r in rs)
    summary = _report(runs, info["records"])
    print(f"every output the same bytes as the CLI's: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "file": info, "rounds": args.rounds, "blocksize": blocksize,
        "dask_config": dict(DASK_CONFIG), "summary": summary, "runs": runs,
        "same_bytes_as_cli": same,
        "environment": {"python": sys.version.split()[0], "platform": platform.platform(),
                        "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                        "versions": _versions()},
    }, indent=2) + "\n", encoding="utf-8")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
