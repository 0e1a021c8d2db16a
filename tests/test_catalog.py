"""Reference data: anatomy and condition catalogs, sources, the rule registry."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dryneedle.catalog import ANATOMY_ABOUT, CONDITIONS, CONDITIONS_ABOUT, MUSCLES, muscles_in
from dryneedle.findings import Rule, Severity, all_rules, get_rule, register, rule
from dryneedle.model import Region
from dryneedle.sources import SOURCES

SPEC_SOURCES = Path(__file__).parent.parent.parent / "shared" / "SOURCES.md"

# SPEC §2 anatomy table: id -> (region, over lung, palpable haemostasis, depth limit).
SPEC_MUSCLES = {
    "upper_trapezius": ("neck", True, True, None),
    "middle_trapezius": ("upper_back", True, True, None),
    "lower_trapezius": ("upper_back", True, True, None),
    "rhomboid_major": ("upper_back", True, True, 19.0),
    "rhomboid_minor": ("upper_back", True, True, 19.0),
    "thoracic_paraspinals": ("upper_back", True, True, None),
    "scalenes": ("neck", True, True, None),
    "pectoralis_major": ("chest", True, True, None),
    "pectoralis_minor": ("chest", True, True, None),
    "serratus_anterior": ("chest", True, True, None),
    "intercostals": ("chest", True, True, None),
    "levator_scapulae": ("neck", False, True, None),
    "sternocleidomastoid": ("neck", False, True, None),
    "splenius_capitis": ("neck", False, True, None),
    "suboccipitals": ("neck", False, True, None),
    "infraspinatus": ("shoulder", False, True, None),
    "supraspinatus": ("shoulder", False, True, None),
    "teres_major": ("shoulder", False, True, None),
    "teres_minor": ("shoulder", False, True, None),
    "deltoid": ("shoulder", False, True, None),
    "masseter": ("jaw", False, True, None),
    "temporalis": ("head_face", False, True, None),
    "lumbar_multifidus": ("lower_back", False, True, None),
    "quadratus_lumborum": ("lower_back", False, True, None),
    "lumbar_erector_spinae": ("lower_back", False, True, None),
    "psoas": ("abdomen", False, False, None),
    "gluteus_maximus": ("pelvis", False, True, None),
    "gluteus_medius": ("pelvis", False, True, None),
    "gluteus_minimus": ("pelvis", False, True, None),
    "piriformis": ("pelvis", False, True, None),
    "tensor_fasciae_latae": ("hip", False, True, None),
    "vastus_lateralis": ("thigh", False, True, None),
    "vastus_medialis": ("thigh", False, True, None),
    "rectus_femoris": ("thigh", False, True, None),
    "hamstrings": ("thigh", False, True, None),
    "adductor_longus": ("thigh", False, True, None),
    "gastrocnemius": ("leg", False, True, None),
    "soleus": ("leg", False, True, None),
    "tibialis_anterior": ("leg", False, True, None),
    "fibularis_longus": ("leg", False, True, None),
    "tibialis_posterior": ("leg", False, False, None),
    "biceps_brachii": ("arm", False, True, None),
    "triceps_brachii": ("arm", False, True, None),
    "forearm_extensors": ("forearm", False, True, None),
    "forearm_flexors": ("forearm", False, True, None),
}


@pytest.mark.parametrize("muscle_id", sorted(SPEC_MUSCLES))
def test_anatomy_catalog_matches_the_spec_table(muscle_id: str) -> None:
    """Every muscle of SPEC §2 is present with exactly the contract's facts."""
    m = MUSCLES[muscle_id]
    assert (m.region.value, m.over_lung, m.palpable_haemostasis, m.depth_limit_mm) == \
        SPEC_MUSCLES[muscle_id]


def test_safety_facts_are_cited() -> None:
    """Over-lung, non-palpable and depth-limited muscles all cite registered sources."""
    for m in MUSCLES.values():
        if m.over_lung or not m.palpable_haemostasis or m.depth_limit_mm is not None:
            assert m.sources, m.id
        assert all(s in SOURCES for s in m.sources)
    assert "valera-calero-rhomboid" in MUSCLES["rhomboid_major"].sources
    assert "za-bn121" in MUSCLES["psoas"].sources


def test_regions_and_lookup() -> None:
    """Region ids are the contract's; muscles_in filters by region."""
    assert [r.value for r in Region] == [
        "head_face", "jaw", "neck", "shoulder", "upper_back", "chest", "abdomen", "lower_back",
        "pelvis", "hip", "thigh", "knee", "leg", "ankle_foot", "arm", "forearm", "hand",
    ]
    assert {m.id for m in muscles_in(Region.ABDOMEN)} == {"psoas"}


def test_condition_catalog_codes_by_fiscal_year() -> None:
    """Conditions carry ICD-10-CM codes by edition; the FY2023 myalgia split is honoured."""
    mps = CONDITIONS["myofascial_pain_syndrome"]
    assert mps.codes_for(2022) == ("M79.1",)
    assert mps.codes_for(2023) == ("M79.11", "M79.12", "M79.18")
    assert mps.codes_for(2015) == ()
    assert "M79.1" in mps.all_codes()
    assert CONDITIONS["inflammation"].indication is False
    seed_list = {"joint_problems", "tendonitis", "whiplash", "pelvic_pain", "disc_issues",
                 "tmj_disorders", "spine_problems", "night_cramps", "migraine",
                 "tension_type_headache", "repetitive_strain_injury", "phantom_limb_pain"}
    assert seed_list <= set(CONDITIONS)
    for c in CONDITIONS.values():
        assert c.sources
        assert all(s in SOURCES for s in c.sources)
        if c.codes:
            assert "icd10cm" in c.sources


def test_source_registry_mirrors_sources_md() -> None:
    """Every id of SOURCES.md is registered, with the same grade."""
    if not SPEC_SOURCES.exists():
        pytest.skip("shared/SOURCES.md is not beside this checkout")
    rows = re.findall(r"^\| `([^`]+)` \| .* \| ([PSC]) \|", SPEC_SOURCES.read_text(), re.M)
    assert rows
    assert dict(rows) == {s.id: s.grade for s in SOURCES.values()}


def test_registry_rejects_duplicates_and_unknown_sources() -> None:
    """Rule ids are never reused, and rules can only cite registered sources."""
    rules = all_rules()
    assert len({r.id for r in rules}) == len(rules)
    existing = get_rule("structure.type")
    assert register(existing) is existing
    with pytest.raises(ValueError, match="already registered"):
        register(Rule(id="structure.type", title="other", severity=Severity.INFO, rationale="x"))
    with pytest.raises(ValueError, match="unknown sources"):
        register(Rule(id="test.never", title="t", severity=Severity.INFO, rationale="r",
                      sources=("wikipedia",)))


def test_every_rule_is_documented_and_cited() -> None:
    """Each rule has a title and rationale; clinical rules cite at least one source."""
    for r in all_rules():
        assert r.title
        assert r.rationale
        if r.category != "structure":
            assert r.sources, r.id
        assert r.id.split(".", 1)[0] == r.category


def _check_data_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "check_data", Path(__file__).parent.parent / "scripts" / "check_data.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_data_file_has_provenance_and_cites_sources() -> None:
    """Each shipped data file opens with its provenance and every entry cites a known source."""
    check = _check_data_module()
    assert check.DATA_FILES
    for path in check.DATA_FILES:
        assert check.problems(path, set(SOURCES)) == [], path


def test_data_check_catches_a_bad_file(tmp_path: Path) -> None:
    """The data check reports a missing header field, an uncited entry and an unknown source."""
    check = _check_data_module()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "header": {"date": "2026-12-01", "sources": ["seed"], "description": "x"},
        "entries": [{"id": "a", "sources": []}, {"id": "b", "sources": ["no-such-source"]}],
    }))
    found = check.problems(bad, set(SOURCES))
    assert any("version" in p for p in found)
    assert any("'a'" in p and "cites no source" in p for p in found)
    assert any("no-such-source" in p for p in found)


def test_catalog_entries_cite_their_region_source() -> None:
    """Muscle ids and regions cite travell-simons-2019; lung/haemostasis facts keep their own."""
    for m in MUSCLES.values():
        assert "travell-simons-2019" in m.region_sources
        if m.over_lung:
            assert "za-bn121" in m.sources
        if not m.palpable_haemostasis:
            assert "za-bn121" in m.sources
    assert ANATOMY_ABOUT["version"]
    assert CONDITIONS_ABOUT["sources"]


def test_every_rule_names_the_module_that_binds_it() -> None:
    """One hop from a finding code: ``data/rules.toml`` names the module that implements it."""
    for r in all_rules():
        assert r.module is not None, r.id
        module = importlib.import_module(r.module)
        bound = [
            v for v in vars(module).values()
            if v is r or (isinstance(v, Mapping) and any(x is r for x in v.values()))
        ]
        assert bound, f"{r.id}: not bound in {r.module}"


def test_rule_catalog_rejects_unknown_ids() -> None:
    """A module can bind only a declared rule."""
    with pytest.raises(KeyError):
        rule("screening.no_such_rule")
