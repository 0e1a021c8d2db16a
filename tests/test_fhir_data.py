"""The FHIR terminology data files (``dryneedle/fhir/data/*.json``) and what reads them.

Every file says where its values come from (header sources, version, date, description) and
every entry cites known source ids; the tables the mapping uses are exactly the files' content;
a broken file fails loudly, naming the file and the entry.
"""

from __future__ import annotations

import inspect
import json
from datetime import date
from importlib import resources
from typing import Any

import pytest

from dryneedle.fhir import (
    ALLERGY_TERMS,
    ANTITHROMBOTIC_ATC,
    ATC,
    CPT,
    CPT_FIRST_DATE,
    FLAG_CODES,
    ICD10CM,
    LOINC,
    PREGNANCY_ANSWERS,
    PREGNANCY_LOINC,
    _terminology,
    patient_from_fhir,
    screen_fhir,
)
from dryneedle.fhir._tables import load_table, read_table
from dryneedle.model import Pregnancy
from dryneedle.sources import SOURCES

DATA = resources.files("dryneedle.fhir") / "data"
FILES = sorted(p.name for p in DATA.iterdir() if p.name.endswith(".json"))


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def test_the_expected_files_are_packaged() -> None:
    """Exactly the tables the mapping reads are shipped (no orphan, none missing)."""
    assert FILES == [
        "allergy-terms.json",
        "answer-codes-icd10cm.json",
        "answer-codes-rxnorm.json",
        "answer-codes-snomed-ct.json",
        "antithrombotic-atc.json",
        "antithrombotic-names.json",
        "body-site-laterality.json",
        "body-sites.json",
        "code-system-oids.json",
        "cpt-dry-needling.json",
        "history-flag-codes.json",
        "pregnancy-status.json",
        "site-finding-kinds.json",
    ]


@pytest.mark.parametrize("name", FILES)
def test_every_file_has_a_provenance_header(name: str) -> None:
    """Each header names known sources, a version, an ISO date and a description."""
    header = raw(name)["header"]
    assert header["sources"]
    assert all(s in SOURCES for s in header["sources"])
    assert isinstance(header["version"], str)
    assert header["version"]
    assert date.fromisoformat(header["date"]) <= date(2026, 12, 31)
    assert len(header["description"]) > 40


@pytest.mark.parametrize("name", FILES)
def test_every_entry_cites_known_sources(name: str) -> None:
    """Each entry has its code (or word) and source ids from ``dryneedle.sources.SOURCES``."""
    data = raw(name)
    assert data["entries"]
    for entry in data["entries"]:
        assert entry.get("code") or entry.get("term")
        assert entry["sources"], entry
        for sid in entry["sources"]:
            assert sid in SOURCES, (name, entry)
            assert sid in data["header"]["sources"], (name, entry)
        if "display" in entry:
            assert isinstance(entry["display"], str)
            assert entry["display"]


def test_loaded_tables_are_the_files_content() -> None:
    """The constants the mapping uses are built from the files, entry for entry."""
    preg = raw("pregnancy-status.json")
    assert preg["header"]["system"] == LOINC
    assert [e["code"] for e in preg["entries"] if e["role"] == "observation"] == [PREGNANCY_LOINC]
    assert {
        e["code"]: Pregnancy(e["pregnancy"]) for e in preg["entries"]
        if e["role"] == "answer" and "system" not in e
    } == PREGNANCY_ANSWERS
    assert {
        (e.get("system", LOINC), e["code"]): Pregnancy(e["pregnancy"]) for e in preg["entries"]
        if e["role"] == "answer"
    } == _terminology.PREGNANCY_VALUES

    atc = raw("antithrombotic-atc.json")
    assert atc["header"]["system"] == ATC
    assert [e["code"] for e in atc["entries"]] == [ANTITHROMBOTIC_ATC]

    cpt = raw("cpt-dry-needling.json")
    assert cpt["header"]["system"] == CPT
    by_count = {e["muscles"]: e["code"] for e in cpt["entries"]}
    assert by_count == {"1-2": _terminology.CPT_1_2, "3+": _terminology.CPT_3_PLUS}
    assert {date.fromisoformat(e["valid_from"]) for e in cpt["entries"]} == {CPT_FIRST_DATE}

    flags = raw("history-flag-codes.json")
    assert flags["header"]["system"] == ICD10CM
    built: dict[str, dict[str, tuple[str, ...]]] = {}
    for e in flags["entries"]:
        by_system = built.setdefault(e["flag"], {})
        by_system[ICD10CM] = (*by_system.get(ICD10CM, ()), e["code"])
    assert built == FLAG_CODES
    assert list(built) == list(FLAG_CODES)  # table order is provenance order

    terms = raw("allergy-terms.json")
    assert "system" not in terms["header"]
    assert tuple(e["term"] for e in terms["entries"]) == ALLERGY_TERMS


def test_the_values_are_those_the_module_held_as_literals() -> None:
    """Moving the tables to data files changed no code value (pinned as before #11)."""
    assert PREGNANCY_LOINC == "82810-3"
    assert PREGNANCY_ANSWERS == {
        "LA15173-0": Pregnancy.PREGNANT,
        "LA26683-5": Pregnancy.NOT_PREGNANT,
        "LA4489-6": Pregnancy.UNKNOWN,
    }
    assert ANTITHROMBOTIC_ATC == "B01A"
    assert (_terminology.CPT_1_2, _terminology.CPT_3_PLUS) == ("20560", "20561")
    assert CPT_FIRST_DATE == date(2020, 1, 1)
    assert FLAG_CODES == {
        "bleeding_disorder": {ICD10CM: ("D65-D69",)},
        "immunocompromised": {ICD10CM: ("D80-D84",)},
        "diabetes": {ICD10CM: ("E08-E13",)},
        "epilepsy": {ICD10CM: ("G40",)},
    }
    # Version 2 (2026-12-01) added metals and an alloy besides nickel (review finding B9).
    assert ALLERGY_TERMS == ("nickel", "metal", "metals", "cobalt", "chromium",
                             "stainless steel")


def test_the_lookups_default_to_the_loaded_tables() -> None:
    """``patient_from_fhir`` and ``screen_fhir`` default to the loaded tables themselves."""
    for func in (patient_from_fhir, screen_fhir):
        params = inspect.signature(func).parameters
        assert params["flag_codes"].default is FLAG_CODES
        assert params["allergy_terms"].default is ALLERGY_TERMS


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    patient = {"resourceType": "Patient", "id": "p1"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (patient, *resources)]}


@pytest.mark.parametrize(("code", "value"), sorted(PREGNANCY_ANSWERS.items()))
def test_every_pregnancy_answer_code_is_read(code: str, value: Pregnancy) -> None:
    """Each LOINC answer of the table gives its pregnancy status."""
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "subject": {"reference": "Patient/p1"},
           "code": {"coding": [{"system": LOINC, "code": PREGNANCY_LOINC}]},
           "valueCodeableConcept": {"coding": [{"system": LOINC, "code": code}]},
           "effectiveDateTime": "2026-11-30"}
    # Dated and evaluated (1.1, review of #14 B5: without on= a "not pregnant" is unknown).
    assert patient_from_fhir(_bundle(obs), on=date(2026, 12, 1)).patient.pregnancy is value


@pytest.mark.parametrize(
    ("flag", "pattern"),
    [(flag, p) for flag, by_system in FLAG_CODES.items() for p in by_system[ICD10CM]],
)
def test_every_flag_pattern_is_read(flag: str, pattern: str) -> None:
    """A Condition coded at the start of each flag pattern sets that history answer."""
    code = pattern.split("-", 1)[0]
    cond = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": ICD10CM, "code": code}]}}
    inputs = patient_from_fhir(_bundle(cond))
    assert getattr(inputs.patient.history, flag) is True
    assert inputs.evidence_for(f"patient.history.{flag}") == ("Condition/c1",)


def test_the_antithrombotic_group_is_read() -> None:
    """A medication coded under the table's ATC group sets anticoagulant therapy."""
    med = {"resourceType": "MedicationStatement", "id": "m1", "status": "active",
           "subject": {"reference": "Patient/p1"},
           "medicationCodeableConcept": {"coding": [
               {"system": ATC, "code": ANTITHROMBOTIC_ATC + "C06"}]}}
    assert patient_from_fhir(_bundle(med)).patient.history.anticoagulant_therapy is True


def test_loading_is_cached() -> None:
    """A packaged file is read once: the same table object on every call."""
    first = load_table("antithrombotic-atc.json")
    assert load_table("antithrombotic-atc.json") is first


ENTRY: dict[str, Any] = {"code": "82810-3", "sources": ["loinc"]}
GOOD: dict[str, Any] = {
    "header": {"description": "A test table of one code.", "sources": ["loinc"],
               "version": "1", "date": "2026-11-27", "system": LOINC},
    "entries": [ENTRY],
}


def _with(**changes: Any) -> str:
    data = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        target = data
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return json.dumps(data)


def test_a_good_table_reads() -> None:
    """The minimal valid file reads into its header and entries."""
    table = read_table(json.dumps(GOOD), name="t.json")
    assert table.header.sources == ("loinc",)
    assert table.header.date == date(2026, 11, 27)
    assert [(e.code, e.sources, e.display) for e in table.entries] == [
        ("82810-3", ("loinc",), None)
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{not json", "JSON"),
        (_with(header__sources=["no-such-source"]), "header.sources"),
        (_with(header__date="27/11/2026"), "header.date"),
        (_with(header__version=None), "header"),
        (_with(header__extra="x"), "header"),
        (_with(entries=[]), "entries"),
        (_with(entries__0__sources=["no-such-source"]), "entries[0] ('82810-3').sources"),
        (_with(entries__0__sources=["icd10cm"]), "entries[0] ('82810-3').sources"),
        (_with(entries__0__sources=[]), "entries[0] ('82810-3').sources"),
        (_with(entries__0__sources=None), "entries[0] ('82810-3')"),
        (_with(entries__0__code=" 82810-3"), "entries[0] (' 82810-3').code"),
        (_with(entries__0__colour="red"), "entries[0] ('82810-3')"),
        (_with(entries__0__display=""), "entries[0] ('82810-3').display"),
        (_with(entries=[ENTRY, ENTRY]), "entries[1] ('82810-3')"),
    ],
)
def test_a_bad_file_names_the_file_and_the_entry(text: str, where: str) -> None:
    """Every broken rule raises a ValueError naming the file and where the problem is."""
    with pytest.raises(ValueError, match="terminology file") as info:
        read_table(text, name="bad.json")
    message = str(info.value)
    assert "dryneedle.fhir/data/bad.json" in message
    assert f": {where}: " in message
