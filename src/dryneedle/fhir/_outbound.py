"""FHIR out: a session as a ``Procedure``, findings as ``OperationOutcome`` / ``DetectedIssue``.

What it is for: :func:`procedure` (CPT 20560 / 20561, insertions as extensions, dryneedle's
muscle codes as ``bodySite``), :func:`operation_outcome` (any findings, for a ``$validate``
style response) and :func:`detected_issues` (screening findings, with the FHIR evidence behind
them), all as JSON-ready dicts; :func:`rule_title`, also used by the CDS cards.

May import: the standard library, :mod:`dryneedle.catalog`, :mod:`dryneedle.findings`,
:mod:`dryneedle.model`, :mod:`dryneedle.screening` (the result type),
:mod:`dryneedle.sources` and, in this package, :mod:`._provenance` and :mod:`._terminology`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from dryneedle.catalog import MUSCLES
from dryneedle.fhir._provenance import FhirPatientInputs
from dryneedle.fhir._terminology import (
    CPT,
    CPT_1_2,
    CPT_3_PLUS,
    CPT_FIRST_DATE,
    EXT_BODY_SIDE,
    EXT_INSERTION,
    EXT_SOURCE,
    SYSTEMS,
    UCUM,
)
from dryneedle.findings import Finding, Severity, get_rule
from dryneedle.model import Session
from dryneedle.screening import ScreeningResult
from dryneedle.sources import SOURCES

__all__ = ["detected_issues", "operation_outcome", "procedure", "rule_title"]

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SIMPLE_FHIRPATH = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?)*"
)


# --- FHIR out: Procedure ----------------------------------------------------------------------


def _reference(kind: str, ident: str, system_key: str) -> dict[str, Any]:
    if _FHIR_ID.fullmatch(ident):
        return {"reference": f"{kind}/{ident}"}
    return {"type": kind, "identifier": {"system": SYSTEMS[system_key], "value": ident}}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _muscle_coding(muscle_id: str) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": SYSTEMS["muscle"], "code": muscle_id}
    muscle = MUSCLES.get(muscle_id)
    if muscle is not None:
        coding["display"] = muscle.name
    return coding


def procedure(
    session: Session,
    *,
    patient_id: str,
    count_sides_separately: bool = False,
) -> dict[str, Any]:
    """Return a session as a FHIR R4 ``Procedure`` (JSON-ready dict).

    ``status`` is ``completed`` (``not-done`` when nothing was inserted); ``code`` is CPT
    20560 for 1-2 distinct muscles and 20561 for 3 or more (``apta-cpt-2020``; no CPT code
    before 2020-01-01); ``bodySite`` has one entry per distinct muscle and side, coded in
    dryneedle's muscle code system (no SNOMED CT code: none is confirmed); every insertion is
    an :data:`EXT_INSERTION` extension; ``note`` is a plain summary without identifiers.

    Args:
        session: The session.
        patient_id: The patient's id (``Patient/<id>``; a logical identifier reference when it
            is not a valid FHIR id).
        count_sides_separately: Count left and right of one muscle as two muscles for CPT
            (clinic policy; default: once, the lower code, as the source does not say).

    Returns:
        The ``Procedure`` resource.

    >>> from datetime import date
    >>> from dryneedle.fhir import procedure
    >>> from dryneedle.model import (Insertion, Manipulation, Practitioner, Session, Side,
    ...                              Technique)
    >>> s = Session(session_id="s-1", date=date(2026, 11, 20), number=1,
    ...             practitioner=Practitioner(practitioner_id="pt-7"), insertions=(
    ...     Insertion(muscle="upper_trapezius", side=Side.RIGHT, technique=Technique.DEEP,
    ...               depth_mm=15.0, manipulation=Manipulation.PISTONING),))
    >>> p = procedure(s, patient_id="p-001")
    >>> p["status"], p["code"]["coding"][0]["code"], p["bodySite"][0]["text"]
    ('completed', '20560', 'Upper trapezius, right')
    """
    sites: dict[tuple[str, str], dict[str, Any]] = {}
    extensions: list[dict[str, Any]] = []
    for ins in session.insertions:
        key = (ins.muscle, ins.side.value)
        if key not in sites:
            muscle = MUSCLES.get(ins.muscle)
            sites[key] = {
                "extension": [{"url": EXT_BODY_SIDE, "valueCode": ins.side.value}],
                "coding": [_muscle_coding(ins.muscle)],
                "text": f"{muscle.name if muscle else ins.muscle}, {ins.side.value}",
            }
        parts: list[dict[str, Any]] = [
            {"url": "muscle", "valueCoding": _muscle_coding(ins.muscle)},
            {"url": "side", "valueCode": ins.side.value},
            {"url": "technique", "valueCode": ins.technique.value},
        ]
        if ins.depth_mm is not None:
            parts.append({"url": "depth", "valueQuantity": _quantity(ins.depth_mm, "mm")})
        parts.append({"url": "manipulation", "valueCode": ins.manipulation.value})
        if ins.dwell_s is not None:
            parts.append({"url": "dwell", "valueQuantity": _quantity(ins.dwell_s, "s")})
        if ins.ultrasound_guided is not None:
            parts.append({"url": "ultrasoundGuided", "valueBoolean": ins.ultrasound_guided})
        extensions.append({"url": EXT_INSERTION, "extension": parts})

    muscles = len(sites) if count_sides_separately else len({m for m, _ in sites})
    code: dict[str, Any] = {}
    if muscles and session.date >= CPT_FIRST_DATE:
        cpt = CPT_1_2 if muscles <= 2 else CPT_3_PLUS
        code["coding"] = [{"system": CPT, "code": cpt}]
    code["text"] = (
        "Dry needling (needle insertion without injection), "
        f"{muscles} muscle{'s' if muscles != 1 else ''}"
    )
    techniques: dict[str, int] = {}
    for ins in session.insertions:
        techniques[ins.technique.value] = techniques.get(ins.technique.value, 0) + 1
    summary = (
        f"Dry needling session {session.number}: {len(session.insertions)} insertion"
        f"{'s' if len(session.insertions) != 1 else ''} in {muscles} muscle"
        f"{'s' if muscles != 1 else ''}"
    )
    if techniques:
        summary += " (" + ", ".join(f"{k} {v}" for k, v in sorted(techniques.items())) + ")"
    if session.post.needles_removed is not None:
        summary += f"; needles removed {session.post.needles_removed}"
    if session.adverse_events:
        summary += "; adverse events: " + ", ".join(
            f"{e.kind.value} ({e.grade.value if e.grade else 'ungraded'})"
            for e in session.adverse_events
        )
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "identifier": [{"system": SYSTEMS["session-id"], "value": session.session_id}],
    }
    if extensions:
        resource["extension"] = extensions
    resource["status"] = "completed" if session.insertions else "not-done"
    resource["code"] = code
    resource["subject"] = _reference("Patient", patient_id, "patient-id")
    resource["performedDateTime"] = session.date.isoformat()
    resource["performer"] = [{"actor": {
        "type": "Practitioner",
        "identifier": {"system": SYSTEMS["practitioner-id"],
                       "value": session.practitioner.practitioner_id},
    }}]
    if sites:
        resource["bodySite"] = list(sites.values())
    if session.adverse_events:
        resource["complication"] = [
            {"coding": [{"system": SYSTEMS["adverse-event"], "code": e.kind.value}],
             "text": f"{e.kind.value.replace('_', ' ')} "
                     f"({e.grade.value if e.grade else 'ungraded'})"}
            for e in session.adverse_events
        ]
    resource["note"] = [{"text": summary + "."}]
    return resource


# --- FHIR out: OperationOutcome ---------------------------------------------------------------

_OO_SEVERITY: Final[Mapping[Severity, str]] = {
    Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "information",
}
_STRUCTURE_ISSUE: Final[Mapping[str, str]] = {
    "structure.json": "structure",
    "structure.not_object": "structure",
    "structure.format": "structure",
    "structure.missing": "required",
    "structure.type": "structure",
    "structure.enum": "code-invalid",
    "structure.date": "value",
    "structure.range": "value",
    "structure.unknown_field": "structure",
}
_BUSINESS: Final = frozenset(("screening", "protocol", "series", "aftercare"))


def _issue_code(code: str) -> str:
    category = code.split(".", 1)[0]
    if category == "structure":
        return _STRUCTURE_ISSUE.get(code, "invalid")
    return "business-rule" if category in _BUSINESS else "processing"


def operation_outcome(findings: Iterable[Finding]) -> dict[str, Any]:
    """Return findings as a FHIR R4 ``OperationOutcome`` (JSON-ready dict).

    One issue per finding: ``severity`` error/warning/information; ``code`` by category
    (structural findings: ``structure``, ``required``, ``value``, ``code-invalid``;
    screening, protocol, series and aftercare findings: ``business-rule``);
    ``details.coding`` the rule id in ``SYSTEMS["rule"]`` and ``details.text`` the message;
    ``expression`` the finding's path. Our paths are record-format paths
    (``session.insertions[0].depth_mm``): valid FHIRPath expressions over the
    ``dryneedle.session/1`` record, not paths into a FHIR resource. An empty path (the whole
    input) has no expression. ``location`` (deprecated) is never used. With no findings, one
    ``information`` issue says so (an OperationOutcome needs at least one issue).

    >>> from dryneedle.fhir import operation_outcome
    >>> from dryneedle.findings import Finding
    >>> from dryneedle.findings import Severity
    >>> oo = operation_outcome([Finding(code="structure.missing", severity=Severity.ERROR,
    ...                                 path="session.date", message="required field is missing")])
    >>> issue, = oo["issue"]
    >>> issue["severity"], issue["code"], issue["expression"]
    ('error', 'required', ['session.date'])
    """
    issues = []
    for f in findings:
        issue: dict[str, Any] = {
            "severity": _OO_SEVERITY[Severity(f.severity)],
            "code": _issue_code(f.code),
            "details": {"coding": [{"system": SYSTEMS["rule"], "code": f.code}],
                        "text": f.message},
        }
        diagnostics = []
        if f.sources:
            diagnostics.append("sources: " + ", ".join(f.sources))
        if f.path and _SIMPLE_FHIRPATH.fullmatch(f.path):
            issue["expression"] = [f.path]
        elif f.path:
            diagnostics.append(f"path: {f.path}")
        if diagnostics:
            issue["diagnostics"] = "; ".join(diagnostics)
        issues.append(issue)
    if not issues:
        issues.append({"severity": "information", "code": "informational",
                       "details": {"text": "no findings"}})
    return {"resourceType": "OperationOutcome", "issue": issues}


# --- FHIR out: DetectedIssue ------------------------------------------------------------------

_DI_SEVERITY: Final[Mapping[Severity, str]] = {
    Severity.ERROR: "high", Severity.WARNING: "moderate", Severity.INFO: "low",
}
_NOT_AN_ISSUE: Final = frozenset(("screening.unknown_answer",))
_POSITION_LABEL: Final = re.compile(r"[A-Za-z]+\[[0-9]+\]")


def rule_title(code: str) -> str | None:
    """Return the title of a rule id (``None`` for an unregistered id).

    Args:
        code: A finding code (rule id).

    Returns:
        The rule's title, or ``None``.
    """
    try:
        return get_rule(code).title
    except KeyError:
        return None


def detected_issues(
    result: ScreeningResult,
    *,
    patient_id: str,
    inputs: FhirPatientInputs | None = None,
) -> list[dict[str, Any]]:
    """Return the screening's clinical findings as FHIR R4 ``DetectedIssue`` resources.

    One resource per finding, except unknown answers (``screening.unknown_answer``: missing
    data is not a detected clinical issue; see :func:`cds_cards` and
    :func:`operation_outcome`). ``severity`` is ``high`` for an error (an exclusion or an
    excluded site), ``moderate`` for a warning (precaution, review), ``low`` for information;
    ``code`` is the rule id; ``evidence`` references the FHIR resources that produced the
    answer (from ``inputs``' provenance) when there are any; ``reference`` is the URL of the
    first cited source that has one; every source id is in an :data:`EXT_SOURCE` extension.

    Args:
        result: The screening result.
        patient_id: The patient's FHIR id.
        inputs: The FHIR inputs, for evidence references.

    Returns:
        The ``DetectedIssue`` resources, in finding order.
    """
    out = []
    for f in result.findings:
        if f.code in _NOT_AN_ISSUE:
            continue
        coding: dict[str, Any] = {"system": SYSTEMS["rule"], "code": f.code}
        title = rule_title(f.code)
        if title:
            coding["display"] = title
        issue: dict[str, Any] = {"resourceType": "DetectedIssue"}
        if f.sources:
            issue["extension"] = [{"url": EXT_SOURCE, "valueCode": s} for s in f.sources]
        issue["status"] = "final"
        issue["code"] = {"coding": [coding], "text": title or f.code}
        issue["severity"] = _DI_SEVERITY[Severity(f.severity)]
        issue["patient"] = _reference("Patient", patient_id, "patient-id")
        issue["identifiedDateTime"] = result.on.isoformat()
        issue["author"] = {"display": f"dryneedle {result.version}"}
        evidence = inputs.evidence_for(f.path) if inputs is not None else ()
        refs = [{"reference": e} for e in evidence if not _POSITION_LABEL.fullmatch(e)]
        if refs:
            issue["evidence"] = [{"detail": refs}]
        issue["detail"] = f.message
        url = next((SOURCES[s].url for s in f.sources if s in SOURCES and SOURCES[s].url), None)
        if url:
            issue["reference"] = url
        out.append(issue)
    return out

