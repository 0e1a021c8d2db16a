"""Issue #12 items 3, 4 and 9 (SPEC 1.1 sections 3, 4, 6): partial records, unknown lists,
duplicate keys.

The vectors (``data/safety_partial_vectors.json``) run on the API (:func:`validate_records`),
on the command line (``dryneedle validate``) and with the accelerated path off, under both
built-in policies, with identical reports. Hypothesis properties: corrupting one field never
removes a finding about another readable field; ``[]`` turning unknown never moves a decision
towards eligible nor removes a warning.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle import cli
from dryneedle.findings import Decision
from dryneedle.policy import POLICIES
from dryneedle.records import _fast, validate_records
from dryneedle.records._structure import may_have_duplicates
from dryneedle.records._validate import Validator
from dryneedle.strategies import records

DATA = Path(__file__).parent / "data"
VECTORS: dict[str, Any] = json.loads((DATA / "safety_partial_vectors.json").read_text())
CASES: list[dict[str, Any]] = VECTORS["cases"]
RANK = {d: i for i, d in enumerate((Decision.ELIGIBLE, Decision.ELIGIBLE_WITH_PRECAUTIONS,
                                    Decision.NEEDS_REVIEW, Decision.NOT_ELIGIBLE))}


# --- building the inputs ----------------------------------------------------------------------


def _apply(record: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    record = copy.deepcopy(record)
    for path, value in spec.get("set", []):
        node: Any = record
        for key in path[:-1]:
            node = node[key]
        if isinstance(node, list) and path[-1] == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[path[-1]] = copy.deepcopy(value)
    for path in spec.get("delete", []):
        node = record
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return record


def _text(record: dict[str, Any], spec: dict[str, Any]) -> str:
    text = json.dumps(record, separators=(",", ":"))
    for old, new in spec.get("replace", []):
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def build_lines(vectors: dict[str, Any], case: dict[str, Any]) -> list[str]:
    """The JSON lines of a case: its previous record (if any), then its record."""
    base = vectors["base"]
    lines = []
    if "previous" in case:
        lines.append(_text(_apply(base, case["previous"]), case["previous"]))
    lines.append(_text(_apply(base, case), case))
    return lines


def run_api(vectors: dict[str, Any], case: dict[str, Any], policy: str,
            fast: bool = True) -> list[dict[str, Any]]:
    """The reports of a case through the Validator (``fast`` off: the pure-Python path)."""
    validator = Validator(policy=POLICIES[policy], fast=fast)
    return [validator.check(line, i, i + 1).as_dict()
            for i, line in enumerate(build_lines(vectors, case))]


def run_cli(case: dict[str, Any], policy: str, tmp_path: Path,
            capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The reports of a case through ``dryneedle validate`` (in-process)."""
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(build_lines(VECTORS, case)) + "\n")
    capsys.readouterr()
    cli.main(["validate", "-q", "--policy", policy, str(path)])
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _selected(report: dict[str, Any], checks: list[str]) -> list[list[str]]:
    return sorted([f["code"], f["path"], f["severity"]] for f in report["findings"]
                  if f["code"] in checks)


# --- the vectors --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(case: dict[str, Any], policy: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """API, CLI and the pure-Python path give the expected findings and identical reports."""
    api = run_api(VECTORS, case, policy)
    assert _selected(api[-1], case["checks"]) == case["expect"][policy]
    assert api[-1]["decision"] == case["decision"][policy]
    assert run_cli(case, policy, tmp_path, capsys) == api
    assert run_api(VECTORS, case, policy, fast=False) == api
    monkeypatch.setattr(_fast, "AVAILABLE", False)
    assert run_api(VECTORS, case, policy) == api
    assert [r.as_dict() for r in validate_records(build_lines(VECTORS, case),
                                                  policy=POLICIES[policy])] == api


def test_vectors_cite_sources_and_cover_both_sides() -> None:
    """Every case cites a source; every code under check both fires and stays quiet."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in CASES:
        assert case["sources"]
        for exp in case["expect"].values():
            codes = {e[0] for e in exp}
            fires |= codes
            quiet |= set(case["checks"]) - codes
    for code in ("protocol.lung.unchecked", "protocol.lung.both_sides_unchecked",
                 "protocol.bleeding.unchecked", "protocol.needles.unchecked",
                 "protocol.insertions.unchecked", "structure.duplicate_key",
                 "series.needles_after_poor_tolerance", "screening.unknown_answer"):
        assert code in fires, code
        assert code in quiet, code


def test_pregnant_patient_with_a_typo_is_still_not_eligible() -> None:
    """SPEC section 6 (1.1): a pregnant patient with a typo in one insertion."""
    (case,) = [c for c in CASES if c["id"] == "p3.muscle_typo.pregnant_untrained"]
    for policy in POLICIES:
        report = run_api(VECTORS, case, policy)[-1]
        codes = {f["code"] for f in report["findings"]}
        assert {"screening.pregnancy", "protocol.practitioner.untrained",
                "structure.enum"} <= codes
    assert case["decision"]["default"] == "not_eligible"


def test_the_duplicate_pre_test_never_clears_a_repeated_key() -> None:
    """``may_have_duplicates`` answers True whenever a key repeats (any spacing)."""
    for text in ('{"a":1,"a":1}', '{"a" :1,"b":2, "a": 3}', '{"x":{"a":null,"a":null},"y":{}}',
                 '{"a":[{"k":1},{"k":1,"k":2}]}'):
        assert may_have_duplicates(text, json.loads(text))
        assert may_have_duplicates(text.encode(), json.loads(text))
    assert not may_have_duplicates('{"a":1,"b":{"a":2}}', {"a": 1, "b": {"a": 2}})


# --- properties ---------------------------------------------------------------------------------

_CORRUPT = st.sampled_from(["yes", 3.5, -1, [], {}, "", "not_a_value"])


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


@given(records(unknown_lists=True), st.data())
def test_partial_records_never_lose_a_finding(record: dict[str, Any], data: st.DataObject) -> None:
    """(b) Corrupting one field never removes a finding about a different readable field."""
    leaves = [p for p in _leaves(record) if p and p[0] in ("patient", "session")]
    leaf = data.draw(st.sampled_from(leaves))
    corrupted = copy.deepcopy(record)
    node = corrupted
    for key in leaf[:-1]:
        node = node[key]
    node[leaf[-1]] = data.draw(_CORRUPT)
    where = _dotted(leaf)
    # Findings about the set of insertions, or the session as a whole, may change when one
    # insertion becomes unknown (they are about every insertion); set-level counts are kept.
    policy = data.draw(st.sampled_from(sorted(POLICIES)))
    (before,) = validate_records([record], policy=POLICIES[policy])
    (after,) = validate_records([corrupted], policy=POLICIES[policy])
    kept = {(f.code, f.path) for f in after.findings}
    parent = where.rsplit(".", 1)[0] if "." in where else where
    for f in before.findings:
        if f.path == "" or where.startswith(f.path) or f.path.startswith(where):
            continue  # the corrupted node, its ancestors (the site as a whole) or below
        if f.path.startswith(parent) and f.code.startswith("screening."):
            continue  # a site's screening finding depends on every field of the site
        if f.code.startswith("series.") and where in _SERIES_INPUTS:
            continue  # series findings are about this patient's sessions in order
        if where == "session.date" and f.code.startswith(_FROM_DATE):
            continue  # ages and surgery windows are computed on the session's date
        if where.startswith("patient.") and f.code.startswith(_FROM_PATIENT):
            continue  # findings derived from the patient's answers (the corrupted one)
        if _reads(f, where):
            continue  # a rule comparing two fields: the corrupted one is its other input
        assert (f.code, f.path) in kept or _superseded(f, after), (where, f.code, f.path)
    if before.decision is not None:
        assert after.decision is not None
        assert RANK[after.decision] >= RANK[before.decision] or _known_changed(leaf), where


_FROM_DATE = ("screening.age_", "screening.birth_date", "screening.site_recent_surgery",
              "screening.all_sites_excluded", "protocol.screening.")
_SERIES_INPUTS = frozenset({"patient.patient_id", "session.date", "session.number"})
# Findings at session paths whose input is a patient answer or site finding.
_FROM_PATIENT = ("protocol.screening.", "protocol.bleeding.", "screening.site_",
                 "screening.all_sites_excluded", "screening.bleeding_risk_site")


# Rules that compare the field at their path with another field (SPEC section 4): corrupting
# that other field takes away what they compare. ``[i]`` is the finding's own insertion.
_ALSO_READS: dict[str, tuple[str, ...]] = {
    "protocol.post.needles_removed": ("session.insertions",),  # removed vs inserted
    "protocol.needles.first_session": ("session.number",),  # the first session's limit
    "protocol.depth.beyond_needle": ("session.insertions[i].needle",),
    "protocol.depth.beyond_longest_needle": ("session.insertions[i].needle",),
    "protocol.depth.superficial_range": ("session.insertions[i].technique",),
    "protocol.depth.deep_minimum": ("session.insertions[i].technique",),
    "protocol.lung.deep_technique": ("session.insertions[i].technique",),
    "protocol.lung.depth_limit": ("session.insertions[i].muscle",),
    "protocol.lung.pleura_depth": ("session.insertions[i].muscle", "patient.sex"),
}


def _reads(f: Any, where: str) -> bool:
    """Whether the rule of finding ``f`` reads the corrupted field ``where`` besides its path."""
    own = re.match(r"session\.insertions\[\d+\]", f.path)
    for template in _ALSO_READS.get(f.code, ()):
        if "[i]" in template and own is None:
            continue
        pattern = template.replace("session.insertions[i]", own[0]) if own else template
        if where == pattern or where.startswith((pattern + ".", pattern + "[")):
            return True
    return False


def _superseded(f: Any, after: Any) -> bool:
    """A finding replaced by its fail-closed form (same rule family, same path)."""
    return any(g.path == f.path and g.code.split(".")[:2] == f.code.split(".")[:2]
               for g in after.findings)


def _known_changed(leaf: tuple[Any, ...]) -> bool:
    # A corrupted value can turn a known "yes" into unknown: unknown ranks below an
    # exclusion only when the exclusion came from that very answer.
    return leaf[:2] in (("patient", "history"), ("patient", "pregnancy"),
                        ("session", "date")) or (
        leaf[:1] == ("patient",) and leaf[1] in ("birth_date", "site_findings", "sex"))


@given(records(), st.sampled_from(sorted(POLICIES)), st.sampled_from(["absent", "null"]))
def test_unknown_lists_are_never_safer_than_empty(record: dict[str, Any], policy: str,
                                                  how: str) -> None:
    """(c) site_findings / adverse_events going from [] to unknown: monotone, no lost warning."""
    record = copy.deepcopy(record)
    record["patient"]["site_findings"] = []
    record["session"]["adverse_events"] = []
    previous = copy.deepcopy(record)
    previous["record_id"] = "r-prev"
    previous["session"]["number"] = max(1, record["session"]["number"] - 1)
    previous["session"]["date"] = "1999-01-01"
    previous["session"]["insertions"] = previous["session"]["insertions"][:1]
    for target, field in ((record, ("patient", "site_findings")),
                          (previous, ("session", "adverse_events"))):
        changed = copy.deepcopy(target)
        if how == "absent":
            del changed[field[0]][field[1]]
        else:
            changed[field[0]][field[1]] = None
        pair = [previous, record]
        pair_changed = [changed, record] if target is previous else [previous, changed]
        before = list(validate_records(pair, policy=POLICIES[policy]))[-1]
        after = list(validate_records(pair_changed, policy=POLICIES[policy]))[-1]
        assert RANK[after.decision] >= RANK[before.decision]  # type: ignore[index]
        warned = {(f.code, f.path) for f in after.findings}
        for f in before.findings:
            assert (f.code, f.path) in warned, (field, f.code, f.path)
