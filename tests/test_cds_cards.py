"""The CDS card's content against the issue's card requirements (#15, SPEC §8).

Findings ranked most important first (exclusions, then what needs review, then precautions),
the unknown answers grouped into one line, the card's ``source`` the primary clinical source of
its most important finding (never the secondary ``seed``), and a short detail -- on the shared
Synthea R4 bundles (real EHR-shaped data) and on constructed results.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_conformance import check_card
from dryneedle.fhir import cds_cards, rank, screen_fhir
from dryneedle.findings import Finding, Severity
from dryneedle.model import History, NeedlePhobia, Patient, Pregnancy, Sex
from dryneedle.screening import screen
from dryneedle.sources import SOURCES

SYNTHEA = sorted((Path(__file__).parents[2] / "shared" / "fhir" / "synthea").glob("*.json"))
ON = date(2026, 11, 27)
DETAIL_MAX = 3000
"""Bytes: the issue found details of 1 to 4.7 kB with a bullet per unknown answer."""
_LINE = re.compile(r"^- \*\*(?P<title>.*?)\*\* \(`(?P<code>[a-z_.]+)`", re.M)


def _cards(path: Path) -> tuple[list[dict[str, Any]], list[Finding]]:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    screening = screen_fhir(bundle, on=ON, sites=[("upper_trapezius", "left")])
    return screening.cards(), list(screening.result.findings)


@pytest.mark.skipif(not SYNTHEA, reason="the shared Synthea bundles are not here")
@pytest.mark.parametrize("path", SYNTHEA, ids=[p.name[:20] for p in SYNTHEA])
def test_synthea_cards_meet_the_card_requirements(path: Path) -> None:
    """Ranked, unknown answers on one line, a primary clinical lead source, a short detail."""
    (card,), findings = _cards(path)
    check_card(card)
    detail = card["detail"]
    assert len(detail.encode()) < DETAIL_MAX
    listed = [m["code"] for m in _LINE.finditer(detail)]
    assert listed.count("screening.unknown_answer") <= 1  # grouped into one line
    by_code = {f.code: f for f in findings}
    ranks = [rank(by_code[c]) for c in listed if c in by_code]
    assert ranks == sorted(ranks), listed  # most important first
    lead = next((s for f in sorted(findings, key=rank) for s in f.sources
                 if SOURCES.get(s) is not None and SOURCES[s].grade == "P"
                 and s in {"za-bn121", "munoz-2022", "apta-2013", "kalichman-2010"}), None)
    if lead is not None:
        assert card["source"]["label"].rstrip("\u2026") in SOURCES[lead].reference
    assert "Empower Fitness" not in card["source"]["label"]


def _patient(**history: object) -> Patient:
    answers: dict[str, object] = {
        "bleeding_disorder": False, "anticoagulant_therapy": False, "immunocompromised": False,
        "metal_allergy": False, "epilepsy": False, "diabetes": False,
        "vascular_disease": False, "prior_adverse_reaction": False, "acute_illness": False,
        "lymph_node_removal": False, "needle_phobia": NeedlePhobia.NONE, "consent": True,
    } | history
    return Patient(patient_id="p-1", birth_date=date(1980, 1, 1), sex=Sex.FEMALE,
                   pregnancy=Pregnancy.NOT_PREGNANT, history=History(**answers))  # type: ignore[arg-type]


def test_the_lead_source_is_that_of_the_most_important_finding() -> None:
    """An exclusion citing only the secondary ``seed`` (metal allergy) does not lead: the next
    finding's primary clinical source does; the source is never the seed's web page."""
    result = screen(_patient(metal_allergy=True, anticoagulant_therapy=True), on=ON)
    (card,) = cds_cards(result)
    assert card["indicator"] == "critical"
    assert card["source"]["label"].startswith("South Africa, Allied Health Professions Act")
    alone = screen(_patient(metal_allergy=True), on=ON)
    (card,) = cds_cards(alone)
    assert "Empower Fitness" not in card["source"]["label"]
    assert card["source"]["label"].startswith("dryneedle ")  # no clinical source: the library


def test_unknown_answers_are_one_line_after_the_exclusions_and_before_precautions() -> None:
    """Exclusions, then the grouped unknown answers, then precautions."""
    result = screen(_patient(anticoagulant_therapy=True, diabetes=True, epilepsy=None,
                             consent=None, acute_illness=None), on=ON)
    (card,) = cds_cards(result)
    listed = [m["code"] for m in _LINE.finditer(card["detail"])]
    assert listed[0] == "screening.anticoagulant_therapy"
    assert listed.count("screening.unknown_answer") == 1
    assert listed.index("screening.unknown_answer") < listed.index("screening.diabetes")
    (line,) = [ln for ln in card["detail"].splitlines() if "Ask before needling" in ln]
    for path in ("patient.history.epilepsy", "patient.history.consent",
                 "patient.history.acute_illness"):
        assert f"`{path}`" in line
    assert all(f.severity is Severity.ERROR for f in result.findings
               if f.code == listed[0])


def test_a_clinic_table_is_merged_as_merge_codes_would() -> None:
    """The service's per-call table with a clinic's ``--codes`` is exactly
    ``merge_codes(ANSWER_CODES, *clinic)`` (built from copies, not rebuilt code by code): a
    shipped code gains the clinic's flag after its own, a new code and a new system appear."""
    from dryneedle.fhir import ANSWER_CODES, RXNORM  # noqa: PLC0415
    from dryneedle.fhir._inbound import _answer_codes  # noqa: PLC0415
    from dryneedle.fhir._terminology import AnswerCodes, merge_codes  # noqa: PLC0415

    system, by_code = next(iter(ANSWER_CODES.items()))
    shipped, flags = next(iter(by_code.items()))
    clinic: tuple[AnswerCodes, ...] = (
        {system: {shipped: (("diabetes", "clinic"), flags[0]), "X-NEW": (("none", None),)},
         "urn:example:local": {"L1": (("epilepsy", None),)}},
        {RXNORM: {"197361": (("none", None),)}, system: {"X-NEW": (("none", None),)}},
    )
    assert _answer_codes(()) is ANSWER_CODES
    merged = _answer_codes(clinic)
    assert merged == merge_codes(ANSWER_CODES, *clinic)
    assert list(merged) == list(merge_codes(ANSWER_CODES, *clinic))
    assert merged[system][shipped] == (*flags, ("diabetes", "clinic"))
    assert ANSWER_CODES[system][shipped] == flags  # the shipped table is not modified
    assert "X-NEW" not in ANSWER_CODES[system]
