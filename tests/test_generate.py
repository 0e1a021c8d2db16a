"""Tests of the synthetic record generator ``examples/generate.py`` and its shipped output."""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dryneedle.catalog import MUSCLES
from dryneedle.model import Sex
from dryneedle.records import FORMAT, structure_record, validate_records

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "generate.py"
SHIPPED = ROOT / "examples" / "sessions.jsonl"
README = ROOT / "examples" / "README.md"
# The documented command that produced examples/sessions.jsonl (also in examples/README.md).
SHIPPED_ARGS = ("--count", "300", "--seed", "2026", "--invalid-rate", "0.08",
                "-o", "examples/sessions.jsonl")


def _load() -> ModuleType:
    # examples/ is not a package: load the script from its path, under the name its doctest
    # imports it by.
    if "generate" in sys.modules and getattr(sys.modules["generate"], "__file__", None) == str(
        SCRIPT
    ):
        return sys.modules["generate"]
    spec = importlib.util.spec_from_file_location("generate", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = module
    spec.loader.exec_module(module)
    return module


gen = _load()


def _structure_reports(items: Any) -> list[Any]:
    return list(validate_records(items, checks=("structure",)))


def test_doctests() -> None:
    """The examples in the script's docstring run."""
    result = doctest.testmod(gen)
    assert result.attempted > 0
    assert result.failed == 0


def test_same_seed_same_lines() -> None:
    """The same arguments give the same lines; another seed gives different lines."""
    a = list(gen.generate_lines(200, seed=7, invalid_rate=0.1))
    b = list(gen.generate_lines(200, seed=7, invalid_rate=0.1))
    c = list(gen.generate_lines(200, seed=8, invalid_rate=0.1))
    assert a == b
    assert a != c
    assert sum(x != y for x, y in zip(a, c, strict=True)) > 150


@pytest.mark.parametrize("n", [0, 1, 17, 250])
def test_requested_count(n: int) -> None:
    """Exactly ``n`` lines and ``n`` items are produced, record ids numbered from 1."""
    lines = list(gen.generate_lines(n, seed=1, invalid_rate=0.0))
    assert len(lines) == n
    assert len(list(gen.generate(n, seed=1))) == n
    assert [json.loads(line)["record_id"] for line in lines] == [
        f"r-{i:06d}" for i in range(1, n + 1)
    ]


def test_shorter_run_is_a_prefix() -> None:
    """A shorter run with the same seed is a prefix of a longer one."""
    long = list(gen.generate_lines(400, seed=3, invalid_rate=0.1))
    assert list(gen.generate_lines(150, seed=3, invalid_rate=0.1)) == long[:150]


def test_lines_are_compact_encodings_of_items() -> None:
    """Each line is the compact JSON of the matching item, or the item itself when raw text."""
    items = list(gen.generate(3000, seed=5, invalid_rate=0.2, unknown_field_rate=0.1))
    lines = list(gen.generate_lines(3000, seed=5, invalid_rate=0.2, unknown_field_rate=0.1))
    for item, line in zip(items, lines, strict=True):
        assert "\n" not in line
        if isinstance(item, str):
            assert item == line
        else:
            assert line == json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def test_clean_records_are_structurally_valid() -> None:
    """With no invalid rate every record structures, without any structural finding."""
    items = list(gen.generate(1000, seed=11, invalid_rate=0.0))
    reports = _structure_reports(items)
    assert all(r.valid and not r.findings for r in reports)
    for item in items:
        record = structure_record(item)
        assert record.format == FORMAT
        assert record.session.number >= 1


def test_clean_records_do_not_depend_on_invalid_rate() -> None:
    """Corruptions use their own random stream: records left valid are the clean records."""
    clean = list(gen.generate_lines(600, seed=4, invalid_rate=0.0))
    mixed = list(gen.generate_lines(600, seed=4, invalid_rate=0.3, unknown_field_rate=0.0))
    reports = _structure_reports(mixed)
    kept = [i for i, r in enumerate(reports) if r.valid]
    assert 360 < len(kept) < 480
    assert all(mixed[i] == clean[i] for i in kept)


def test_invalid_rate_is_honoured() -> None:
    """About ``invalid_rate`` of the records have structural errors; warnings come on top."""
    n = 4000
    reports = _structure_reports(gen.generate_lines(n, seed=2, invalid_rate=0.1))
    invalid = sum(not r.valid for r in reports)
    warned = sum(r.valid and bool(r.findings) for r in reports)
    assert 0.08 * n < invalid < 0.12 * n
    # unknown extra fields: a quarter of the invalid rate, warnings only
    assert 0.015 * n < warned < 0.035 * n
    assert all(f.code == "structure.unknown_field" for r in reports if r.valid for f in r.findings)


def test_every_corruption_is_a_structural_error() -> None:
    """At rate 1 every record is invalid, through a varied set of structural problems."""
    items = list(gen.generate(1500, seed=9, invalid_rate=1.0))
    reports = _structure_reports(items)
    assert not any(r.valid for r in reports)
    codes = Counter(f.code for r in reports for f in r.findings if f.severity == "error")
    assert set(codes) >= {
        "structure.json", "structure.not_object", "structure.format", "structure.missing",
        "structure.type", "structure.enum", "structure.date", "structure.range",
    }
    paths = {f.path for r in reports for f in r.findings}
    assert {"record_id", "session.date", "patient.sex", "session.post.needles_removed",
            "session.number"} <= paths
    assert any(p.endswith(".muscle") for p in paths)
    assert any(p.startswith("patient.history.") for p in paths)
    assert any(isinstance(item, str) for item in items)  # lines that are not JSON at all


def _issues(record: dict[str, Any]) -> set[str]:
    """Name the deliberate protocol problems present in a (structurally valid) record."""
    s = record["session"]
    ins = s["insertions"]
    out = set()
    lung_sides = {i["side"] for i in ins if MUSCLES[i["muscle"]].over_lung}
    for i in ins:
        depth = i["depth_mm"]
        over_lung = MUSCLES[i["muscle"]].over_lung
        if over_lung and i["technique"] == "deep" and depth is not None and depth >= 31:
            out.add("lung_depth")
        if i["technique"] == "superficial" and depth is not None and depth > 10:
            out.add("superficial_depth")
        if i["dwell_s"] is not None and i["dwell_s"] > 1200:
            out.add("dwell")
        pleura = MUSCLES[i["muscle"]].pleura_depth_for(
            None if record["patient"]["sex"] is None else Sex(record["patient"]["sex"]))
        if (pleura is not None and depth is not None and depth > pleura
                and i["ultrasound_guided"] is not True
                and i.get("directed_away_from_lung") is not True):
            out.add("pleura_depth")
        if i["muscle"] == "psoas" and i["technique"] == "deep" and record["patient"]["history"].get(
            "anticoagulant_therapy"
        ):
            out.add("psoas_anticoagulant")
    if s["number"] == 1 and len(ins) > 2:
        out.add("first_session_count")
    if len(lung_sides) > 1:
        out.add("both_thorax")
    if s["practitioner"]["dry_needling_trained"] is False:
        out.add("untrained")
    if s["post"]["needles_removed"] is not None and s["post"]["needles_removed"] != len(ins):
        out.add("removed")
    return out


def test_protocol_issues_are_injected_and_structurally_valid() -> None:
    """At protocol-issue rate 1 every record carries a protocol problem yet stays valid."""
    items = list(gen.generate(800, seed=6, invalid_rate=0.0, protocol_issue_rate=1.0))
    assert all(r.valid for r in _structure_reports(items))
    seen = Counter(issue for item in items for issue in _issues(item))
    assert all(_issues(item) for item in items)
    assert set(seen) == {
        "lung_depth", "superficial_depth", "dwell", "psoas_anticoagulant",
        "first_session_count", "both_thorax", "untrained", "removed", "pleura_depth",
    }


def test_clean_records_respect_the_protocol_by_construction() -> None:
    """Without injected issues the generator keeps depths, sides and first-session counts sane."""
    items = list(gen.generate(2000, seed=12, invalid_rate=0.0, protocol_issue_rate=0.0))
    for item in items:
        issues = _issues(item)
        # the only natural protocol finding is an occasional needle-count mismatch
        assert issues <= {"removed", "psoas_anticoagulant"}
        for i in item["session"]["insertions"]:
            if i["depth_mm"] is None:
                continue
            assert i["depth_mm"] <= i["needle"]["length_mm"]
            if i["technique"] == "superficial":
                assert 5 <= i["depth_mm"] <= 10
            else:
                assert i["depth_mm"] > 10
            limit = MUSCLES[i["muscle"]].depth_limit_mm
            if limit is not None:
                assert i["depth_mm"] <= limit
            assert (i["dwell_s"] is None) == (i["manipulation"] == "pistoning")


def test_sessions_form_plausible_series() -> None:
    """Each patient's sessions start at 1 and increase in number and date, weekly-ish."""
    last: dict[str, tuple[int, date]] = {}
    gaps = []
    for item in gen.generate(3000, seed=13, invalid_rate=0.0):
        pid = item["patient"]["patient_id"]
        s = item["session"]
        day = date.fromisoformat(s["date"])
        if pid in last:
            number, previous = last[pid]
            assert s["number"] == number + 1
            assert day > previous
            gaps.append((day - previous).days)
        else:
            assert s["number"] == 1
        last[pid] = (s["number"], day)
    assert 6 <= sorted(gaps)[len(gaps) // 2] <= 8  # median gap about a week


def test_population_shares() -> None:
    """Ages, sexes, history answers and unknowns come in realistic proportions."""
    patients: dict[str, dict[str, Any]] = {}
    for item in gen.generate(6000, seed=14, invalid_rate=0.0, protocol_issue_rate=0.0):
        patients.setdefault(item["patient"]["patient_id"], item)
    n = len(patients)
    ages: Counter[str] = Counter()
    unknown = 0
    anticoagulant = 0
    for item in patients.values():
        p = item["patient"]
        h = p["history"]
        unknown += len(h) < 12 or None in h.values()
        anticoagulant += h.get("anticoagulant_therapy") is True
        if p["birth_date"] is not None:
            age = (date.fromisoformat(item["session"]["date"])
                   - date.fromisoformat(p["birth_date"])).days // 365
            ages["child" if age < 12 else "minor" if age < 18 else "adult"] += 1
        if p["sex"] == "male":
            assert p["pregnancy"] != "pregnant"
    assert ages["adult"] > 0.9 * n
    assert 0 < ages["child"] < ages["minor"] < 0.06 * n
    assert 0.02 * n < unknown < 0.09 * n
    assert 0.03 * n < anticoagulant < 0.09 * n


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63), n=st.integers(min_value=0, max_value=30))
def test_any_seed_gives_valid_clean_records(seed: int, n: int) -> None:
    """For any seed, clean generation yields ``n`` structurally valid records."""
    reports = _structure_reports(gen.generate_lines(n, seed=seed, invalid_rate=0.0))
    assert len(reports) == n
    assert all(r.valid for r in reports)


def test_bad_arguments_raise() -> None:
    """A negative count or a rate outside [0, 1] is refused up front."""
    with pytest.raises(ValueError, match="n must be"):
        gen.generate(-1)
    with pytest.raises(ValueError, match="invalid_rate"):
        gen.generate_lines(5, invalid_rate=1.5)
    with pytest.raises(ValueError, match="protocol_issue_rate"):
        gen.generate(5, protocol_issue_rate=-0.1)
    with pytest.raises(SystemExit) as exc:
        gen.main(["--invalid-rate", "2"])
    assert exc.value.code == 2


def test_cli_writes_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """Without ``-o`` the lines go to stdout, newline-terminated."""
    assert gen.main(["--count", "3", "--seed", "1"]) == 0
    out = capsysbinary.readouterr().out
    assert out == "".join(
        line + "\n" for line in gen.generate_lines(3, seed=1)
    ).encode("utf-8")


def test_shipped_examples_match_a_fresh_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/sessions.jsonl is byte-identical to the documented command's output."""
    assert "python examples/generate.py " + " ".join(SHIPPED_ARGS) in README.read_text("utf-8")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    assert gen.main(list(SHIPPED_ARGS)) == 0
    fresh = (tmp_path / "examples" / "sessions.jsonl").read_bytes()
    assert fresh == SHIPPED.read_bytes()


def test_shipped_examples_mix_valid_and_invalid_records() -> None:
    """The shipped file holds 300 records, mostly valid, with about 8 % structural errors."""
    lines = SHIPPED.read_text("utf-8").splitlines()
    reports = _structure_reports(lines)
    assert len(reports) == 300
    invalid = sum(not r.valid for r in reports)
    assert 10 <= invalid <= 40
