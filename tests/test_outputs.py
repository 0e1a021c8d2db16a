"""Outputs for pipelines (SPEC §7, 1.1): --output, splits, failure cases, CI formats, thresholds.

Run in-process through :func:`dryneedle.cli.main`. The SARIF log is validated against the
official SARIF 2.1.0 schema (``tests/data/sarif-schema-2.1.0.json``, provenance beside it).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle.cli import main
from dryneedle.findings import all_rules
from dryneedle.outputs import (
    FAILURE_COLUMNS,
    InputSplitter,
    compact_json,
    github_escape_data,
    github_escape_property,
    wilson_interval,
)
from dryneedle.sources import SOURCES

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "sessions.jsonl"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def example(n: int = 1) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "spec_example.json").read_text())
    data["record_id"] = f"r-{n:06d}"
    data["patient"]["patient_id"] = f"p-{n:03d}"
    # SPEC §6's example needles the upper trapezius 15 mm deep, past the 14.6 mm pleura
    # (chen-2018, spec 1.1): valid only when the needle was directed away from the lung.
    data["session"]["insertions"][0]["directed_away_from_lung"] = True
    return data


def invalid(n: int) -> dict[str, Any]:
    data = example(n)
    data["session"]["insertions"][0]["depth_mm"] = "15"
    return data


def reports_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    """CRLF and LF lines, a blank line, a broken line, a last line without a terminator."""
    lines = [
        json.dumps(example(1)).encode() + b"\r\n",
        b"\n",
        b"{oops\n",
        json.dumps(invalid(2), indent=None, separators=(", ", ":  ")).encode() + b"\n",
        b"   \r\n",
        json.dumps(example(3), ensure_ascii=False).replace("p-003", "p-\u00e9").encode(),
    ]
    path = tmp_path / "tricky.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def expected_split(path: Path, reports: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    raw = path.read_bytes().split(b"\n")
    lines = [piece + b"\n" for piece in raw[:-1]] + ([raw[-1]] if raw[-1] else [])
    valid = b"".join(lines[r["line"] - 1] for r in reports if r["valid"])
    bad = b"".join(lines[r["line"] - 1] for r in reports if not r["valid"])
    return valid, bad


# --- --output ------------------------------------------------------------------------------


def test_output_file_holds_the_reports_and_summary_stays_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, plain, _ = run(capsys, "validate", EXAMPLES)
    target = tmp_path / "reports.jsonl"
    code2, out, err = run(capsys, "validate", EXAMPLES, "--output", target)
    assert (code, code2) == (1, 1)
    assert out == ""
    assert target.read_text(encoding="utf-8") == plain
    assert err.startswith("300 records: 209 valid, 91 invalid")


def test_unwritable_outputs_exit_two_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nowhere = tmp_path / "no" / "such" / "dir" / "x"
    for option in ("--output", "--valid-out", "--invalid-out", "--failure-cases"):
        code, _, err = run(capsys, "validate", EXAMPLES, option, nowhere)
        assert code == 2, option
        assert f"{option}:" in err


# --- splits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_split_is_byte_for_byte_in_input_order(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tricky: Path, jobs: str
) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    code, out, _ = run(capsys, "validate", tricky, "-j", jobs, "--valid-out", good,
                       "--invalid-out", bad)
    reports = reports_of(out)
    assert [r["valid"] for r in reports] == [True, False, False, True]
    valid, invalid_ = expected_split(tricky, reports)
    assert good.read_bytes() == valid
    assert bad.read_bytes() == invalid_
    assert good.read_bytes().startswith(json.dumps(example(1)).encode() + b"\r\n")
    assert good.read_bytes().endswith(b"}")  # the last line had no terminator: none added
    assert code == 1


def test_split_with_jobs_matches_single_process_on_many_chunks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Several chunks per worker (small chunks through the real pipeline): same split."""
    from dryneedle.records import _pipeline  # noqa: PLC0415 - shrink the chunks for the test

    rows = [example(n) if n % 3 else invalid(n) for n in range(1, 400)]
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + (b"\r\n" if n % 2 else b"\n")
                              for n, r in enumerate(rows)))
    mp = pytest.MonkeyPatch()
    mp.setattr(_pipeline, "CHUNK_RECORDS", 7)
    defaults = _pipeline.run.__kwdefaults__
    assert defaults is not None
    assert "chunk_records" in defaults
    mp.setitem(defaults, "chunk_records", 7)
    try:
        results = {}
        for jobs in ("1", "2"):
            good, bad = tmp_path / f"g{jobs}", tmp_path / f"b{jobs}"
            _, out, _ = run(capsys, "validate", path, "-j", jobs, "--valid-out", good,
                            "--invalid-out", bad)
            results[jobs] = (good.read_bytes(), bad.read_bytes(), out)
    finally:
        mp.undo()
    assert results["1"] == results["2"]
    valid, bad_bytes = expected_split(path, reports_of(results["1"][2]))
    assert results["1"][:2] == (valid, bad_bytes)
    assert bad_bytes.count(b"\n") == len([r for r in rows if r["session"]["insertions"][0]
                                          ["depth_mm"] == "15"])


def test_split_of_a_json_array_writes_compact_jsonl_elements(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = ('[\n  ' + json.dumps(example(1), indent=2) + ',\n  ' + json.dumps(invalid(2)) +
            ', 7, {"a": 1.0, "b": "x  y"}\n]\n')
    path = tmp_path / "records.json"
    path.write_text(text, encoding="utf-8")
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    _, out, _ = run(capsys, "validate", path, "--valid-out", good, "--invalid-out", bad)
    assert [r["valid"] for r in reports_of(out)] == [True, False, False, False]
    assert good.read_text("utf-8").splitlines() == [compact_json(json.dumps(example(1)))]
    lines = bad.read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [invalid(2), 7, {"a": 1.0, "b": "x  y"}]
    assert lines[2] == '{"a":1.0,"b":"x  y"}'  # the element's own text, blanks removed


def test_split_of_a_truncated_array_counts_the_unwritable_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "cut.json"
    path.write_text("[" + json.dumps(example(1)) + ', {"format": ', encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    code, out, err = run(capsys, "validate", path, "--invalid-out", bad)
    assert code == 1
    assert [r["valid"] for r in reports_of(out)] == [True, False]
    assert bad.read_bytes() == b""
    assert "1 report(s) had no record text to copy" in err


def test_split_of_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tricky: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(tricky.read_bytes())))
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    _, out, _ = run(capsys, "validate", "-", "--valid-out", good, "--invalid-out", bad)
    assert (good.read_bytes(), bad.read_bytes()) == expected_split(tricky, reports_of(out))


def test_splitter_refuses_an_input_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    split = InputSplitter(lambda name: open(name, "rb"), io.BytesIO(), io.BytesIO())  # noqa: SIM115
    try:
        with pytest.raises(RuntimeError, match="no record at line 5"):
            split.add(str(path), 5, True, array=False)
    finally:
        split.close()


# --- failure cases ------------------------------------------------------------------------------


def _all_findings(out: str) -> list[tuple[Any, ...]]:
    return [(r["index"], r["line"], r["record_id"], f["code"], f["severity"], f["path"],
             f["message"]) for r in reports_of(out) for f in r["findings"]]


def test_failure_cases_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "failures.csv"
    _, out, _ = run(capsys, "validate", EXAMPLES, "--failure-cases", target)
    with target.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == FAILURE_COLUMNS
    expected = [tuple("" if v is None else str(v) for v in row) for row in _all_findings(out)]
    assert [tuple(r) for r in rows[1:]] == expected
    assert len(expected) == 830


def test_failure_cases_parquet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (extra 'parquet')")
    target = tmp_path / "failures.parquet"
    _, out, _ = run(capsys, "validate", EXAMPLES, "-j", "2", "--failure-cases", target)
    table = pq.read_table(target)
    assert tuple(table.column_names) == FAILURE_COLUMNS
    assert str(table.schema.field("index").type) == "int64"
    assert [tuple(row.values()) for row in table.to_pylist()] == _all_findings(out)


def test_failure_cases_parquet_without_pyarrow_exits_two(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, out, err = run(capsys, "validate", EXAMPLES, "--failure-cases",
                         tmp_path / "f.parquet")
    assert code == 2
    assert out == ""
    assert "pip install 'dryneedle[parquet]'" in err


# --- CI formats ---------------------------------------------------------------------------------


def test_sarif_is_valid_against_the_official_schema(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    code, out, _ = run(capsys, "validate", EXAMPLES, "--format", "sarif", "-q")
    assert code == 1
    log = json.loads(out)
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(log)
    run_ = log["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in all_rules()]
    by_id = {r["id"]: r for r in rules}
    for rule in all_rules():
        urls = [SOURCES[s].url for s in rule.sources if SOURCES[s].url]
        assert by_id[rule.id].get("helpUri") == (urls[0] if urls else None)
        for s in rule.sources:
            assert s in by_id[rule.id]["help"]["text"]
    _, plain, _ = run(capsys, "validate", EXAMPLES)
    findings = [(r, f) for r in reports_of(plain) for f in r["findings"]]
    results = run_["results"]
    assert len(results) == len(findings) == 830
    levels = {"error": "error", "warning": "warning", "info": "note"}
    for result, (report, finding) in zip(results, findings, strict=True):
        assert result["ruleId"] == finding["code"]
        assert rules[result["ruleIndex"]]["id"] == finding["code"]
        assert result["level"] == levels[finding["severity"]]
        location = result["locations"][0]
        assert location["physicalLocation"]["region"]["startLine"] == report["line"]
        assert location["logicalLocations"][0]["fullyQualifiedName"] == (
            finding["path"] or "<record>")
        assert result["properties"]["path"] == finding["path"]
    assert run_["properties"]["policyFingerprint"]


def test_sarif_of_an_empty_input_is_valid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    code, out, _ = run(capsys, "validate", empty, "--format", "sarif")
    assert code == 0
    jsonschema.Draft4Validator(schema).validate(json.loads(out))
    assert json.loads(out)["runs"][0]["results"] == []


def test_junit_one_test_case_per_record(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "junit.xml"
    code, out, _ = run(capsys, "validate", EXAMPLES, "--format", "junit", "-o", target, "-q")
    assert (code, out) == (1, "")
    root = ET.fromstring(target.read_bytes())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("300", "91")
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 300
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 91
    _, plain, _ = run(capsys, "validate", EXAMPLES)
    for case, report in zip(cases, reports_of(plain), strict=True):
        assert case.get("name", "").startswith(f"line {report['line']}:")
        failure = case.find("failure")
        assert (failure is not None) == (not report["valid"])
        if failure is not None:
            errors = [f for f in report["findings"] if f["severity"] == "error"]
            assert failure.get("type") == errors[0]["code"]


def test_junit_escapes_what_xml_cannot_hold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record = example(1)
    record["session"]["insertions"][0]["muscle"] = "bad\x01<&>\ud800"
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(record), encoding="utf-8")
    _, out, _ = run(capsys, "validate", path, "--format", "junit")
    root = ET.fromstring(out.encode("utf-8"))
    assert root.find("./testsuite/testcase/failure") is not None


def test_github_annotations(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, plain, _ = run(capsys, "validate", EXAMPLES)
    _, out, _ = run(capsys, "validate", EXAMPLES, "--format", "github", "-q")
    lines = out.splitlines()
    findings = [(r, f) for r in reports_of(plain) for f in r["findings"]]
    assert len(lines) == len(findings)
    pattern = re.compile(r"^::(error|warning|notice) file=([^,]*),line=(\d+),title=([^:]*)::(.*)$")
    kinds = {"error": "error", "warning": "warning", "info": "notice"}
    for line, (report, finding) in zip(lines, findings, strict=True):
        m = pattern.match(line)
        assert m, line
        assert m.group(1) == kinds[finding["severity"]]
        assert m.group(2) == github_escape_property(str(EXAMPLES))
        assert int(m.group(3)) == report["line"]
        assert m.group(4) == finding["code"]


def test_github_escaping_rules() -> None:
    assert github_escape_data("a%b\r\nc:d,e") == "a%25b%0D%0Ac:d,e"
    assert github_escape_property("a%b\r\nc:d,e") == "a%25b%0D%0Ac%3Ad%2Ce"


# --- thresholds -------------------------------------------------------------------------------


def test_fail_on_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(example(1)) + "\n", encoding="utf-8")
    _, out, _ = run(capsys, "validate", path)
    report = reports_of(out)[0]
    assert report["valid"]
    assert any(f["severity"] == "warning" for f in report["findings"])
    assert run(capsys, "validate", path)[0] == 0
    assert run(capsys, "validate", path, "--fail-on", "error")[0] == 0
    code, _, err = run(capsys, "validate", path, "--fail-on", "warning")
    assert code == 1
    assert "invalid rate: 100.00 % (1 of 1 records with an error or a warning)" in err


def test_max_invalid_rate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", EXAMPLES, "--max-invalid-rate", "0.4")
    assert code == 0
    assert "invalid rate: 30.33 % (91 of 300 records with an error), allowed 40.00 %: pass" in err
    code, _, err = run(capsys, "validate", EXAMPLES, "--max-invalid-rate", "0.3")
    assert code == 1
    assert "allowed 30.00 %: FAIL" in err
    summary = tmp_path / "s.json"
    code, out, _ = run(capsys, "validate", EXAMPLES, "--max-invalid-rate", "0.3034",
                       "--format", "summary", "--summary-json", summary)
    assert code == 0
    assert "invalid rate: 30.33 %" in out
    threshold = json.loads(summary.read_text())["threshold"]
    assert threshold["failing"] == 91
    assert threshold["passed"] is True
    for bad in ("-0.1", "1.5", "nan"):
        assert run(capsys, "validate", EXAMPLES, "--max-invalid-rate", bad)[0] == 2, bad


def test_default_output_unchanged_by_the_new_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Splits, tables and thresholds do not change the report lines on stdout."""
    _, plain, plain_err = run(capsys, "validate", EXAMPLES)
    _, out, err = run(capsys, "validate", EXAMPLES, "--valid-out", tmp_path / "v",
                      "--failure-cases", tmp_path / "f.csv", "--fail-on", "warning")
    assert out == plain
    assert err.startswith(plain_err)


# --- Wilson ---------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10_000), st.data())
def test_wilson_interval_holds_the_observed_rate(trials: int, data: st.DataObject) -> None:
    successes = data.draw(st.integers(min_value=0, max_value=trials))
    interval = wilson_interval(successes, trials)
    assert interval is not None
    low, high = interval
    assert 0.0 <= low <= successes / trials <= high <= 1.0


def test_rates_report_the_wilson_intervals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rates", EXAMPLES, "--format", "json")
    assert code == 1
    data = json.loads(out)
    bruising = next(k for k in data["kinds"] if k["kind"] == "bruising")
    assert bruising["ci95"] == list(wilson_interval(bruising["events"], data["sessions"]) or ())
    assert data["mild"]["ci95"] == list(wilson_interval(data["mild"]["events"],
                                                        data["sessions"]) or ())
    _, text, _ = run(capsys, "rates", EXAMPLES)
    assert "95 % confidence intervals of the observed rates (Wilson score interval):" in text
    assert "  bruising          3.88 % - 9.64 %" in text


def test_documented_constants_are_the_code() -> None:
    """docs/api/outputs.md spells out the module's constants: they must match the code."""
    from dryneedle import outputs  # noqa: PLC0415

    page = (ROOT / "docs" / "api" / "outputs.md").read_text(encoding="utf-8")
    for name in ("FAILURE_COLUMNS", "FAIL_ON", "SARIF_SCHEMA", "Z_95"):
        value = getattr(outputs, name)
        assert f".. py:data:: {name}\n   :module: dryneedle.outputs\n   :value: {value!r}" in page
