"""Peak memory of ``dryneedle validate`` against input size: streaming means a flat line.

Usage::

    python benchmarks/memory.py [--records 20000] [--factor 10] [--seed 7] [--out FILE]

Generates two JSONL files with ``examples/generate.py`` (``N`` and ``factor x N`` records, 5 %
invalid), runs ``python -m dryneedle validate FILE --quiet > /dev/null`` on each in a fresh
subprocess, with all checks and without the series checks, and prints the peak resident memory
(RSS) of each run and the ratio large/small. The process count is 1 (no ``--jobs``): the
number is the memory of one validating process.

**How the peak is measured.** The child runs the CLI exactly as ``python -m dryneedle`` does
(``runpy``) and, on exit, reads its own ``VmHWM`` from ``/proc/self/status`` (Linux), the
high-water mark of its address space. ``ru_maxrss`` from ``getrusage`` (of the child, or of
``RUSAGE_CHILDREN`` / ``os.wait4`` in the parent) is not used on Linux: the kernel carries a
process's high-water mark across ``exec``, so a child started by a large parent (a benchmark
holding records, a test runner) reports at least the parent's peak. Elsewhere ``ru_maxrss`` is
the fallback.

**What grows, and what does not.** Records are read, checked, written and dropped one at a
time, so nothing grows with the number of records. The series checks keep one small summary per
*patient* (latest date, number, needle count; see ``dryneedle.protocol.SeriesIndex``), so they
grow with the number of distinct patients. The generator keeps 16 patients in treatment at
once, each attending a course of 1 to 8 sessions, so distinct patients grow with the records
too (about one per 4 records): the run without series isolates the streaming part, and the run
with series shows the per-patient cost (printed as bytes per patient).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATOR = ROOT / "examples" / "generate.py"
PEAK_MARKER = "@@dryneedle-peak "

# Runs ``python -m dryneedle ARGS`` in this process, then reports the process's peak memory on
# stderr (after everything the CLI wrote), and exits with the CLI's code.
_WRAPPER = r"""
import json, runpy, sys
sys.argv = ["dryneedle", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("dryneedle", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
finally:
    sys.stdout.flush()
    peak, method = None, "ru_maxrss"
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    peak, method = int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    if peak is None:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            peak //= 1024
    sys.stderr.write("\n" + MARKER + json.dumps({"peak_rss_kib": peak, "method": method,
                                                 "exit": code}) + "\n")
sys.exit(code)
""".replace("MARKER", repr(PEAK_MARKER))


def write_records(path: Path, n: int, *, seed: int, invalid_rate: float = 0.05) -> dict[str, int]:
    """Write ``n`` generated records to ``path`` (streaming); return records, bytes, patients."""
    spec = importlib.util.spec_from_file_location("generate", GENERATOR)
    if spec is None or spec.loader is None:  # pragma: no cover - the path is ours
        msg = f"cannot load {GENERATOR}"
        raise ImportError(msg)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    patients: set[str] = set()
    key = '"patient_id":"'
    with path.open("w", encoding="utf-8") as fh:
        for line in gen.generate_lines(n, seed=seed, invalid_rate=invalid_rate):
            fh.write(line)
            fh.write("\n")
            at = line.find(key)
            if at >= 0:
                start = at + len(key)
                patients.add(line[start:line.find('"', start)])
    return {"records": n, "bytes": path.stat().st_size, "patients": len(patients)}


def measure_validate(path: Path, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m dryneedle validate PATH --quiet ARGS`` in a fresh process.

    Standard output (the reports) goes to ``/dev/null``.

    Returns:
        ``peak_rss_kib``, ``method`` (``VmHWM`` or ``ru_maxrss``) and ``exit`` (the CLI's
        exit code: 0 all valid, 1 some invalid).

    Raises:
        RuntimeError: If the CLI failed (exit code 2 or a crash).
    """
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, "validate", str(path), "--quiet", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        timeout=timeout,
    )
    for line in reversed(proc.stderr.splitlines()):
        if line.startswith(PEAK_MARKER):
            result: dict[str, Any] = json.loads(line[len(PEAK_MARKER):])
            break
    else:
        msg = f"no peak reported (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    if result["exit"] not in (0, 1):
        msg = f"dryneedle validate failed (exit {result['exit']}):\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20000,
                        help="records in the small file (default 20000)")
    parser.add_argument("--factor", type=int, default=10,
                        help="the large file has FACTOR times more records (default 10)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.records < 1 or args.factor < 2:
        parser.error("--records must be at least 1 and --factor at least 2")

    variants = {"all checks": (), "no series": ("--checks", "structure,screening,protocol")}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dryneedle-memory-") as tmp:
        for n in (args.records, args.records * args.factor):
            path = Path(tmp) / f"records-{n}.jsonl"
            print(f"generating {n} records ...", file=sys.stderr)
            info = write_records(path, n, seed=args.seed)
            row: dict[str, Any] = {**info, "peak_rss_kib": {}}
            for name, extra in variants.items():
                print(f"  validate ({name}) ...", file=sys.stderr)
                result = measure_validate(path, *extra)
                row["peak_rss_kib"][name] = result["peak_rss_kib"]
                row["method"] = result["method"]
            rows.append(row)
            path.unlink()

    small, large = rows
    print(f"peak RSS of `python -m dryneedle validate FILE --quiet` (one process, "
          f"{small['method']}):")
    head = f"{'records':>9}  {'file MiB':>9}  {'patients':>9}"
    head += "".join(f"  {name + ' MiB':>16}" for name in variants)
    print(head)
    print("-" * len(head))
    for row in rows:
        line = f"{row['records']:>9,}  {row['bytes'] / 2**20:>9.1f}  {row['patients']:>9,}"
        line += "".join(f"  {row['peak_rss_kib'][name] / 1024:>16.1f}" for name in variants)
        print(line)
    ratios = {name: large["peak_rss_kib"][name] / small["peak_rss_kib"][name]
              for name in variants}
    print(f"{'ratio':>9}  {large['bytes'] / small['bytes']:>9.1f}  "
          f"{large['patients'] / small['patients']:>9.1f}"
          + "".join(f"  {ratios[name]:>16.2f}" for name in variants))
    extra_patients = large["patients"] - small["patients"]
    growth = (large["peak_rss_kib"]["all checks"] - large["peak_rss_kib"]["no series"]) - (
        small["peak_rss_kib"]["all checks"] - small["peak_rss_kib"]["no series"])
    per_patient = growth * 1024 / extra_patients if extra_patients > 0 else None
    if per_patient is not None:
        print(f"series state: about {per_patient:.0f} bytes per distinct patient")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "ratios": ratios,
                                        "series_bytes_per_patient": per_patient}, indent=2)
                            + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
