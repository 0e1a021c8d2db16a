"""Regression tests for problems found in review: each once read as safe, or crashed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dryneedle.cli import main
from dryneedle.fhir import patient_from_fhir
from dryneedle.model import Patient, SiteFinding
from dryneedle.policy import DEFAULT_POLICY
from dryneedle.records import validate_records
from dryneedle.screening import PlannedSite, screen

DATA = Path(__file__).parent / "data"


def record(n: int = 1) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "spec_example.json").read_text())
    data["record_id"] = f"r-{n}"
    data["patient"]["patient_id"] = f"p-{n}"
    # SPEC §6's example needles the upper trapezius 15 mm deep, past the 14.6 mm pleura
    # (chen-2018, spec 1.1): valid only when the needle was directed away from the lung.
    data["session"]["insertions"][0]["directed_away_from_lung"] = True
    return data


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_jsonl_starting_with_an_array_line_is_not_silently_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSONL line that starts with '[' is one bad record, and every other line is read.

    Spec §7 (1.1): the format comes from the name, never from sniffing the first byte.
    """
    path = tmp_path / "odd.jsonl"
    path.write_text("[]\n" + json.dumps(record()) + "\n")
    code, out, _ = run(capsys, "validate", str(path), "-q")
    assert code == 1
    first, second = [json.loads(line) for line in out.splitlines()]
    assert (first["line"], first["valid"]) == (1, False)
    assert first["findings"][0]["code"] == "structure.not_object"
    assert (second["line"], second["valid"]) == (2, True)
    # The same content named .json is one JSON document that goes on after its ']'.
    named = tmp_path / "odd.json"
    named.write_text("[]\n" + json.dumps(record()) + "\n")
    code, out, _ = run(capsys, "validate", str(named), "-q")
    assert code == 1
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert "after the end of the JSON array" in row["findings"][0]["message"]


def test_screen_never_uses_today_for_a_record_with_a_broken_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record whose session cannot be read is blocked (exit 1), not screened on today."""
    data = record()
    data["session"]["number"] = 0
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    code, out, _ = run(capsys, "screen", str(path))
    assert code == 1
    assert "session could not be read" in out
    assert "decision:" not in out
    code, out, _ = run(capsys, "screen", str(path), "--on", "2026-11-20")
    assert code == 1  # screened with --on, but the input still has an error
    assert "problems in the input" in out


def test_planned_sites_given_as_strings_are_typed_and_do_not_poison_the_memo() -> None:
    """PlannedSite converts strings, so 'midline' covers both sides; later calls stay typed."""
    patient = Patient(patient_id="p-x", site_findings=(
        SiteFinding(region="lower_back", side="left", kind="infection"),))
    result = screen(patient, on=date(2026, 11, 27),
                    sites=[PlannedSite(muscle="lumbar_multifidus", side="midline")])
    assert [s.allowed for s in result.site_decisions] == [False]
    plain = Patient(patient_id="p-y")
    screen(plain, on=date(2026, 11, 27), sites=[PlannedSite(muscle="deltoid", side="left")])
    again = screen(plain, on=date(2026, 11, 27), sites=[("deltoid", "left")])
    assert again.as_dict()["sites"][0]["side"] == "left"


@pytest.mark.parametrize(("rule", "severity"), [
    ("aftercare.triage.lung_symptoms", "warning"),
    ("aftercare.triage.infection_signs", "info"),
    ("aftercare.triage.chest_symptoms", "info"),
    ("aftercare.triage.fainting", "info"),
    ("aftercare.triage.bleeding", "info"),
    ("screening.unknown_answer", "info"),
])
def test_warning_signs_cannot_be_overridden_into_expected(rule: str, severity: str) -> None:
    """No policy may turn a warning sign (or an unknown answer) into something milder."""
    with pytest.raises(ValueError, match="cannot go below"):
        DEFAULT_POLICY.override(rules={rule: {"severity": severity}}, justification="test")


def test_fhir_pregnancy_conflict_is_not_resolved_by_a_form_no() -> None:
    """Same-day pregnant / not-pregnant observations are never settled by a form 'no': the
    current "pregnant" status counts (SPEC 1.1 §8; before, the pair was a conflict, unknown)."""

    def obs(code: str, oid: str) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": "2026-11-20",
                "valueCodeableConcept": {"coding": [{"system": "http://loinc.org",
                                                     "code": code}]}}

    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female"}},
        {"resource": obs("LA15173-0", "o1")},
        {"resource": obs("LA26683-5", "o2")},
    ]}
    inputs = patient_from_fhir(bundle, answers={"pregnancy": "not_pregnant"})
    assert inputs.patient.pregnancy is not None
    assert inputs.patient.pregnancy.value == "pregnant"


def test_deeply_nested_input_is_a_report_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pathological nesting gives a structure.json report (lines and arrays), never a crash."""
    deep = "[" * 200_000
    (report,) = validate_records([deep])
    assert report.findings[0].code == "structure.json"
    path = tmp_path / "deep.json"
    path.write_text(deep)
    code, out, _ = run(capsys, "validate", str(path), "-q")
    assert code == 1
    assert json.loads(out)["findings"][0]["code"] == "structure.json"


@pytest.mark.parametrize("content", ["[]", '{"justification": "x", "limits": 5}',
                                     '{"justification": "x", "rules": []}',
                                     '{"justification": "x", "rules": {"screening.diabetes": 1}}'])
def test_malformed_policy_files_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    """A malformed policy file exits 2 with a message, not a traceback."""
    policy = tmp_path / "p.json"
    policy.write_text(content)
    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps(record()) + "\n")
    code, _, err = run(capsys, "validate", str(data), "--policy", str(policy))
    assert code == 2
    assert "invalid policy file" in err


def test_unwritable_summary_json_fails_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--summary-json to a path that cannot be written is a usage error, found up front."""
    data = tmp_path / "r.jsonl"
    data.write_text(json.dumps(record()) + "\n")
    code, out, err = run(capsys, "validate", str(data),
                         "--summary-json", str(tmp_path / "missing" / "s.json"))
    assert code == 2
    assert out == ""
    assert "--summary-json" in err


def test_json_array_string_elements_are_not_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A string inside a JSON array is a value, not JSON text to parse again."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps([json.dumps(record()), "x"]))
    code, out, _ = run(capsys, "validate", str(path), "-q")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [r["findings"][0]["code"] for r in rows] == ["structure.not_object"] * 2


def test_non_string_mapping_keys_give_string_paths() -> None:
    """Mappings from Python may have non-string keys; paths are always strings."""
    data: dict[Any, Any] = record()
    data[(1, 2)] = 3
    (report,) = validate_records([data], checks=("structure",))
    assert [(f.code, f.path) for f in report.findings] == [("structure.unknown_field", "(1, 2)")]
