"""Streaming keeps memory flat: ``dryneedle validate`` on 10x more records, same peak RSS.

Sizes are counted in records, never in seconds. The peak is the child's own high-water mark
(``VmHWM``, Linux): ``ru_maxrss`` of a child would start at this test runner's peak, see
``benchmarks/memory.py``. The generated data has a bounded number of patients *in treatment at
once* (16, interleaved) but distinct patients grow with the records (about one per 4 records);
the series checks keep one small summary per patient, well inside the tolerance here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "memory.py"

SMALL = 2_000
LARGE = 20_000
LINUX_PEAK = Path("/proc/self/status").exists()


def _load() -> ModuleType:
    # benchmarks/ is not a package: load the script from its path.
    spec = importlib.util.spec_from_file_location("dryneedle_bench_memory", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(memory: ModuleType, path: Path, records: int) -> int:
    """Generate ``records`` records, validate them; return the child's peak RSS in KiB."""
    info = memory.write_records(path, records, seed=7)
    assert info["records"] == records
    summary = path.with_suffix(".summary.json")
    result = memory.measure_validate(path, "--summary-json", str(summary))
    assert result["method"] == "VmHWM"
    assert result["exit"] == 1  # 5 % of the generated records are invalid
    assert json.loads(summary.read_text())["records"] == records  # every record was validated
    peak: int = result["peak_rss_kib"]
    return peak


@pytest.mark.slow
@pytest.mark.skipif(not LINUX_PEAK, reason="needs /proc/self/status (VmHWM) to isolate the child")
def test_peak_memory_does_not_grow_with_records(tmp_path: Path) -> None:
    """10x more records => peak RSS within +25 % (or +15 MiB, whichever is larger)."""
    memory = _load()
    small = _run(memory, tmp_path / "small.jsonl", SMALL)
    large = _run(memory, tmp_path / "large.jsonl", LARGE)
    allowed = max(small * 1.25, small + 15 * 1024)
    assert large <= allowed, (
        f"peak RSS {large / 1024:.1f} MiB for {LARGE} records vs {small / 1024:.1f} MiB for "
        f"{SMALL}: memory grows with the input"
    )


def test_wrapper_reports_the_child_not_the_parent(tmp_path: Path) -> None:
    """The measured peak is the child's own, not inherited from a larger parent process."""
    if not LINUX_PEAK:
        pytest.skip("needs /proc/self/status")
    memory = _load()
    ballast = bytearray(200 * 1024 * 1024)  # make this process's peak clearly larger
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])
    path = tmp_path / "one.jsonl"
    memory.write_records(path, 10, seed=7)
    peak = memory.measure_validate(path)["peak_rss_kib"]
    del ballast
    assert peak < 150 * 1024
