"""Tests of the Spark recipe :func:`dryneedle.distributed.validate_spark` (extra ``spark``).

Spark runs in local mode (``local[2]``: two Python worker processes, bound to 127.0.0.1, no UI),
one session for the module. The reference is the command line on the same files: the reports
must be its output byte for byte, series checks included, ``index`` and ``line`` exact, with
files cut into several splits so that patients' sessions span splits and files.

Without pyspark or Java the tests are skipped, except under CI (``CI`` set), where they fail:
``.ci/run`` installs Java where it is missing and the ``dev`` extra installs pyspark.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dryneedle.distributed import LOCAL_CHECKS, validate_spark
from dryneedle.policy import GUIDELINE_POLICY
from jsonl_inputs import SESSIONS, cli_output, generated_files

ON = date(2026, 6, 1)


def _require(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (required under CI)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """A local[2] Spark session with small splits (256 kB), torn down after the module."""
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415
    except ImportError:
        _require(False, "pyspark is not installed (pip install 'dryneedle[spark]')")
    _require(shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")),
             "Java is not installed (apt-get install default-jre-headless)")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]").appName("dryneedle-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.files.maxPartitionBytes", "262144")
        .config("spark.sql.files.openCostInBytes", "0")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _joined(df: Any) -> bytes:
    rows = df.orderBy("index").select("report").collect()
    return "".join(r[0] + "\n" for r in rows).encode("utf-8")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return generated_files(tmp_path_factory.mktemp("generated"))


def test_the_example_gives_the_cli_bytes(spark: Any) -> None:
    """One file in several splits: the reports are ``dryneedle validate FILE``'s lines."""
    df = validate_spark(spark, str(SESSIONS))
    assert df.rdd.getNumPartitions() > 3
    cli = cli_output([SESSIONS])
    assert b'"series.' in cli
    assert _joined(df) == cli


def test_generated_files_give_the_cli_bytes(spark: Any, generated: list[Path]) -> None:
    """Three files, patients across splits and files, odd lines: the CLI's bytes, and columns."""
    df = validate_spark(spark, [str(p) for p in generated])
    assert df.columns == ["index", "line", "file", "valid", "report"]
    cli = cli_output(generated)
    assert cli.count(b'"series.') >= 5  # the data exercises the series checks
    rows = df.orderBy("index").collect()
    assert "".join(r["report"] + "\n" for r in rows).encode("utf-8") == cli
    import json  # noqa: PLC0415

    for row, line in zip(rows, cli.splitlines(), strict=True):
        report = json.loads(line)
        assert (row["index"], row["line"], row["file"], row["valid"]) == (
            report["index"], report["line"], report["file"], report["valid"])


def test_policy_date_and_checks_travel(spark: Any, generated: list[Path]) -> None:
    """Another policy and date, and the checks without series, as on the command line."""
    files: Sequence[str] = [str(p) for p in generated[1:]]
    guideline = validate_spark(spark, files, policy=GUIDELINE_POLICY, on=ON)
    assert _joined(guideline) == cli_output(files, "--policy", "guideline", "--on", str(ON))
    local = validate_spark(spark, files[0], checks=LOCAL_CHECKS)
    assert _joined(local) == cli_output(files[:1], "--checks", ",".join(LOCAL_CHECKS))


def test_errors_before_any_job(spark: Any, tmp_path: Path) -> None:
    """Unknown checks and globs that match nothing fail at once, on the driver."""
    with pytest.raises(ValueError, match="unknown checks"):
        validate_spark(spark, str(SESSIONS), checks=("structure", "spelling"))
    with pytest.raises(FileNotFoundError):
        validate_spark(spark, str(tmp_path / "none-*.jsonl"))
