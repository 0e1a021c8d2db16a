"""Tests of the Dask recipe ``dryneedle.distributed`` (optional extra ``dask``).

The reference is a single in-process pass over the same files, the way ``dryneedle validate
FILE...`` reads them: one :class:`~dryneedle.records.Validator` for the whole stream, ``line``
counted per file, ``index`` across files. The inputs are ``examples/sessions.jsonl`` split into
three files (one with a blank line), cut into several blocks each, so partitions never hold a
whole file and patients' series span partitions.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest

pytest.importorskip("dask.bag")

import dask

from dryneedle.distributed import (
    LOCAL_CHECKS,
    report_lines,
    series_bag,
    validate_bag,
    validate_partition,
    write_jsonl,
    write_reports,
)
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.records import CHECKS, Validator, validate_lines

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ROOT / "examples" / "sessions.jsonl"
ON = date(2026, 6, 1)  # screening date for the cluster run (default: each session's date)
BLOCKSIZE = 40_000  # bytes: about 25 records, so each file is cut into several partitions

# A non-default policy that must reach the workers: a changed limit and a series rule raised to
# an error (so the series pass changes ``valid``).
CUSTOM = DEFAULT_POLICY.override(
    justification="test: the policy travels to the workers",
    limits={"first_session_max_needles": 3},
    rules={"series.first_session_number": {"severity": "error"}},
)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """``examples/sessions.jsonl`` split into three JSONL files, one with a blank line."""
    lines = SESSIONS.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 300
    chunks = [lines[:90], [*lines[90:150], b"", *lines[150:200]], lines[200:]]
    folder = tmp_path_factory.mktemp("parts")
    paths = []
    for i, chunk in enumerate(chunks):
        path = folder / f"part-{i}.jsonl"
        path.write_bytes(b"\n".join(chunk) + b"\n")
        paths.append(path)
    return paths


def reference(
    paths: Sequence[Path],
    *,
    checks: Sequence[str],
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
) -> list[dict[str, Any]]:
    """Reports of one in-process pass over the files, read as the CLI reads them.

    Line endings are removed, ``line`` counts per file, ``index`` across files, blank lines
    are skipped.
    """
    validator = Validator(policy=policy, on=on, checks=checks)
    out = []
    index = 0
    for path in paths:
        with path.open("rb") as fh:
            for n, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                report = validator.check(text.rstrip(b"\r\n"), index, n).as_dict()
                report["file"] = str(path)
                out.append(report)
                index += 1
    return out


def all_lines(paths: Sequence[Path]) -> list[bytes]:
    return [line for p in paths for line in p.read_bytes().split(b"\n")[:-1]]


def summary(reports: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> Counter[Any]:
    """The multiset of (record_id, valid, sorted codes) of reports."""
    return Counter(
        (r["record_id"], r["valid"], tuple(sorted(f["code"] for f in r["findings"])))
        for r in reports
    )


def glob(paths: Sequence[Path]) -> str:
    return str(paths[0].parent / "part-*.jsonl")


def compute(bag: Any) -> list[dict[str, Any]]:
    """Compute a bag with the current scheduler (Dask's own typing is partial)."""
    result: list[dict[str, Any]] = bag.compute()
    return result


# --- the per-partition function --------------------------------------------------------------


def test_validate_partition_is_validate_lines() -> None:
    """From line 1 the per-partition function returns exactly validate_lines' reports."""
    lines = SESSIONS.read_bytes().split(b"\n")[:60]
    assert validate_partition(lines) == validate_lines(lines, checks=LOCAL_CHECKS)
    assert validate_partition(lines, checks=CHECKS) == validate_lines(lines)


def test_validate_partition_numbers_from_start_line() -> None:
    """``start_line``/``start_index`` shift line and index (messages name no line numbers)."""
    reports = validate_partition(["{", "", "[]"], start_index=10, start_line=41)
    assert [(r["index"], r["line"]) for r in reports] == [(10, 41), (11, 43)]
    assert reports[0]["findings"][0]["message"].startswith("not valid JSON: ")


def test_line_endings_do_not_change_reports(parts: list[Path], tmp_path: Path) -> None:
    """LF, CRLF or no line ending: the same reports (as the CLI), per line and per file."""
    lines = parts[1].read_bytes().split(b"\n")[:-1]
    bare = validate_partition(lines)
    assert validate_partition([x + b"\n" for x in lines]) == bare
    assert validate_partition([x.decode() + "\r\n" for x in lines]) == bare
    crlf = tmp_path / "part-1.jsonl"
    crlf.write_bytes(b"".join(x + b"\r\n" for x in lines))
    with dask.config.set(scheduler="synchronous"):
        got = compute(validate_bag(str(crlf), checks=LOCAL_CHECKS, blocksize=BLOCKSIZE))
        lf = compute(validate_bag(str(parts[1]), checks=LOCAL_CHECKS, blocksize=BLOCKSIZE))
    assert [{**r, "file": ""} for r in got] == [{**r, "file": ""} for r in lf]


def test_validate_partition_pickles_by_reference() -> None:
    """The function any engine maps is module-level: it pickles to a tiny reference."""
    data = pickle.dumps(validate_partition)
    assert len(data) < 100
    assert pickle.loads(data) is validate_partition


def test_unknown_check_is_rejected(parts: list[Path]) -> None:
    """An unknown check name fails when the bag is built, not on the workers."""
    with pytest.raises(ValueError, match="unknown checks"):
        validate_bag(glob(parts), checks=("structure", "spelling"))


def test_no_matching_file(tmp_path: Path) -> None:
    """A glob that matches nothing is an error, not an empty result."""
    with pytest.raises((FileNotFoundError, OSError)):
        validate_bag(str(tmp_path / "none-*.jsonl"))


# --- synchronous scheduler -------------------------------------------------------------------


def test_write_reports_needs_a_client(parts: list[Path], tmp_path: Path) -> None:
    """Without a distributed client there is nothing to stream to: a clear error."""
    distributed = pytest.importorskip("distributed")
    try:
        distributed.default_client()
    except ValueError:
        pass
    else:  # pragma: no cover - a client of another test is still open
        pytest.skip("a default client exists")
    with pytest.raises(ValueError, match=r"[Cc]lient"):
        write_reports(glob(parts), str(tmp_path / "out"))


def test_local_checks_equal_in_process_synchronous(parts: list[Path]) -> None:
    """Without series, the bag equals the in-process pass, report for report (index, line)."""
    bag = validate_bag(glob(parts), checks=LOCAL_CHECKS, blocksize=BLOCKSIZE)
    assert bag.npartitions > len(parts)
    with dask.config.set(scheduler="synchronous"):
        got = compute(bag)
    assert got == reference(parts, checks=LOCAL_CHECKS)
    assert summary(got) == summary(validate_lines(all_lines(parts), checks=LOCAL_CHECKS))


def test_full_checks_exact_synchronous(parts: list[Path]) -> None:
    """With series (the default), the series pass makes the result exact across partitions."""
    with dask.config.set(scheduler="synchronous"):
        got = compute(validate_bag(glob(parts), blocksize=BLOCKSIZE))
    expected = reference(parts, checks=CHECKS)
    assert any(f["code"].startswith("series.") for r in expected for f in r["findings"])
    assert got == expected
    assert summary(got) == summary(validate_lines(all_lines(parts)))


def test_series_bag_holds_only_series_findings(parts: list[Path]) -> None:
    """series_bag yields one entry per record with series findings, and only those."""
    with dask.config.set(scheduler="synchronous"):
        got = compute(series_bag(glob(parts), blocksize=BLOCKSIZE))
    expected = {
        r["index"]: (r["file"], r["line"], [f for f in r["findings"]
                                            if f["code"].startswith("series.")])
        for r in reference(parts, checks=CHECKS)
    }
    expected = {k: v for k, v in expected.items() if v[2]}
    assert {s["index"]: (s["file"], s["line"], s["findings"]) for s in got} == expected


def test_one_partition_per_file_and_gzip(parts: list[Path], tmp_path: Path) -> None:
    """blocksize=None gives one partition per file; gzip files are read whole."""
    import gzip  # noqa: PLC0415

    gz = tmp_path / "part-1.jsonl.gz"
    gz.write_bytes(gzip.compress(parts[1].read_bytes()))
    files = [str(parts[0]), str(gz), str(parts[2])]
    bag = validate_bag(files, checks=LOCAL_CHECKS, blocksize=BLOCKSIZE)
    assert bag.npartitions > 3  # plain files are cut, the gzip file is not
    with dask.config.set(scheduler="synchronous"):
        got = compute(bag)
        whole = validate_bag(files, checks=LOCAL_CHECKS, blocksize=None)
        assert whole.npartitions == 3
        assert compute(whole) == got
    expected = reference(parts, checks=LOCAL_CHECKS)
    for r in expected:
        if r["file"] == str(parts[1]):
            r["file"] = str(gz)
    assert got == expected


def test_same_reports_as_the_cli(parts: list[Path]) -> None:
    """The bag's reports are those ``dryneedle validate FILE...`` prints (SPEC section 7)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dryneedle", "validate", *map(str, parts), "--quiet"],
        capture_output=True, check=False, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # the example data has invalid records
    cli = [json.loads(line) for line in proc.stdout.splitlines()]
    with dask.config.set(scheduler="synchronous"):
        got = compute(validate_bag([str(p) for p in parts], blocksize=BLOCKSIZE))
    assert got == cli


# --- a local cluster (worker processes) ----------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A two-process local cluster (no dashboard) and its client, torn down after the module."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            timeout="60s",
        ) as cluster,
        distributed.Client(cluster, timeout="60s") as c,
    ):
        yield c


@pytest.mark.slow
def test_full_checks_exact_on_a_local_cluster(parts: list[Path], client: Any) -> None:
    """On worker processes, with a custom policy and date, the result equals the in-process pass."""
    bag = validate_bag(glob(parts), policy=CUSTOM, on=ON, blocksize=BLOCKSIZE)
    got = client.compute(bag).result(timeout=120)
    expected = reference(parts, checks=CHECKS, policy=CUSTOM, on=ON)
    assert got == expected
    assert summary(got) == summary(validate_lines(all_lines(parts), policy=CUSTOM, on=ON))
    # the custom policy reached the workers: a series warning became an error
    default = reference(parts, checks=CHECKS, on=ON)
    assert sum(r["valid"] for r in got) < sum(r["valid"] for r in default)


@pytest.mark.slow
def test_map_partitions_recipe_on_a_local_cluster(parts: list[Path], client: Any) -> None:
    """The plain recipe (read_text + map_partitions(validate_partition)) works on workers."""
    db: Any = pytest.importorskip("dask.bag")
    bag = db.read_text(glob(parts), blocksize=None).map_partitions(validate_partition)
    got = client.compute(bag).result(timeout=120)
    assert summary(got) == summary(validate_lines(all_lines(parts), checks=LOCAL_CHECKS))


# --- the command line's bytes (report_lines) ---------------------------------------------------


def _joined(lines: Sequence[Any]) -> bytes:
    return "".join(x + "\n" for x in lines).encode("utf-8")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Generated records in three files, patients across files, odd lines in the middle one."""
    from jsonl_inputs import generated_files  # noqa: PLC0415

    return generated_files(tmp_path_factory.mktemp("generated"))


def test_report_lines_are_the_cli_bytes_on_the_example() -> None:
    """One file cut into blocks: the lines are ``dryneedle validate FILE``'s, byte for byte."""
    from jsonl_inputs import cli_output  # noqa: PLC0415

    bag = report_lines(str(SESSIONS), blocksize=BLOCKSIZE)
    assert bag.npartitions > 5
    with dask.config.set(scheduler="synchronous"):
        got = _joined(compute(bag))
    cli = cli_output([SESSIONS])
    assert b'"series.' in cli
    assert b'"file"' not in cli  # one input: no file key, as the CLI
    assert got == cli


def test_report_lines_are_the_cli_bytes_on_generated_files(generated: list[Path]) -> None:
    """Three files, patients across blocks and files, odd lines: the CLI's bytes."""
    from jsonl_inputs import cli_output  # noqa: PLC0415

    bag = report_lines([str(p) for p in generated], blocksize=20_000, buckets=3)
    assert bag.npartitions > 6
    with dask.config.set(scheduler="synchronous"):
        got = _joined(compute(bag))
    cli = cli_output(generated)
    assert cli.count(b'"series.') >= 5  # the data exercises the series checks
    assert got == cli


def test_report_lines_other_checks_and_date(generated: list[Path]) -> None:
    """``checks`` and ``on`` mean what ``--checks`` and ``--on`` mean."""
    from jsonl_inputs import cli_output  # noqa: PLC0415

    files = [str(p) for p in generated[:2]]
    with dask.config.set(scheduler="synchronous"):
        local = _joined(compute(report_lines(files, checks=LOCAL_CHECKS, on=ON,
                                             blocksize=30_000)))
        series = _joined(compute(report_lines(files, checks=("structure", "series"),
                                              blocksize=30_000)))
    assert local == cli_output(files, "--checks", ",".join(LOCAL_CHECKS), "--on", str(ON))
    assert series == cli_output(files, "--checks", "structure,series")


def test_series_findings_do_not_depend_on_blocks_or_buckets(generated: list[Path]) -> None:
    """Any blocksize and any number of buckets give the same lines."""
    files = [str(p) for p in generated]
    with dask.config.set(scheduler="synchronous"):
        runs = {
            _joined(compute(report_lines(files, blocksize=size, buckets=buckets)))
            for size, buckets in ((None, None), (15_000, 1), (15_000, 7), (50_000, 16))
        }
    assert len(runs) == 1


def test_the_graph_reads_each_block_once(generated: list[Path]) -> None:
    """Each block is read, parsed and checked by one task: its bytes are never a task result.

    No second pass over the record text, and no block of raw bytes that the scheduler could
    move to another worker before it is checked.
    """
    bag = report_lines([str(p) for p in generated], blocksize=20_000)
    graph = dict(bag.__dask_graph__())
    names = [str(k[0] if isinstance(k, tuple) else k) for k in graph]
    checks = [k for k in names if k.startswith("check_block")]
    assert len(checks) == len(set(checks)) == bag.npartitions
    assert not [k for k in names if "read-block" in k or "read_source" in k]


def test_blocks_are_the_dask_bytes_blocks(generated: list[Path]) -> None:
    """The blocks are cut where ``dask.bytes.read_bytes`` cuts them (the same bytes)."""
    from dryneedle.distributed import _dask  # noqa: PLC0415

    read_bytes = cast("Any", pytest.importorskip("dask.bytes")).read_bytes
    run = cast("Any", dask).compute

    for size in (7_000, 20_000, 10**9):
        ours = [_dask.read_source(source) for _, _, _, source in
                _dask.blocks([str(p) for p in generated], size, {})]
        theirs = [b for p in generated
                  for b in run(*read_bytes(str(p), delimiter=b"\n", sample=False,
                                                    blocksize=size)[1][0])]
        assert ours == theirs
        assert b"".join(ours) == b"".join(p.read_bytes() for p in generated)


@pytest.mark.slow
def test_write_jsonl_on_a_local_cluster(generated: list[Path], client: Any,
                                        tmp_path: Path) -> None:
    """On worker processes, with another policy and a date: the files hold the CLI's bytes."""
    from dryneedle.policy import GUIDELINE_POLICY  # noqa: PLC0415
    from jsonl_inputs import cli_output  # noqa: PLC0415

    lines = report_lines([str(p) for p in generated], policy=GUIDELINE_POLICY, on=ON,
                         blocksize=25_000)
    paths = write_jsonl(lines, str(tmp_path / "out"))
    assert [Path(p).name for p in paths][:2] == ["part-00000.jsonl", "part-00001.jsonl"]
    got = b"".join(Path(p).read_bytes() for p in paths)
    assert got == cli_output(generated, "--policy", "guideline", "--on", str(ON))


@pytest.mark.slow
def test_write_reports_on_a_local_cluster(generated: list[Path], client: Any,
                                          tmp_path: Path) -> None:
    """The streaming writer: the CLI's bytes, the same part files as ``write_jsonl``."""
    from dryneedle.policy import GUIDELINE_POLICY  # noqa: PLC0415
    from jsonl_inputs import cli_output  # noqa: PLC0415

    files = [str(p) for p in generated]
    paths = write_reports(files, str(tmp_path / "stream"), policy=GUIDELINE_POLICY, on=ON,
                          blocksize=25_000, client=client)
    assert len(paths) > 6
    got = b"".join(Path(p).read_bytes() for p in paths)
    cli = cli_output(generated, "--policy", "guideline", "--on", str(ON))
    assert cli.count(b'"series.') >= 5
    assert got == cli
    lazy = write_jsonl(report_lines(files, policy=GUIDELINE_POLICY, on=ON, blocksize=25_000),
                       str(tmp_path / "lazy"))
    assert [Path(p).read_bytes() for p in paths] == [Path(p).read_bytes() for p in lazy]
    # other checks, one file (no ``file`` key), the default client
    one = write_reports(files[:1], str(tmp_path / "local"), checks=LOCAL_CHECKS,
                        blocksize=None)
    assert len(one) == 1
    assert Path(one[0]).read_bytes() == cli_output(generated[:1], "--checks",
                                                   ",".join(LOCAL_CHECKS))

