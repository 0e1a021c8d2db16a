"""The SPEC §9 (1.1) targets on the real user path, each as a ratio measured in one run.

Usage::

    python benchmarks/cli_vs_pydantic.py [--records 20000] [--rounds 5] [--seed 7]
                                         [--scale-records 100000]
                                         [--out benchmarks/results/targets-latest.json]
    python benchmarks/cli_vs_pydantic.py --smoke      # tiny sizes, one round (CI)

Files of generated records (``examples/generate.py``, format v1) are written on the fly: a
clean one, one with 5 % and one with 20 % structurally invalid records. Then, in interleaved
rounds (each round runs every command once, in a rotated order, so a drift of a shared machine
spreads over all of them), it measures:

* **end to end**, in fresh processes, writing every report to a file:
  ``python -m dryneedle validate FILE --quiet > out`` against ``python benchmarks/pydantic_cli.py
  FILE > out`` (a strict pydantic v2 shape-only model, every error with its dotted path, one
  orjson report per line); the same CLI with the runtime dependencies only (orjson and msgspec
  made unimportable, as without the ``fast`` extra); and ``--jobs 2`` against ``--jobs 1``,
  on the 5 % file and on a larger one (``--scale-records``, 5 % invalid): a run's fixed cost
  (start-up, timed on a one-record file) is not shared by the jobs, so on a small file it
  bounds the ratio (Amdahl); the bound with no overhead at all is printed for each file;
* **in-process**: ``Validator().check`` per line (full validation: structure, screening,
  protocol, series) against ``Model.model_validate_json`` per line (pydantic shape-only), on
  the clean and the 20 % invalid lines, and with ``Validator(fast=False)`` (no msgspec);
* ``import dryneedle.screening`` in a fresh interpreter, and one ``screen()`` call (median over
  the patients of the clean file).

Each ratio is the median over rounds of the per-round ratio (peer time / dryneedle time), with
its min and max. The outputs of the CLI runs (fast, runtime-only, ``--jobs 2``) must be byte
for byte the same (exit code 1 otherwise). Nothing here asserts a time: on a shared machine,
compare ratios of one run, never absolute numbers across runs.

Before timing, the sources of both sides (``src/`` and this directory) are compiled to bytecode
(:func:`compile_sources`), as ``pip install`` does for pydantic in ``site-packages`` and for
dryneedle from a wheel. Otherwise a machine with ``PYTHONDONTWRITEBYTECODE`` set (such as the
CI image), or an editable checkout with stale ``__pycache__`` files, compiles every changed
module again in every fresh process: tens of milliseconds per run charged to one side only.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "targets-latest.json"

# Runs the CLI with orjson and msgspec unimportable: the runtime dependencies only.
NO_EXTRAS = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('orjson', 'msgspec'):\n"
    "            raise ImportError(name)\n"
    "sys.meta_path.insert(0, _Block())\n"
    "from dryneedle.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


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


def write_file(path: Path, n: int, *, seed: int, invalid_rate: float) -> list[bytes]:
    """Write ``n`` generated records to ``path``; return the lines (bytes, no newline)."""
    gen = load_script("generate", ROOT / "examples" / "generate.py")
    lines = [s.encode("utf-8") for s in gen.generate_lines(n, seed=seed,
                                                           invalid_rate=invalid_rate)]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return lines


def compile_sources() -> bool:
    """Write the bytecode of ``src/`` and of this directory (see the module docstring).

    Returns whether every file compiled.
    """
    ok = True
    for folder in (ROOT / "src", HERE):
        ok = bool(compileall.compile_dir(folder, quiet=1, force=False)) and ok
    return ok


def summarise(ratios: Sequence[float]) -> dict[str, float]:
    """Median, min and max of per-round ratios."""
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


# --- end to end ----------------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def cli_commands(path: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """The commands timed end to end, by key: (argv, environment)."""
    py = sys.executable
    validate = ["validate", str(path), "--quiet"]
    return {
        "pydantic": ([py, str(HERE / "pydantic_cli.py"), str(path)], _env()),
        "cli": ([py, "-m", "dryneedle", *validate], _env()),
        "cli-jobs2": ([py, "-m", "dryneedle", *validate, "--jobs", "2"], _env()),
        "cli-no-extras": ([py, "-c", NO_EXTRAS, *validate], _env(DRYNEEDLE_FAST="0")),
    }


def time_command(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, str]:
    """Run one command with stdout to ``out``; return (seconds, SHA-256 of the output)."""
    with out.open("wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdout=fh, stderr=subprocess.PIPE, env=env, check=False,
                              timeout=3600)
        dt = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        msg = f"{argv[:3]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}"
        raise RuntimeError(msg)
    return dt, hashlib.sha256(out.read_bytes()).hexdigest()


def end_to_end(files: dict[str, Path], rounds: int, tmp: Path, *, quiet: bool,
               only: Sequence[str] | None = None) -> dict[str, Any]:
    """Time every command (or those in ``only``) on every file in interleaved rounds.

    Returns the times and the output digests, by file and command.
    """
    jobs: list[tuple[str, str, list[str], dict[str, str]]] = []
    for fname, path in files.items():
        for key, (argv, env) in cli_commands(path).items():
            if only is None or key in only:
                jobs.append((fname, key, argv, env))
    times: dict[str, dict[str, list[float]]] = {f: {} for f in files}
    digests: dict[str, dict[str, set[str]]] = {f: {} for f in files}
    for _fname, _key, argv, env in jobs[:len(jobs) // len(files)]:  # warm the page cache
        time_command(argv, env, tmp / "warm.out")
    k = len(jobs)
    for r in range(rounds):
        for j in range(k):
            fname, key, argv, env = jobs[(r + j) % k]
            dt, digest = time_command(argv, env, tmp / "out.jsonl")
            times[fname].setdefault(key, []).append(dt)
            digests[fname].setdefault(key, set()).add(digest)
        if not quiet:
            print(f"  end to end ({', '.join(files)}): round {r + 1}/{rounds} done",
                  file=sys.stderr)
    return {"times": times, "digests": {f: {k: sorted(v) for k, v in d.items()}
                                        for f, d in digests.items()}}


# --- in-process ----------------------------------------------------------------------------------


def _pydantic_runner() -> Callable[[Sequence[bytes]], int]:
    from pydantic import ValidationError  # noqa: PLC0415

    validate = load_script("peers", HERE / "peers.py").pydantic_model().model_validate_json

    def run(lines: Sequence[bytes]) -> int:
        ok = 0
        for line in lines:
            try:
                validate(line)
            except ValidationError:
                continue
            ok += 1
        return ok

    return run


def _dryneedle_runner(*, fast: bool) -> Callable[[Sequence[bytes]], int]:
    from dryneedle.records import Validator  # noqa: PLC0415

    def run(lines: Sequence[bytes]) -> int:
        check = Validator(fast=fast).check  # fresh: the series index starts empty
        ok = 0
        for i, line in enumerate(lines):
            if check(line, i, i + 1).valid:
                ok += 1
        return ok

    return run


def in_process(data: dict[str, list[bytes]], rounds: int, *, quiet: bool) -> dict[str, Any]:
    """Time pydantic shape-only and dryneedle full validation on each set of lines."""
    runners = {"pydantic": _pydantic_runner(), "dryneedle": _dryneedle_runner(fast=True),
               "dryneedle-no-fast": _dryneedle_runner(fast=False)}
    for run in runners.values():
        for lines in data.values():
            run(lines[:300])
    times: dict[str, dict[str, list[float]]] = {name: {} for name in data}
    jobs = [(name, key) for name in data for key in runners]
    for r in range(rounds):
        for j in range(len(jobs)):
            name, key = jobs[(r + j) % len(jobs)]
            gc.collect()
            t0 = time.perf_counter()
            runners[key](data[name])
            times[name].setdefault(key, []).append(time.perf_counter() - t0)
        if not quiet:
            print(f"  in-process: round {r + 1}/{rounds} done", file=sys.stderr)
    return times


# --- screening -----------------------------------------------------------------------------------


def import_times(rounds: int) -> list[float]:
    """Seconds to ``import dryneedle.screening`` in a fresh interpreter, per round."""
    code = ("import time; t = time.perf_counter(); import dryneedle.screening; "
            "print(time.perf_counter() - t)")
    out = []
    for _ in range(max(rounds, 3)):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=_env(), check=True)
        out.append(float(proc.stdout.strip()))
    return out


def screen_times(lines: Sequence[bytes], calls: int) -> list[float]:
    """Seconds per ``screen()`` call on the patients and sessions of valid records."""
    from dryneedle.records import validate_records  # noqa: PLC0415
    from dryneedle.screening import screen  # noqa: PLC0415

    cases = []
    for report in validate_records(lines[:500], checks=("structure",)):
        rec = report.record
        if rec is not None:
            cases.append((rec.patient, rec.session.date, rec.session.insertions))
    if not cases:  # pragma: no cover - the generator makes valid records
        return []
    for patient, day, sites in cases:
        screen(patient, on=day, sites=sites)
    out = []
    for n in range(calls):
        patient, day, sites = cases[n % len(cases)]
        t0 = time.perf_counter()
        screen(patient, on=day, sites=sites)
        out.append(time.perf_counter() - t0)
    return out


# --- report --------------------------------------------------------------------------------------


def ratios(peer: Sequence[float], ours: Sequence[float]) -> dict[str, float]:
    """Per-round ratios peer time / our time (higher: we are faster)."""
    return summarise([p / o for p, o in zip(peer, ours, strict=True)])


def start_up(tmp: Path, rounds: int) -> list[float]:
    """Seconds of ``dryneedle validate`` on a one-record file (the fixed cost of a run)."""
    one = tmp / "one.jsonl"
    write_file(one, 1, seed=1, invalid_rate=0.0)
    argv, env = cli_commands(one)["cli"]
    time_command(argv, env, tmp / "one.out")  # warm
    return [time_command(argv, env, tmp / "one.out")[0] for _ in range(rounds)]


def jobs_bound(one_job: Sequence[float], fixed: Sequence[float]) -> float:
    """The best ``--jobs 2`` / ``--jobs 1`` ratio with no overhead at all (Amdahl).

    The fixed cost of a run (start-up, measured on a one-record file) is not divided by the
    jobs; the rest is, at best, by two.
    """
    t1, s = statistics.median(one_job), statistics.median(fixed)
    return t1 / (s + max(t1 - s, 0.0) / 2)


def targets(e2e: dict[str, Any], inproc: dict[str, Any], imports: list[float],
            screens: list[float], n: int, scale: dict[str, Any] | None = None,
            ) -> list[dict[str, Any]]:
    """Each SPEC §9 (1.1) target with its measured ratio or time."""
    t = e2e["times"]
    rows = []

    def row(name: str, value: dict[str, float], goal: float, unit: str = "x",
            higher: bool = True) -> None:
        met = value["median"] >= goal if higher else value["median"] < goal
        rows.append({"target": name, **value, "goal": goal, "unit": unit, "met": met})

    row("CLI end to end vs pydantic script (5 % invalid)",
        ratios(t["invalid5"]["pydantic"], t["invalid5"]["cli"]), 1.3)
    row("CLI end to end vs pydantic script (clean)",
        ratios(t["clean"]["pydantic"], t["clean"]["cli"]), 1.3)
    row("CLI end to end vs pydantic script (20 % invalid)",
        ratios(t["invalid20"]["pydantic"], t["invalid20"]["cli"]), 1.3)
    row("in-process full vs pydantic shape (clean)",
        ratios(inproc["clean"]["pydantic"], inproc["clean"]["dryneedle"]), 1.5)
    row("in-process full vs pydantic shape (20 % invalid)",
        ratios(inproc["invalid20"]["pydantic"], inproc["invalid20"]["dryneedle"]), 1.0)
    row("in-process full, no fast extra, vs pydantic shape (5 % invalid)",
        ratios(inproc["invalid5"]["pydantic"], inproc["invalid5"]["dryneedle-no-fast"]), 0.5)
    row("CLI end to end, runtime deps only, vs pydantic script (5 % invalid)",
        ratios(t["invalid5"]["pydantic"], t["invalid5"]["cli-no-extras"]), 0.5)
    row(f"CLI --jobs 2 vs --jobs 1 (5 % invalid, {n} records)",
        ratios(t["invalid5"]["cli"], t["invalid5"]["cli-jobs2"]), 1.7)
    if scale is not None:
        st = scale["times"]["scale"]
        row(f"CLI --jobs 2 vs --jobs 1 (5 % invalid, {scale['records']} records)",
            ratios(st["cli"], st["cli-jobs2"]), 1.7)
    ms = [x * 1e3 for x in imports]
    row("import dryneedle.screening (ms)", summarise(ms), 150.0, "ms", higher=False)
    if screens:
        us = [x * 1e6 for x in screens]
        row("screen() one call (us)", summarise(us), 50.0, "us", higher=False)
    for r in rows:
        r["records"] = n
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The targets as a text table."""
    head = ("target", "median", "range", "goal", "met")
    body = []
    for r in rows:
        u = r["unit"]
        fmt = "{:.2f}" if u == "x" else "{:.1f}"
        body.append((r["target"], fmt.format(r["median"]) + u,
                     fmt.format(r["min"]) + "-" + fmt.format(r["max"]) + u,
                     ("≥ " if u == "x" else "< ") + fmt.format(r["goal"]) + u,
                     "yes" if r["met"] else "NO"))
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)) for x in body]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (1 when outputs differ)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20000, help="records per file")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--scale-records", type=int, default=100000,
                        help="records of the larger file on which --jobs 2 is also timed "
                             "(0: not)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and one round: checks that everything runs (CI)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.smoke:
        args.records, args.rounds = min(args.records, 300), 1
        args.scale_records = min(args.scale_records, 600)
    if args.records < 1 or args.rounds < 1:
        parser.error("--records and --rounds must be at least 1")

    started = datetime.now(UTC).isoformat(timespec="seconds")
    compiled = compile_sources()
    with tempfile.TemporaryDirectory(prefix="dryneedle-targets-") as name:
        tmp = Path(name)
        files: dict[str, Path] = {}
        data: dict[str, list[bytes]] = {}
        for key, rate in (("clean", 0.0), ("invalid5", 0.05), ("invalid20", 0.2)):
            files[key] = tmp / f"{key}.jsonl"
            data[key] = write_file(files[key], args.records, seed=args.seed,
                                   invalid_rate=rate)
        if not args.quiet:
            print(f"{args.records} records per file, {args.rounds} rounds", file=sys.stderr)
        e2e = end_to_end(files, args.rounds, tmp, quiet=args.quiet)
        scale: dict[str, Any] | None = None
        fixed = start_up(tmp, args.rounds)
        if args.scale_records > 0:
            big = tmp / "scale.jsonl"
            write_file(big, args.scale_records, seed=args.seed, invalid_rate=0.05)
            scale = end_to_end({"scale": big}, args.rounds, tmp, quiet=args.quiet,
                               only=("cli", "cli-jobs2"))
            scale["records"] = args.scale_records
            e2e["digests"]["scale"] = scale["digests"]["scale"]
    inproc = in_process(data, args.rounds, quiet=args.quiet)
    imports = import_times(args.rounds)
    screens = screen_times(data["clean"], 300 if args.smoke else 20000)
    rows = targets(e2e, inproc, imports, screens, args.records, scale)
    start = summarise(fixed)
    bounds: dict[str, Any] = {
        "start_up_seconds": start,
        f"jobs2_bound_{args.records}": jobs_bound(e2e["times"]["invalid5"]["cli"], fixed)}
    if scale is not None:
        bounds[f"jobs2_bound_{args.scale_records}"] = jobs_bound(
            scale["times"]["scale"]["cli"], fixed)

    identical = True
    for fname, by_key in e2e["digests"].items():
        ours = {d for k, v in by_key.items() if k != "pydantic" for d in v}
        if len(ours) != 1:
            identical = False
            print(f"ERROR: the CLI outputs differ on {fname}: {by_key}", file=sys.stderr)
    report = {
        "benchmark": "dryneedle SPEC §9 (1.1) targets",
        "started": started,
        "params": {"records": args.records, "rounds": args.rounds, "seed": args.seed,
                   "smoke": args.smoke},
        "environment": {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg")
                        else None},
        "targets": rows,
        "end_to_end_seconds": e2e["times"],
        "scale_seconds": scale["times"] if scale is not None else None,
        "jobs": bounds,
        "in_process_seconds": inproc,
        "cli_outputs_identical": identical,
        "bytecode_precompiled": compiled,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{args.records} records per file, {args.rounds} rounds, load average "
          f"{report['environment']['load_average']}")
    print(table(rows))
    print("start-up (validate of one record): {:.3f} s; best --jobs 2 ratio with no overhead "
          "(Amdahl): {}".format(start["median"], ", ".join(
              f"{k.rsplit('_', 1)[1]} records {v:.2f}x" for k, v in bounds.items()
              if k.startswith("jobs2_bound"))))
    print(f"CLI outputs identical (fast, runtime deps only, --jobs 2): {identical}")
    print(f"written: {args.out}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
