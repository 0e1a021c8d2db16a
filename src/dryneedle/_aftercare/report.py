"""The symptom report: what a patient reports after leaving the clinic, and its JSON form.

Private module behind :mod:`dryneedle.aftercare` (import the public names from there). It holds
the report's vocabulary (:class:`SymptomKind`, :class:`SymptomSeverity`), the report classes,
the structure checks of a decoded JSON report (rule ``aftercare.report.unknown_field``) and
:func:`structure_report` / :func:`unstructure_report`. A new symptom kind goes into
:class:`SymptomKind` and :data:`SYMPTOM_LABELS`, then into the triage
(:mod:`dryneedle._aftercare.triage`).

May import: the model, findings and policy, and the library's cattrs converter; no other
aftercare module.
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Mapping
from typing import Any, Final

import attrs

from dryneedle.findings import Finding, FindingsError, Severity, rule
from dryneedle.wire import converter

__all__ = [
    "SYMPTOM_LABELS",
    "ReportError",
    "ReportedSymptom",
    "SymptomKind",
    "SymptomReport",
    "SymptomSeverity",
    "structure_report",
    "unstructure_report",
]


class SymptomKind(enum.StrEnum):
    """What a patient reports after leaving the clinic (use ``other`` for anything else)."""

    SORENESS = "soreness"
    STIFFNESS = "stiffness"
    BRUISING = "bruising"
    BLEEDING = "bleeding"
    SPREADING_REDNESS = "spreading_redness"
    WARMTH = "warmth"
    PUS = "pus"
    FEVER = "fever"
    FAINTING = "fainting"
    BREATHLESSNESS = "breathlessness"
    CHEST_PAIN = "chest_pain"
    OTHER = "other"


SYMPTOM_LABELS: Final = types.MappingProxyType(
    {
        SymptomKind.SORENESS: "Soreness",
        SymptomKind.STIFFNESS: "Stiffness",
        SymptomKind.BRUISING: "A bruise",
        SymptomKind.BLEEDING: "Bleeding",
        SymptomKind.SPREADING_REDNESS: "Redness that spreads",
        SymptomKind.WARMTH: "Warmth where a needle went in",
        SymptomKind.PUS: "Pus where a needle went in",
        SymptomKind.FEVER: "A fever",
        SymptomKind.FAINTING: "Fainting",
        SymptomKind.BREATHLESSNESS: "Shortness of breath",
        SymptomKind.CHEST_PAIN: "Chest pain",
        SymptomKind.OTHER: "A symptom that is not on the usual list",
    }
)
"""Patient-facing label of each symptom kind (read-only), used in the triage's messages."""


class SymptomSeverity(enum.StrEnum):
    """How bad the patient says a symptom is."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


@attrs.frozen(kw_only=True)
class ReportedSymptom:
    """One symptom reported after the session.

    Attributes:
        kind: What the symptom is.
        duration_h: How long it has lasted so far, in hours (a day is 24 hours); ``None``
            if not said.
        severity: How bad it is; ``None`` if not said.
    """

    kind: SymptomKind
    duration_h: float | None = None
    severity: SymptomSeverity | None = None


@attrs.frozen(kw_only=True)
class SymptomReport:
    """What a patient reports after leaving the clinic.

    Symptoms are those the patient has had since leaving; soreness, stiffness and bruising are
    those still present when reporting, so :attr:`hours_since_session` bounds how long they
    have lasted after the session.

    JSON shape (see :func:`structure_report`)::

        {"hours_since_session": 37,
         "symptoms": [{"kind": "soreness", "duration_h": 30, "severity": "mild"}]}

    Attributes:
        hours_since_session: Hours from the end of the session to the report; ``None`` if not
            known.
        symptoms: The symptoms reported (empty: nothing to report).
    """

    hours_since_session: float | None = None
    symptoms: tuple[ReportedSymptom, ...] = ()


class ReportError(FindingsError):
    """A symptom report could not be structured; ``findings`` holds every problem found."""

    what = "symptom report"


_R_REPORT_UNKNOWN_FIELD: Final = rule("aftercare.report.unknown_field")

_REPORT_KEYS: Final = frozenset({"hours_since_session", "symptoms"})
_SYMPTOM_KEYS: Final = frozenset({"kind", "duration_h", "severity"})


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _problem(code: str, path: str, message: str) -> Finding:
    return Finding(code=code, severity=Severity.ERROR, path=path, message=message)


def _check_hours(value: object, path: str, out: list[Finding]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        out.append(_problem("structure.type", path,
                            f"expected a number or null, got {_json_kind(value)}"))
    elif not math.isfinite(value) or value < 0:
        out.append(_problem("structure.range", path, "expected a finite number >= 0"))


def _check_enum(value: object, enum_cls: type[enum.StrEnum], path: str, out: list[Finding]) -> None:
    if not isinstance(value, str):
        out.append(_problem("structure.type", path, f"expected a string, got {_json_kind(value)}"))
    elif value not in {m.value for m in enum_cls}:
        allowed = ", ".join(m.value for m in enum_cls)
        out.append(_problem("structure.enum", path, f"value is not one of: {allowed}"))


def _check_unknown(data: Mapping[str, Any], known: frozenset[str], prefix: str,
                   out: list[Finding]) -> None:
    for key in data:
        if key not in known:
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(_problem(_R_REPORT_UNKNOWN_FIELD.id, path, "unknown field"))


def _check_report(data: object) -> list[Finding]:
    out: list[Finding] = []
    if not isinstance(data, Mapping):
        out.append(_problem("structure.not_object", "",
                            f"expected a JSON object, got {_json_kind(data)}"))
        return out
    _check_unknown(data, _REPORT_KEYS, "", out)
    _check_hours(data.get("hours_since_session"), "hours_since_session", out)
    symptoms = data.get("symptoms", ())
    if not isinstance(symptoms, list | tuple):
        out.append(_problem("structure.type", "symptoms",
                            f"expected an array, got {_json_kind(symptoms)}"))
        return out
    for n, symptom in enumerate(symptoms):
        path = f"symptoms[{n}]"
        if not isinstance(symptom, Mapping):
            out.append(_problem("structure.type", path,
                                f"expected an object, got {_json_kind(symptom)}"))
            continue
        _check_unknown(symptom, _SYMPTOM_KEYS, path, out)
        if "kind" not in symptom:
            out.append(_problem("structure.missing", f"{path}.kind", "required field is missing"))
        else:
            _check_enum(symptom["kind"], SymptomKind, f"{path}.kind", out)
        _check_hours(symptom.get("duration_h"), f"{path}.duration_h", out)
        if symptom.get("severity") is not None:
            _check_enum(symptom["severity"], SymptomSeverity, f"{path}.severity", out)
    return out


def structure_report(data: object) -> SymptomReport:
    """Structure a decoded JSON symptom report (with the library's cattrs converter).

    The JSON shape is that of :class:`SymptomReport`: ``hours_since_session`` (number >= 0 or
    null, optional) and ``symptoms`` (array, optional), each symptom with ``kind`` (required,
    a :class:`SymptomKind` value), ``duration_h`` (number >= 0 or null) and ``severity`` (a
    :class:`SymptomSeverity` value or null). Unknown fields are errors.

    Args:
        data: The decoded JSON object.

    Returns:
        The report.

    Raises:
        ReportError: With every problem found (paths like ``symptoms[0].kind``; values are
            never echoed).

    >>> from dryneedle.aftercare import structure_report
    >>> structure_report({"hours_since_session": 37, "symptoms": [{"kind": "soreness"}]})
    SymptomReport(hours_since_session=37.0,
        symptoms=(ReportedSymptom(kind=<SymptomKind.SORENESS: 'soreness'>,
        duration_h=None, severity=None),))
    >>> structure_report({"symptoms": [{"kind": "tingling", "severty": "severe"}]})
    Traceback (most recent call last):
    ...
    dryneedle.aftercare.ReportError: 2 problem(s) in symptom report:
      symptoms[0].severty: unknown field [aftercare.report.unknown_field]
      symptoms[0].kind: value is not one of: soreness, ... other [structure.enum]
    """
    problems = _check_report(data)
    if problems or not isinstance(data, Mapping):
        raise ReportError(problems)
    report: SymptomReport = converter.structure(dict(data), SymptomReport)
    return report


def unstructure_report(report: SymptomReport) -> dict[str, Any]:
    """Return a symptom report as JSON-ready data (the inverse of :func:`structure_report`)."""
    data: dict[str, Any] = converter.unstructure(report)
    for symptom in data["symptoms"]:
        for key in ("kind", "severity"):
            if symptom[key] is not None:
                symptom[key] = str(symptom[key])
    return data
