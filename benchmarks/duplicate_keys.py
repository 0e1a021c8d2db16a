"""The cost of the duplicate-key check (SPEC section 6, 1.1), per record, with and without it.

Neither msgspec nor orjson sees a key written twice, so every JSON line that the accelerated
structure check accepts also takes a cheap exact pre-test (a decode into key-counting mirrors
and a compact re-encoding, compared by length: no second parse; then, only when that cannot
tell, one parse by orjson and a count of ``":`` and of the keys it kept): when it proves there
is no repeated key -- nearly always -- the line goes straight to the clinical checks;
otherwise it is parsed again with ``object_pairs_hook`` and walked. This script times the
whole :class:`Validator` on the same lines with the pre-test as shipped and with it replaced
by "never a duplicate", and prints the per-record times and their ratio, in one run, for:

* the shipped examples (``examples/sessions.jsonl``), and
* a synthetic file of 100 000 records from ``examples/generate.py`` (seed 7, 5 % invalid),
  plus the same records each with one duplicated key (the slow path's worst case).

Run by hand (not a test)::

    python benchmarks/duplicate_keys.py [--records 100000] [--rounds 3] [--fast/--no-fast]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dryneedle.records import _fast, _validate  # noqa: E402
from dryneedle.records._validate import Validator  # noqa: E402


def _generate(n: int) -> list[bytes]:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "examples" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = gen
    spec.loader.exec_module(gen)
    return [line.encode() for line in gen.generate_lines(n, seed=7, invalid_rate=0.05)]


def _time(lines: list[bytes], rounds: int, fast: bool) -> float:
    """Best per-record time (microseconds) of validating ``lines`` with a fresh Validator."""
    best = []
    for _ in range(rounds):
        v = Validator(fast=fast)
        check = v.check
        start = time.perf_counter()
        for i, line in enumerate(lines):
            check(line, i, i + 1)
        best.append((time.perf_counter() - start) / len(lines) * 1e6)
    return min(best)


def _compare(name: str, lines: list[bytes], rounds: int, fast: bool) -> None:
    shipped: Callable[..., Any] = _validate._may_have_duplicates
    with_check = _time(lines, rounds, fast)
    _validate._may_have_duplicates = lambda text, parsed: False  # no duplicate check at all
    saved = _validate._duplicates_possible
    first = _validate._no_repeated_key
    _validate._duplicates_possible = lambda text: False
    _validate._no_repeated_key = lambda text: True
    try:
        without = _time(lines, rounds, fast)
    finally:
        _validate._may_have_duplicates = shipped
        _validate._duplicates_possible = saved
        _validate._no_repeated_key = first
    print(f"{name:<44} {len(lines):>7} records  with check {with_check:7.2f} us/record  "
          f"without {without:7.2f} us/record  ratio {with_check / without:5.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fast", dest="fast", action="store_false",
                        help="the pure-Python path (no msgspec)")
    args = parser.parse_args()
    examples = [line.rstrip(b"\r\n") for line in (ROOT / "examples" / "sessions.jsonl")
                .read_bytes().splitlines() if line.strip()]
    synthetic = _generate(args.records)
    duplicated = [line.replace(b'"consent":', b'"consent":true,"consent":', 1)
                  for line in synthetic]
    print(f"accelerated path: {args.fast and _fast.AVAILABLE}; "
          f"best of {args.rounds} rounds")
    _compare("examples/sessions.jsonl", examples * max(1, 20_000 // len(examples)),
             args.rounds, args.fast)
    _compare(f"synthetic ({args.records} records)", synthetic, args.rounds, args.fast)
    _compare("synthetic, one key duplicated per record", duplicated, args.rounds, args.fast)


if __name__ == "__main__":
    main()
