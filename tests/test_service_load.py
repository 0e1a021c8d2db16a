"""A smoke test of the load benchmark (``benchmarks/service_load.py``) with very small counts.

It proves the benchmark runs and stops by itself; it asserts nothing about time (SPEC §9).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("psutil")

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "service_load.py"


def test_the_load_benchmark_runs_with_small_counts(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("service_load", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["service_load"] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "report.json"
    report = bench.main(["--requests", "50", "--clients", "4", "--slow", "5",
                         "--slow-seconds", "2", "--byte-delay", "0.2", "--oversized-mb", "5",
                         "--out", str(out)])
    assert out.exists()
    assert report["normal"]["statuses"] == {200: 50}
    assert report["normal"]["5xx"] == 0
    assert report["normal"]["errors"] == 0
    assert report["normal"]["server"]["app"]["p50_ms"] > 0  # the Server-Timing header was read
    assert report["normal"]["client_cpu_ms_per_request"] > 0
    assert report["oversized"]["status"] == 413
    assert sum(report["slow"]["ended"].values()) == 5
    assert report["rss_mb"]["samples"] > 0
    assert report["server_cpu_ms_per_request"] > 0
