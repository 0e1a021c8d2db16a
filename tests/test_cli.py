"""The command line, tested in-process: output contract, exit codes, inputs, formats."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dryneedle.cli import build_parser, main
from dryneedle.records import _pipeline, validate_records

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
REPORT_KEYS = ["index", "line", "record_id", "valid", "decision", "findings"]
FINDING_KEYS = ["code", "severity", "path", "message", "sources"]


def example(n: int = 1) -> dict[str, Any]:
    """The SPEC §6 record, for patient ``p-<n>`` (distinct patients keep series checks quiet).

    Spec 1.1 puts the pleura 14.6 mm under a female patient's upper trapezius (chen-2018): the
    example's 15 mm without ultrasound is valid only with the needle directed away from the
    lung, which the record then says.
    """
    data: dict[str, Any] = json.loads((DATA / "spec_example.json").read_text())
    data["session"]["insertions"][0]["directed_away_from_lung"] = True
    data["record_id"] = f"r-{n:06d}"
    data["patient"]["patient_id"] = f"p-{n:03d}"
    return data


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def reports(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Two valid records, a broken line, a blank line and an invalid record."""
    bad = example(3)
    bad["record_id"] = "r-bad"
    bad["session"]["insertions"][0]["depth_mm"] = "15"
    second = example()
    second["record_id"] = "r-2"
    second["session"]["date"] = "2026-11-27"
    second["session"]["number"] = 2
    return write_jsonl(tmp_path / "mixed.jsonl", [example(), "{oops", "", bad, second])


def test_validate_prints_one_contract_line_per_record(
    capsys: pytest.CaptureFixture[str], mixed: Path
) -> None:
    """One JSON line per record, in order, exactly the SPEC §7 keys; exit 1 on errors."""
    code, out, err = run(capsys, "validate", str(mixed))
    assert code == 1
    rows = reports(out)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["line"] for r in rows] == [1, 2, 4, 5]
    assert [r["record_id"] for r in rows] == ["r-000001", None, "r-bad", "r-2"]
    assert [r["valid"] for r in rows] == [True, False, False, True]
    for r in rows:
        assert list(r) == REPORT_KEYS
        assert all(list(f) == FINDING_KEYS for f in r["findings"])
    assert rows[1]["findings"][0]["path"] == ""
    assert ("structure.type", "session.insertions[0].depth_mm") in {
        (f["code"], f["path"]) for f in rows[2]["findings"]
    }
    assert rows[0]["decision"] == "eligible_with_precautions"
    assert "4 records: 2 valid, 2 invalid" in err


def test_validate_exit_zero_when_no_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Exit code 0 when no record has an error (warnings allowed)."""
    path = write_jsonl(tmp_path / "ok.jsonl", [example()])
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 0
    assert reports(out)[0]["valid"] is True


def test_validate_usage_and_unreadable_input_exit_two(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Missing files, bad options and bad policies exit 2."""
    assert run(capsys, "validate", str(tmp_path / "missing.jsonl"))[0] == 2
    assert run(capsys, "validate")[0] == 2
    path = write_jsonl(tmp_path / "ok.jsonl", [example()])
    assert run(capsys, "validate", str(path), "--policy", "nonsense")[0] == 2
    assert run(capsys, "validate", str(path), "--on", "27/11/2026")[0] == 2
    assert run(capsys, "validate", str(path), "--checks", "structure,tarot")[0] == 2


def test_validate_gzip_stdin_and_json_array(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gzip files, stdin ('-') and JSON arrays give the same reports as plain JSONL."""
    plain = write_jsonl(tmp_path / "a.jsonl", [example(1), example(2)])
    _, expected, _ = run(capsys, "validate", str(plain))
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert run(capsys, "validate", str(gz))[1] == expected
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(plain.read_bytes())))
    assert run(capsys, "validate", "-")[1] == expected
    array = tmp_path / "a.json"
    array.write_text(json.dumps([example(1), example(2)]))
    rows = reports(run(capsys, "validate", str(array))[1])
    assert [r["valid"] for r in rows] == [True, True]
    assert [r["line"] for r in rows] == [1, 1]


def test_validate_several_files_and_globs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Several inputs keep a global index and name their file."""
    write_jsonl(tmp_path / "a.jsonl", [example()])
    write_jsonl(tmp_path / "b.jsonl", [example(2), "nope"])
    code, out, _ = run(capsys, "validate", str(tmp_path / "*.jsonl"))
    rows = reports(out)
    assert code == 1
    assert [(r["index"], Path(r["file"]).name, r["line"]) for r in rows] == [
        (0, "a.jsonl", 1), (1, "b.jsonl", 1), (2, "b.jsonl", 2),
    ]


def test_validate_text_summary_and_summary_json(
    capsys: pytest.CaptureFixture[str], mixed: Path, tmp_path: Path
) -> None:
    """--format text and summary, and --summary-json with counts by code and decision."""
    code, out, _ = run(capsys, "validate", str(mixed), "--format", "text", "-q")
    assert code == 1
    assert "record r-bad: INVALID" in out
    assert "structure.type at session.insertions[0].depth_mm" in out
    summary_file = tmp_path / "summary.json"
    code, out, err = run(capsys, "validate", str(mixed), "--format", "summary",
                         "--summary-json", str(summary_file))
    assert out.startswith("4 records: 2 valid, 2 invalid")
    assert err == ""
    summary = json.loads(summary_file.read_text())
    assert summary["records"] == 4
    assert summary["invalid"] == 2
    assert summary["findings_by_code"]["structure.json"] == 1
    assert sum(summary["decisions"].values()) == 4


def test_validate_policy_file_and_on_date(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--policy accepts a JSON policy file; --on moves the screening date."""
    child = example()
    child["patient"]["birth_date"] = "2015-01-01"
    path = write_jsonl(tmp_path / "child.jsonl", [child])
    assert reports(run(capsys, "validate", str(path))[1])[0]["decision"] == "not_eligible"
    assert reports(run(capsys, "validate", str(path), "--policy", "guideline")[1])[0][
        "decision"] == "needs_review"
    later = reports(run(capsys, "validate", str(path), "--on", "2040-01-01")[1])[0]
    assert "screening.age_minimum" not in {f["code"] for f in later["findings"]}
    policy = tmp_path / "clinic.json"
    policy.write_text(json.dumps({"base": "default", "name": "clinic", "justification": "test",
                                  "limits": {"min_age_years": 13}}))
    older = example()
    older["patient"]["birth_date"] = "2014-01-01"  # 12 on the session date
    older_path = write_jsonl(tmp_path / "older.jsonl", [older])
    row = reports(run(capsys, "validate", str(older_path))[1])[0]
    assert "screening.age_minimum" not in {f["code"] for f in row["findings"]}
    row = reports(run(capsys, "validate", str(older_path), "--policy", str(policy))[1])[0]
    assert "screening.age_minimum" in {f["code"] for f in row["findings"]}
    # SPEC §1 (1.1): the minimum age is a safety floor; a file lowering it is refused.
    policy.write_text(json.dumps({"justification": "test", "limits": {"min_age_years": 10}}))
    code, _, err = run(capsys, "validate", str(path), "--policy", str(policy))
    assert code == 2
    assert "min_age_years" in err
    policy.write_text(json.dumps({"limits": {"min_age_years": 13}}))
    assert run(capsys, "validate", str(path), "--policy", str(policy))[0] == 2


def test_rules_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`rules` lists every rule with severity and sources; JSON has rationale and limits."""
    code, out, _ = run(capsys, "rules", "--format", "json")
    assert code == 0
    rules = json.loads(out)
    ids = [r["id"] for r in rules]
    assert ids == sorted(ids)
    assert "structure.type" in ids
    assert "screening.pregnancy" in ids
    age = next(r for r in rules if r["id"] == "screening.age_minimum")
    assert age["limits"] == {"min_age_years": 12}
    assert age["sources"] == ["seed"]
    _, text, _ = run(capsys, "rules", "--category", "screening", "--policy", "guideline")
    assert "screening.pregnancy" in text
    assert "structure.type" not in text


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`schema` prints the generated JSON Schema."""
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out)["properties"]["format"] == {"const": "dryneedle.session/1"}


def test_screen_record_patient_and_exit_codes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`screen` takes a record or a bare patient; exit 1 for needs_review / not_eligible."""
    record = tmp_path / "record.json"
    record.write_text(json.dumps(example(), indent=2))
    code, out, _ = run(capsys, "screen", str(record), "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["decision"] == "eligible_with_precautions"
    assert result["on"] == "2026-11-20"
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps({"patient_id": "p-9", "sex": "male"}))
    code, out, _ = run(capsys, "screen", str(patient), "--on", "2026-11-27",
                       "--site", "psoas:left")
    assert code == 1
    assert "decision: needs_review" in out
    assert "missing answers:" in out
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"patient_id": 5}))
    code, out, _ = run(capsys, "screen", str(broken))
    assert code == 1
    assert "patient could not be read" in out
    assert run(capsys, "screen", str(patient), "--site", "psoas")[0] == 2


def test_parser_lists_every_subcommand() -> None:
    """The parser (also rendered in the docs) has the contract's sub-commands."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"validate", "screen", "rules", "schema"} <= set(sub.choices)  # type: ignore[arg-type]


def test_python_dash_m_runs_the_cli() -> None:
    """`python -m dryneedle` works the same as the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "dryneedle", "schema"], capture_output=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["title"].startswith("dryneedle session record")


EXAMPLES = ROOT / "examples" / "sessions.jsonl"


@pytest.mark.slow
def test_jobs_two_equals_jobs_one_byte_for_byte(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """`--jobs 2` output is byte-identical to `--jobs 1` on the example data (series too)."""
    outputs = []
    for jobs in ("1", "2"):
        code = main(["validate", str(EXAMPLES), "--jobs", jobs, "-q"])
        out, _ = capfdbinary.readouterr()
        outputs.append((code, out))
    assert outputs[0][0] == outputs[1][0] == 1
    assert outputs[0][1] == outputs[1][1]
    assert outputs[0][1].count(b"\n") == 300


def test_cli_output_equals_the_python_api(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """The CLI's report lines are exactly validate_records' reports (series included)."""
    main(["validate", str(EXAMPLES), "-q"])
    out, _ = capfdbinary.readouterr()
    lines = [ln for ln in EXAMPLES.read_bytes().splitlines() if ln.strip()]
    api = list(validate_records(lines))
    cli = [json.loads(line) for line in out.splitlines()]
    assert cli == [r.as_dict() for r in api]  # the example file has no blank lines
    assert any(f["code"].startswith("series.") for r in cli for f in r["findings"])


def test_small_chunks_keep_series_exact(monkeypatch: pytest.MonkeyPatch,
                                        capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """Series checks see across chunk boundaries (chunks of 7 records here)."""
    main(["validate", str(EXAMPLES), "-q"])
    whole, _ = capfdbinary.readouterr()
    monkeypatch.setattr(_pipeline, "CHUNK_RECORDS", 7)
    monkeypatch.setattr(_pipeline.run, "__kwdefaults__",
                        {**(_pipeline.run.__kwdefaults__ or {}), "chunk_records": 7})
    main(["validate", str(EXAMPLES), "-q"])
    chunked, _ = capfdbinary.readouterr()
    assert chunked == whole


@pytest.mark.slow
def test_jobs_two_on_mixed_inputs_keeps_files_and_lines(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Several files (plain, gzip, JSON array, one listed twice): same bytes for 1 and 2 jobs.

    Workers read byte ranges of plain files themselves; line numbers restart per input.
    """
    data = EXAMPLES.read_bytes()
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b"\n" + data)  # a leading blank line shifts every line number
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    array = tmp_path / "c.json"
    array.write_text(json.dumps([example(7), example(8)], indent=1))
    args = [str(plain), str(gz), str(array), str(plain)]
    outputs = []
    for jobs in ("1", "2"):
        main(["validate", *args, "--jobs", jobs, "-q"])
        outputs.append(capfdbinary.readouterr()[0])
    assert outputs[0] == outputs[1]
    rows = [json.loads(line) for line in outputs[0].splitlines()]
    assert len(rows) == 300 + 300 + 2 + 300
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert (rows[0]["line"], rows[0]["file"]) == (2, str(plain))
    assert (rows[300]["line"], rows[300]["file"]) == (1, str(gz))
    assert (rows[600]["line"], rows[602]["line"]) == (2, 2)


def test_progress_bar_on_a_terminal_leaves_stdout_unchanged(
    monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """With stderr on a terminal a progress bar is drawn there; stdout stays the same."""
    main(["validate", str(EXAMPLES), "-q"])
    quiet, _ = capfdbinary.readouterr()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    main(["validate", str(EXAMPLES)])
    loud, err = capfdbinary.readouterr()
    assert loud == quiet
    assert b"300 records:" in err
