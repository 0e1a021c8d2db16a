"""FHIR R4 in and out, and CDS Hooks cards, on plain JSON dicts (no runtime dependency).

**In** -- :func:`patient_from_fhir` turns a FHIR R4 ``Bundle`` (or any list of resources,
nested searchset bundles and ``null`` prefetch values included) into the screening
:class:`~dryneedle.model.Patient` and a provenance trail saying which resource produced which
answer, and which resources were ignored and why (``fhir-r4``):

* ``Patient.birthDate`` and ``Patient.gender`` (``male``/``female``/``other``/``unknown`` map
  one to one);
* pregnancy from ``Observation`` LOINC ``82810-3`` with answers ``LA15173-0`` (pregnant),
  ``LA26683-5`` (not pregnant), ``LA4489-6`` (unknown) (``ips-pregnancy``); any current
  "pregnant" status (preliminary too) makes the patient pregnant, otherwise the most recent
  observation wins, and a tie or an undated disagreement leaves the answer unknown;
* the conditions treated from ``Condition`` ICD-10-CM codes of the condition catalog
  (``icd10cm``), and history flags from the clinic-configurable :data:`FLAG_CODES` table
  (clinic-policy defaults, source ``policy``);
* metal allergy from ``AllergyIntolerance`` (the clinic-policy terms :data:`ALLERGY_TERMS`,
  or coded via ``flag_codes``);
* antithrombotic therapy from active ``MedicationStatement`` / ``MedicationRequest`` coded in
  ATC ``B01A`` (``atc-b01a``).

FHIR data can only turn an answer **on** (``True``, or a pregnancy status): an absent resource
never means ``False``, so unknown stays unknown and screening says ``needs_review`` until the
answers are supplied (``answers=``, e.g. from the clinic's own intake form). Entered-in-error,
inactive, resolved and refuted resources are ignored.

**Out** -- :func:`procedure` (a session as a ``Procedure`` with CPT 20560 / 20561,
``apta-cpt-2020``), :func:`operation_outcome` (findings as ``OperationOutcome`` issues with
``expression``), :func:`detected_issues` (screening findings as ``DetectedIssue``) and
:func:`cds_cards` (a screening result as CDS Hooks 2.0 cards, ``cds-hooks-2.0``).

**Terminology** -- the code tables above (LOINC pregnancy status, ATC B01A, CPT 20560 /
20561, the clinic-policy :data:`FLAG_CODES` and :data:`ALLERGY_TERMS`) are data files in
``dryneedle/fhir/data/``, each with a header naming its sources, version and date, and each
entry its source ids; they are read and checked once, at import.

>>> from datetime import date
>>> from dryneedle.fhir import patient_from_fhir, screen_fhir
>>> bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
...     {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
...                   "birthDate": "1984-03-09"}},
...     {"resource": {"resourceType": "MedicationStatement", "id": "m1", "status": "active",
...                   "subject": {"reference": "Patient/p1"},
...                   "medicationCodeableConcept": {"coding": [
...                       {"system": "http://www.whocc.no/atc", "code": "B01AF"}]}}}]}
>>> inputs = patient_from_fhir(bundle)
>>> inputs.patient.history.anticoagulant_therapy, inputs.patient.history.bleeding_disorder
(True, None)
>>> inputs.evidence_for("patient.history.anticoagulant_therapy")
('MedicationStatement/m1',)
>>> screening = screen_fhir(bundle, on=date(2026, 11, 27))
>>> screening.result.decision.value
'not_eligible'
>>> card, = screening.cards()
>>> card["indicator"], card["summary"]
('critical', 'Dry needling: not eligible (anticoagulant or antiplatelet therapy)')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Final

from dryneedle.fhir import _cds, _terminology
from dryneedle.fhir._cds import cds_cards, cds_response, rank
from dryneedle.fhir._inbound import patient_from_fhir, planned_sites_from_fhir
from dryneedle.fhir._outbound import detected_issues, operation_outcome, procedure
from dryneedle.fhir._provenance import Action, FhirInputError, FhirPatientInputs, Provenance
from dryneedle.fhir._screen import FhirScreening, screen_fhir
from dryneedle.fhir._terminology import read_code_table
from dryneedle.model import Pregnancy

__all__ = [
    "ALLERGY_TERMS",
    "ANSWER_CODES",
    "ANTITHROMBOTIC_ATC",
    "ANTITHROMBOTIC_NAMES",
    "ATC",
    "BASE_URL",
    "CPT",
    "CPT_FIRST_DATE",
    "EXT_BODY_SIDE",
    "EXT_INSERTION",
    "EXT_SOURCE",
    "FLAG_CODES",
    "ICD10CM",
    "LOINC",
    "OVERRIDE_REASONS",
    "PREGNANCY_ANSWERS",
    "PREGNANCY_LOINC",
    "RXNORM",
    "SNOMED",
    "SYSTEMS",
    "Action",
    "FhirInputError",
    "FhirPatientInputs",
    "FhirScreening",
    "Provenance",
    "cds_cards",
    "cds_response",
    "detected_issues",
    "operation_outcome",
    "patient_from_fhir",
    "planned_sites_from_fhir",
    "procedure",
    "rank",
    "read_code_table",
    "read_code_table_file",
    "screen_fhir",
]

# The constants are defined in ._terminology (the code tables come from data/*.json); they are
# bound here with their documentation, which is what users and the API reference read.

LOINC: Final = _terminology.LOINC
"""LOINC code system URI."""
ICD10CM: Final = _terminology.ICD10CM
"""ICD-10-CM code system URI."""
ATC: Final = _terminology.ATC
"""WHO ATC code system URI (HL7 terminology)."""
CPT: Final = _terminology.CPT
"""CPT code system URI."""
BASE_URL: Final = _terminology.BASE_URL
"""Namespace of dryneedle's own FHIR code systems and extensions."""
SYSTEMS: Final[Mapping[str, str]] = _terminology.SYSTEMS
"""dryneedle's code systems and identifier systems, by short name.

``rule`` codes are rule ids (``screening.pregnancy``), ``muscle`` codes are anatomy-catalog
ids, ``condition`` codes condition-catalog ids, ``adverse-event`` codes
:class:`~dryneedle.model.AdverseEventKind` values, ``decision`` codes
:class:`~dryneedle.findings.Decision` values. None of them is a clinical terminology.
"""
EXT_INSERTION: Final = _terminology.EXT_INSERTION
"""Complex extension on ``Procedure``: one per insertion (muscle, side, technique, depth,
manipulation, dwell, ultrasoundGuided)."""
EXT_BODY_SIDE: Final = _terminology.EXT_BODY_SIDE
"""Extension on a ``Procedure.bodySite`` CodeableConcept: ``valueCode`` left/right/midline."""
EXT_SOURCE: Final = _terminology.EXT_SOURCE
"""Extension on ``DetectedIssue``: ``valueCode`` a source id (see :mod:`dryneedle.sources`)."""
PREGNANCY_LOINC: Final[str] = _terminology.PREGNANCY_LOINC
"""LOINC code of the pregnancy-status observation (``ips-pregnancy``)."""
PREGNANCY_ANSWERS: Final[Mapping[str, Pregnancy]] = _terminology.PREGNANCY_ANSWERS
"""LOINC answer codes of pregnancy status (``ips-pregnancy``)."""
ANTITHROMBOTIC_ATC: Final[str] = _terminology.ANTITHROMBOTIC_ATC
"""ATC group of antithrombotic agents; every code under it counts (``atc-b01a``)."""
CPT_FIRST_DATE: Final[date] = _terminology.CPT_FIRST_DATE
"""CPT 20560 / 20561 apply to dates of service from this day (``apta-cpt-2020``)."""
FLAG_CODES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = _terminology.FLAG_CODES
"""Clinic-policy default table: coded data that sets a history answer to ``True``.

Keys are :class:`~dryneedle.model.History` field names; values map a code-system URI to code
patterns: a code (``G40.909``), a prefix (``G40``, matching every code under it) or an
inclusive range of categories (``D65-D69``). The defaults are ICD-10-CM block ranges chosen
as **clinic-policy defaults** (source ``policy``, grade C): SOURCES.md gives no code for these
flags, and whole blocks are deliberately broad (a false flag is reviewed; a missed one is not).
Pass your own table as ``flag_codes=`` (e.g. ``{**FLAG_CODES, "metal_allergy": {...}}``); it
is matched against the codes of ``Condition``, ``AllergyIntolerance`` and medications.
"""
ALLERGY_TERMS: Final[tuple[str, ...]] = _terminology.ALLERGY_TERMS
"""Clinic-policy default: whole words that mark an ``AllergyIntolerance`` as a metal allergy.

Matched case-insensitively in ``code.text``, coding displays and reaction substances. No
source gives a code for metal or nickel allergy (source ``policy``); pass ``allergy_terms=``
or code it in ``flag_codes["metal_allergy"]``.
"""
OVERRIDE_REASONS: Final[tuple[tuple[str, str, str | None], ...]] = _cds.OVERRIDE_REASONS
"""The cards' override reasons ``(code, display, aligned)`` in ``SYSTEMS["override-reason"]``;
``aligned`` is the CDS Hooks 3.0 ballot's non-adherence-reason code of the same meaning, or
``None``."""
ANSWER_CODES: Final[
    Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]
] = _terminology.ANSWER_CODES
"""Codes that set a screening answer, ``{system URI: {code: ((flag, display), ...)}}``.

Built from ``answer-codes-snomed-ct.json``, ``answer-codes-icd10cm.json`` and
``answer-codes-rxnorm.json``: the codes of published VSAC value sets (Diabetes, HIV,
Immunocompromised Conditions, Epilepsy, Seizure Disorder, Bleeding Disorder, Coagulation
Disorders, Antithrombotic / Anticoagulant Therapy, Long Term Anticoagulant Use, Atherosclerosis
and Peripheral Arterial Disease, Pregnancy, Pregnant State, Acute Pharyngitis), each with its
code system's display (``snomed-ct``, ``icd10cm``, ``rxnorm``). A flag is a
:class:`~dryneedle.model.History` field name, ``pregnancy`` (pregnant) or ``none`` (reviewed:
bears on no answer). Extend it with :func:`read_code_table` and ``codes=``.
"""
SNOMED: Final = _terminology.SNOMED
"""SNOMED CT code system URI."""
RXNORM: Final = _terminology.RXNORM
"""RxNorm code system URI."""
ANTITHROMBOTIC_NAMES: Final[tuple[str, ...]] = _terminology.ANTITHROMBOTIC_NAMES
"""INN names of the ATC B01A agents (``atc-b01a``), matched as whole words in medication text:
an unclassified medication naming one makes ``anticoagulant_therapy`` unknown."""


def read_code_table_file(
    path: str,
) -> Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]:
    """Read a clinic's answer-code table from a file (see :func:`read_code_table`).

    Args:
        path: The JSON file (UTF-8).

    Returns:
        The table, to pass as ``codes=[table]`` to :func:`screen_fhir`.

    Raises:
        ValueError: When the file cannot be read or breaks a rule of :func:`read_code_table`.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"code table {path}: {exc}"
        raise ValueError(msg) from None
    return read_code_table(text, name=path)
