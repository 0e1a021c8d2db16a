"""Peak memory of the series index against the number of distinct patients (SPEC §9, 1.1).

Usage::

    python benchmarks/series_memory.py [--patients 100000,1000000,5000000] [--unbounded]
                                       [--out benchmarks/results/series-memory-latest.json]

For each count ``N``, a fresh process feeds a :class:`dryneedle.protocol.SeriesIndex` the
session summaries of ``N`` distinct patients, generated on the fly the way
``examples/generate.py`` makes its stream: 16 patients in treatment at once, each with a course
of 1 to 8 weekly sessions (4.5 on average), their sessions interleaved; a finished patient is
replaced by a new one. The summaries are what the CLI's series pass receives (dates as
ordinals). The child reports its own peak RSS (``VmHWM``), its time and the index's length.
A row with ``N = 0`` is the baseline (the interpreter with :mod:`dryneedle.protocol`
imported). ``--unbounded`` adds rows with the memory budget set beyond ``N`` (every summary in
memory, as before the spill store): the cost per patient without the bound.

Target: peak RSS under 200 MB at 5 M distinct patients, flat from 100 k to 5 M.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "series-memory-latest.json"
CONCURRENT = 16


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB (``VmHWM``, else ``ru_maxrss``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource  # noqa: PLC0415

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def child(patients: int, budget: int | None) -> int:
    """Feed the index; print one JSON line with the peak memory."""
    from dryneedle.protocol import SeriesIndex  # noqa: PLC0415

    index = SeriesIndex() if budget is None else SeriesIndex(memory_budget=budget)
    add = index.add_summary
    start = date(2026, 1, 5).toordinal()
    active: list[list[int]] = []  # [serial, sessions left, next number, next day]
    serial = sessions = findings = 0
    t0 = time.perf_counter()
    while serial < patients or active:
        while len(active) < CONCURRENT and serial < patients:
            course = (serial * 7919) % 8 + 1
            active.append([serial, course, 1, start + serial // CONCURRENT])
            serial += 1
        slot = sessions % len(active)
        p = active[slot]
        summary = (p[3], p[2], 3 + p[2] % 4, p[0] % 11 != 0)
        findings += len(add(f"p-{p[0]:08d}", summary))  # type: ignore[arg-type]  # ordinals
        sessions += 1
        p[1] -= 1
        p[2] += 1
        p[3] += 7
        if p[1] == 0:
            active[slot] = active[-1]
            active.pop()
    seconds = time.perf_counter() - t0
    print(json.dumps({"patients": patients, "budget": budget, "indexed": len(index),
                      "sessions": sessions, "findings": findings, "seconds": seconds,
                      "peak_rss_kib": peak_rss_kib()}))
    return 0


def run_child(patients: int, budget: int | None) -> dict[str, Any]:
    """Run one child process and return its row."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(patients)]
    if budget is not None:
        argv += ["--budget", str(budget)]
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                          timeout=7200)
    if proc.returncode != 0:
        msg = f"child {patients} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", default="100000,1000000,5000000",
                        help="comma-separated counts of distinct patients")
    parser.add_argument("--unbounded", action="store_true",
                        help="also run with every summary in memory (no spill)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.budget)

    counts = [int(x) for x in args.patients.split(",")]
    rows = [run_child(0, None)]
    base = rows[0]["peak_rss_kib"]
    print(f"{'patients':>10}  {'mode':<10}  {'peak RSS MiB':>12}  {'over base':>9}  "
          f"{'B/patient':>9}  {'seconds':>8}  {'us/session':>10}")
    for n in counts:
        modes: list[tuple[str, int | None]] = [("bounded", None)]
        if args.unbounded:
            modes.append(("unbounded", n + 1))
        for mode, budget in modes:
            row = run_child(n, budget)
            row["mode"] = mode
            rows.append(row)
            over = row["peak_rss_kib"] - base
            print(f"{n:>10,}  {mode:<10}  {row['peak_rss_kib'] / 1024:>12.1f}  "
                  f"{over / 1024:>9.1f}  {over * 1024 / n:>9.0f}  {row['seconds']:>8.1f}  "
                  f"{row['seconds'] * 1e6 / row['sessions']:>10.2f}", flush=True)
            assert row["indexed"] == n, row
    report = {"benchmark": "dryneedle series index memory",
              "started": datetime.now(UTC).isoformat(timespec="seconds"),
              "baseline_rss_kib": base, "rows": rows,
              "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"baseline (imports only): {base / 1024:.1f} MiB; written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
