"""The Dask benchmark (``benchmarks/distributed.py``) runs, and its outputs are the CLI's bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmark_smoke(tmp_path: Path) -> None:
    """One round on 2 000 records: every approach timed, CPU counted, the same bytes."""
    out = tmp_path / "distributed.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "distributed.py"), "--smoke", "--out",
         str(out)], capture_output=True, text=True, timeout=600, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["same_bytes_as_cli"] is True
    assert set(data["runs"]) == {"cli --jobs 2", "dask stream", "dask graph"}
    for name, runs in data["runs"].items():
        (run,) = runs
        assert run["seconds"] > 0
        assert run["cpu_seconds"] > 0, name
        assert run["sha256"] == data["runs"]["cli --jobs 2"][0]["sha256"]
    for name in ("dask stream", "dask graph"):
        assert len(data["summary"][name]["wall_ratio_vs_jobs2"]) == 1
        assert data["runs"][name][0]["startup_seconds"] > 0
    assert "load_average_1min" in data["summary"]
    assert "dask stream" in proc.stdout
