"""Throughput of record validation: dryneedle against pydantic v2, msgspec and the JSON floor.

Usage::

    python benchmarks/run.py [--records 20000] [--rounds 5] [--seed 7]
                             [--out benchmarks/results/latest.json] [--rss] [--only A,B]

The records are generated once, in memory, by ``examples/generate.py`` (record format v1,
``--invalid-rate`` of them structurally invalid in varied ways, default 5 %). Every round runs
every approach over all the records, in a rotated order (round ``r`` starts with approach
``r mod k``), so slow drifts of a shared machine spread over all approaches; each timed run is
preceded by ``gc.collect()`` and its setup (building a model, a fresh validator) is not timed.
The table gives the median records/second over the rounds, its ratio to pydantic and msgspec,
and the min and max; the JSON file holds every round's time and the environment.

Before timing, the three validators (pydantic, msgspec, dryneedle structure) are run over all
records and must agree on which records are valid (``peer_agreement`` in the JSON): the peers
are shape-only but equivalent, see ``benchmarks/peers.py``.

``--rss`` also runs each approach in a fresh subprocess that streams the records from a file on
disk, line by line, and reports its peak resident memory, with a baseline row (imports only).
The peak is read from ``VmHWM`` in ``/proc/self/status`` (Linux), else from ``ru_maxrss``:
on Linux a child's ``ru_maxrss`` starts at its parent's peak (the kernel carries the high-water
mark across ``exec``), which would hide small children behind a big parent.

This is a script to run by hand, not a timed test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GENERATOR = ROOT / "examples" / "generate.py"
DEFAULT_OUT = HERE / "results" / "latest.json"

Runner = Callable[[Iterable[bytes]], int]
"""Validates every line it is given; returns how many passed (parsed, or were valid)."""


def load_script(name: str, path: Path) -> ModuleType:
    """Import a script that is not in a package (``examples/generate.py``, ``peers.py``)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - paths are ours
        msg = f"cannot load {path}"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def generate_lines(n: int, *, seed: int, invalid_rate: float) -> Iterable[str]:
    """The deterministic records of ``examples/generate.py`` (one JSON text per record)."""
    gen = load_script("generate", GENERATOR)
    lines: Iterable[str] = gen.generate_lines(n, seed=seed, invalid_rate=invalid_rate)
    return lines


# --- approaches ---------------------------------------------------------------------------------


def _json_stdlib() -> Runner:
    loads = json.loads

    def run(lines: Iterable[bytes]) -> int:
        ok = 0
        for line in lines:
            try:
                loads(line)
            except ValueError:
                continue
            ok += 1
        return ok

    return run


def _orjson() -> Runner:
    import orjson  # noqa: PLC0415

    loads = orjson.loads
    error = orjson.JSONDecodeError

    def run(lines: Iterable[bytes]) -> int:
        ok = 0
        for line in lines:
            try:
                loads(line)
            except error:
                continue
            ok += 1
        return ok

    return run


_PEERS: dict[str, Any] = {}


def _peers() -> ModuleType:
    return load_script("peers", HERE / "peers.py")


def _pydantic() -> Runner:
    from pydantic import ValidationError  # noqa: PLC0415

    if "pydantic" not in _PEERS:
        _PEERS["pydantic"] = _peers().pydantic_model()
    validate = _PEERS["pydantic"].model_validate_json

    def run(lines: Iterable[bytes]) -> int:
        ok = 0
        for line in lines:
            try:
                validate(line)
            except ValidationError:
                continue
            ok += 1
        return ok

    return run


def _msgspec() -> Runner:
    import msgspec  # noqa: PLC0415

    if "msgspec" not in _PEERS:
        _PEERS["msgspec"] = _peers().msgspec_decoder()
    decode = _PEERS["msgspec"].decode
    error = msgspec.DecodeError  # ValidationError is a DecodeError

    def run(lines: Iterable[bytes]) -> int:
        ok = 0
        for line in lines:
            try:
                decode(line)
            except error:
                continue
            ok += 1
        return ok

    return run


def _dryneedle(checks: Sequence[str] | None, *, serialise: bool = False) -> Callable[[], Runner]:
    def setup() -> Runner:
        from dryneedle.records import Validator  # noqa: PLC0415

        # A fresh validator per run: the series index starts empty every round.
        validator = Validator() if checks is None else Validator(checks=checks)
        check = validator.check
        if not serialise:

            def run(lines: Iterable[bytes]) -> int:
                ok = 0
                for i, line in enumerate(lines):
                    if check(line, i, i + 1).valid:
                        ok += 1
                return ok

            return run

        import orjson  # noqa: PLC0415

        dumps = orjson.dumps

        def run_jsonl(lines: Iterable[bytes]) -> int:
            ok = 0
            for i, line in enumerate(lines):
                report = check(line, i, i + 1)
                dumps(report.as_dict())
                if report.valid:
                    ok += 1
            return ok

        return run_jsonl

    return setup


def _baseline() -> Runner:
    def run(lines: Iterable[bytes]) -> int:
        return sum(1 for _ in lines)

    return run


@dataclass(frozen=True)
class Approach:
    """One way of processing the records."""

    key: str
    label: str
    measures: str
    setup: Callable[[], Runner]


APPROACHES: tuple[Approach, ...] = (
    Approach("json", "json.loads (stdlib)",
             "parse floor: stdlib json.loads of each line, no validation", _json_stdlib),
    Approach("orjson", "orjson.loads",
             "parse floor: orjson.loads of each line, no validation (dryneedle's parser)",
             _orjson),
    Approach("pydantic", "pydantic v2 (shape)",
             "Record.model_validate_json per line on a strict shape-only model, "
             "catching ValidationError", _pydantic),
    Approach("msgspec", "msgspec (shape)",
             "msgspec.json.Decoder(Record).decode per line on a shape-only Struct with "
             "constraints, catching errors", _msgspec),
    Approach("dryneedle-structure", "dryneedle structure",
             "Validator(checks=('structure',)).check per line: parse + every structural "
             "finding + the model objects", _dryneedle(("structure",))),
    Approach("dryneedle-full", "dryneedle full",
             "Validator().check per line: structure + screening + protocol + series "
             "(fresh validator per run)", _dryneedle(None)),
    Approach("dryneedle-full-jsonl", "dryneedle full + JSONL",
             "dryneedle full, plus orjson.dumps(report.as_dict()) of every report "
             "(what `dryneedle validate` writes)", _dryneedle(None, serialise=True)),
)
BY_KEY = {a.key: a for a in APPROACHES}
BASELINE = Approach("baseline", "baseline (imports only)",
                    "interpreter + dryneedle.records imported, lines read and counted",
                    _baseline)


# --- measurement ---------------------------------------------------------------------------------


def check_peers(lines: Sequence[bytes], approaches: Sequence[Approach]) -> dict[str, Any]:
    """Check that the validators agree record by record on validity."""
    keys = [k for k in ("pydantic", "msgspec", "dryneedle-structure")
            if k in {a.key for a in approaches}]
    if len(keys) < 2:
        return {"checked": keys, "records": len(lines), "disagreements": None}
    verdicts = {}
    for key in keys:
        run = BY_KEY[key].setup()
        verdicts[key] = [run((line,)) == 1 for line in lines]
    disagree = sum(1 for i in range(len(lines)) if len({verdicts[k][i] for k in keys}) > 1)
    return {
        "checked": keys,
        "records": len(lines),
        "valid": {k: sum(v) for k, v in verdicts.items()},
        "disagreements": disagree,
    }


def measure(
    approaches: Sequence[Approach], lines: Sequence[bytes], rounds: int, *, quiet: bool
) -> dict[str, dict[str, Any]]:
    """Time every approach ``rounds`` times, interleaved with a rotating start."""
    warm = lines[: min(len(lines), 500)]
    for a in approaches:  # imports, lazy modules and caches, outside the timings
        a.setup()(warm)
    seconds: dict[str, list[float]] = {a.key: [] for a in approaches}
    passed: dict[str, int] = {}
    k = len(approaches)
    for r in range(rounds):
        order = [approaches[(r + j) % k] for j in range(k)]
        for a in order:
            run = a.setup()
            gc.collect()
            t0 = time.perf_counter()
            ok = run(lines)
            dt = time.perf_counter() - t0
            seconds[a.key].append(dt)
            if passed.setdefault(a.key, ok) != ok:  # pragma: no cover - would be a bug
                msg = f"{a.key}: {ok} records passed, {passed[a.key]} in an earlier round"
                raise RuntimeError(msg)
        if not quiet:
            print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    out: dict[str, dict[str, Any]] = {}
    for a in approaches:
        rates = [len(lines) / s for s in seconds[a.key]]
        out[a.key] = {
            "approach": a.key,
            "label": a.label,
            "measures": a.measures,
            "median_records_per_s": statistics.median(rates),
            "min_records_per_s": min(rates),
            "max_records_per_s": max(rates),
            "median_us_per_record": 1e6 / statistics.median(rates),
            "seconds": seconds[a.key],
            "passed": passed[a.key],
        }
    for ref in ("pydantic", "msgspec"):
        base = out.get(ref, {}).get("median_records_per_s")
        for row in out.values():
            row[f"ratio_to_{ref}"] = None if base is None else row["median_records_per_s"] / base
    return out


# --- peak memory in subprocesses ---------------------------------------------------------------


def peak_rss_kib() -> tuple[int, str]:
    """Return this process's peak resident memory in KiB, and how it was read.

    ``VmHWM`` (Linux) is the high-water mark of this process's own address space; the
    fallback ``ru_maxrss`` (KiB on Linux, bytes on macOS) can include the parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    import resource  # noqa: PLC0415

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak // 1024 if sys.platform == "darwin" else peak), "ru_maxrss"


def child(key: str, path: Path) -> int:
    """Run one approach over a file, streaming; print a JSON line with its peak memory."""
    approach = BASELINE if key == "baseline" else BY_KEY[key]
    import dryneedle.records  # noqa: F401, PLC0415 - part of every row, baseline included

    run = approach.setup()
    count = 0

    def lines() -> Iterable[bytes]:
        nonlocal count
        with path.open("rb") as fh:
            for line in fh:
                count += 1
                yield line

    t0 = time.perf_counter()
    passed = run(lines())
    seconds = time.perf_counter() - t0
    peak, method = peak_rss_kib()
    print(json.dumps({"approach": key, "records": count, "passed": passed,
                      "peak_rss_kib": peak, "method": method, "seconds": seconds}))
    return 0


def write_file(path: Path, n: int, *, seed: int, invalid_rate: float) -> int:
    """Write the generated records to a JSONL file, streaming; return its size in bytes."""
    with path.open("w", encoding="utf-8") as fh:
        for line in generate_lines(n, seed=seed, invalid_rate=invalid_rate):
            fh.write(line)
            fh.write("\n")
    return path.stat().st_size


def measure_rss(
    approaches: Sequence[Approach], n: int, *, seed: int, invalid_rate: float, quiet: bool
) -> list[dict[str, Any]]:
    """Peak RSS of each approach in a fresh subprocess streaming ``n`` records from disk."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="dryneedle-bench-") as tmp:
        path = Path(tmp) / "records.jsonl"
        size = write_file(path, n, seed=seed, invalid_rate=invalid_rate)
        for a in (BASELINE, *approaches):
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", a.key,
                 "--file", str(path)],
                capture_output=True, text=True, check=False, timeout=3600,
            )
            if proc.returncode != 0:
                msg = f"child {a.key} failed ({proc.returncode}):\n{proc.stderr}"
                raise RuntimeError(msg)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["label"] = a.label
            row["file_bytes"] = size
            rows.append(row)
            if not quiet:
                print(f"  rss {a.key}: {row['peak_rss_kib'] / 1024:.1f} MiB", file=sys.stderr)
    base = rows[0]["peak_rss_kib"]
    for row in rows:
        row["over_baseline_kib"] = row["peak_rss_kib"] - base
    return rows


# --- environment and report ----------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """The machine and package versions of this run."""
    import dryneedle  # noqa: PLC0415
    import dryneedle.records  # noqa: PLC0415

    affinity = getattr(os, "sched_getaffinity", None)
    fast_path = getattr(dryneedle.records, "FAST_PATH", None)
    if fast_path is not None and not isinstance(fast_path, bool | int | float | str):
        fast_path = repr(fast_path)
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpus_available": len(affinity(0)) if affinity is not None else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": {
            "dryneedle": getattr(dryneedle, "__version__", None) or _version("dryneedle"),
            "pydantic": _version("pydantic"),
            "pydantic-core": _version("pydantic-core"),
            "msgspec": _version("msgspec"),
            "orjson": _version("orjson"),
            "attrs": _version("attrs"),
            "cattrs": _version("cattrs"),
        },
        "dryneedle_fast_path": fast_path,
        "dryneedle_json_parser": "orjson" if importlib.util.find_spec("orjson") else "json",
    }


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(results: dict[str, dict[str, Any]]) -> str:
    """The results as a fixed-width text table."""
    head = ("approach", "median rec/s", "vs pydantic", "vs msgspec", "min rec/s", "max rec/s",
            "us/rec")
    rows = [head]
    for r in results.values():
        rows.append((
            r["label"], _rate(r["median_records_per_s"]), _ratio(r["ratio_to_pydantic"]),
            _ratio(r["ratio_to_msgspec"]), _rate(r["min_records_per_s"]),
            _rate(r["max_records_per_s"]), f"{r['median_us_per_record']:.1f}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                          strict=True)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rss_table(rows: Sequence[dict[str, Any]]) -> str:
    """The peak-memory rows as a text table."""
    out = [f"{'approach':<26}  {'peak RSS MiB':>12}  {'over baseline':>13}  {'records':>8}"]
    out.append("-" * len(out[0]))
    for r in rows:
        out.append(f"{r['label']:<26}  {r['peak_rss_kib'] / 1024:>12.1f}  "
                   f"{r['over_baseline_kib'] / 1024:>13.1f}  {r['records']:>8}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20000, help="records (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--invalid-rate", type=float, default=0.05,
                        help="share of structurally invalid records (default 0.05)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="JSON results file (default benchmarks/results/latest.json)")
    parser.add_argument("--only", help="comma-separated approaches: " + ",".join(BY_KEY))
    parser.add_argument("--rss", action="store_true",
                        help="also measure peak RSS per approach in fresh subprocesses")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.file is None:
            parser.error("--child needs --file")
        return child(args.child, args.file)
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be at least 1")
    if args.rounds < 3:
        print("note: fewer than 3 rounds; the median is not robust", file=sys.stderr)
    approaches = list(APPROACHES)
    if args.only:
        unknown = set(args.only.split(",")) - set(BY_KEY)
        if unknown:
            parser.error(f"unknown approaches {sorted(unknown)}; choose from {','.join(BY_KEY)}")
        approaches = [a for a in APPROACHES if a.key in args.only.split(",")]

    quiet = args.quiet
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # Peak memory first, while this process is still small (see the module docstring).
    rss = None
    if args.rss:
        rss = measure_rss(approaches, args.records, seed=args.seed,
                          invalid_rate=args.invalid_rate, quiet=quiet)

    if not quiet:
        print(f"generating {args.records} records (seed {args.seed})", file=sys.stderr)
    lines = [line.encode("utf-8") for line in generate_lines(
        args.records, seed=args.seed, invalid_rate=args.invalid_rate)]
    agreement = check_peers(lines, approaches)
    if agreement["disagreements"]:
        print(f"WARNING: validators disagree on {agreement['disagreements']} records",
              file=sys.stderr)
    results = measure(approaches, lines, args.rounds, quiet=quiet)

    report: dict[str, Any] = {
        "benchmark": "dryneedle record validation throughput",
        "started": started,
        "params": {"records": args.records, "rounds": args.rounds, "seed": args.seed,
                   "invalid_rate": args.invalid_rate},
        "data": {"records": len(lines), "bytes": sum(len(x) + 1 for x in lines),
                 "mean_line_bytes": sum(len(x) for x in lines) / len(lines),
                 "generator": "examples/generate.py"},
        "environment": environment(),
        "peer_agreement": agreement,
        "results": list(results.values()),
        "rss": rss,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    env = report["environment"]
    print(f"{len(lines)} records ({report['data']['mean_line_bytes']:.0f} B/line, "
          f"{args.invalid_rate:.0%} invalid), {args.rounds} rounds, Python {env['python']}, "
          f"{env['cpus_available'] or env['cpu_count']} CPUs")
    print(table(results))
    if agreement["disagreements"] is not None:
        print(f"validity agreement ({', '.join(agreement['checked'])}): "
              f"{agreement['records'] - agreement['disagreements']}/{agreement['records']} "
              f"records")
    if rss is not None:
        print()
        print(f"peak RSS, streaming {args.records} records from disk in a fresh process:")
        print(rss_table(rss))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
