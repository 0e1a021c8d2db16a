"""FHIR R4 in and out, and CDS Hooks cards, on plain JSON dicts (no runtime dependency).

**In** -- :func:`patient_from_fhir` turns a FHIR R4 ``Bundle`` (or any list of resources,
nested searchset bundles and ``null`` prefetch values included) into the screening
:class:`~dryneedle.model.Patient` and a provenance trail saying which resource produced which
answer, and which resources were ignored and why (``fhir-r4``):

* ``Patient.birthDate`` and ``Patient.gender`` (``male``/``female``/``other``/``unknown`` map
  one to one);
* pregnancy from ``Observation`` LOINC ``82810-3`` with answers ``LA15173-0`` (pregnant),
  ``LA26683-5`` (not pregnant), ``LA4489-6`` (unknown) (``ips-pregnancy``); the most recent
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

import enum
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import attrs

from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.findings import Decision, Finding, Severity, get_rule
from dryneedle.model import (
    History,
    NeedlePhobia,
    Patient,
    Pregnancy,
    Session,
    Sex,
    SiteFinding,
)
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.screening import PlannedSite, ScreeningResult, screen
from dryneedle.sources import SOURCES

__all__ = [
    "ALLERGY_TERMS",
    "ANTITHROMBOTIC_ATC",
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
    "PREGNANCY_ANSWERS",
    "PREGNANCY_LOINC",
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
    "screen_fhir",
]

# --- code systems and our namespace -----------------------------------------------------------

LOINC: Final = "http://loinc.org"
"""LOINC code system URI."""
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
"""ICD-10-CM code system URI."""
ATC: Final = "http://www.whocc.no/atc"
"""WHO ATC code system URI (HL7 terminology)."""
CPT: Final = "http://www.ama-assn.org/go/cpt"
"""CPT code system URI."""
_UCUM: Final = "http://unitsofmeasure.org"

BASE_URL: Final = "https://dryneedle.readthedocs.io/fhir"
"""Namespace of dryneedle's own FHIR code systems and extensions."""

SYSTEMS: Final[Mapping[str, str]] = {
    "rule": f"{BASE_URL}/CodeSystem/rule",
    "muscle": f"{BASE_URL}/CodeSystem/muscle",
    "condition": f"{BASE_URL}/CodeSystem/condition",
    "adverse-event": f"{BASE_URL}/CodeSystem/adverse-event",
    "decision": f"{BASE_URL}/CodeSystem/decision",
    "override-reason": f"{BASE_URL}/CodeSystem/override-reason",
    "session-id": f"{BASE_URL}/NamingSystem/session-id",
    "patient-id": f"{BASE_URL}/NamingSystem/patient-id",
    "practitioner-id": f"{BASE_URL}/NamingSystem/practitioner-id",
}
"""dryneedle's code systems and identifier systems, by short name.

``rule`` codes are rule ids (``screening.pregnancy``), ``muscle`` codes are anatomy-catalog
ids, ``condition`` codes condition-catalog ids, ``adverse-event`` codes
:class:`~dryneedle.model.AdverseEventKind` values, ``decision`` codes
:class:`~dryneedle.findings.Decision` values. None of them is a clinical terminology.
"""

EXT_INSERTION: Final = f"{BASE_URL}/StructureDefinition/insertion"
"""Complex extension on ``Procedure``: one per insertion (muscle, side, technique, depth,
manipulation, dwell, ultrasoundGuided)."""
EXT_BODY_SIDE: Final = f"{BASE_URL}/StructureDefinition/body-side"
"""Extension on a ``Procedure.bodySite`` CodeableConcept: ``valueCode`` left/right/midline."""
EXT_SOURCE: Final = f"{BASE_URL}/StructureDefinition/source"
"""Extension on ``DetectedIssue``: ``valueCode`` a source id (see :mod:`dryneedle.sources`)."""

PREGNANCY_LOINC: Final = "82810-3"
"""LOINC code of the pregnancy-status observation (``ips-pregnancy``)."""
PREGNANCY_ANSWERS: Final[Mapping[str, Pregnancy]] = {
    "LA15173-0": Pregnancy.PREGNANT,
    "LA26683-5": Pregnancy.NOT_PREGNANT,
    "LA4489-6": Pregnancy.UNKNOWN,
}
"""LOINC answer codes of pregnancy status (``ips-pregnancy``)."""

ANTITHROMBOTIC_ATC: Final = "B01A"
"""ATC group of antithrombotic agents; every code under it counts (``atc-b01a``)."""

CPT_FIRST_DATE: Final = date(2020, 1, 1)
"""CPT 20560 / 20561 apply to dates of service from this day (``apta-cpt-2020``)."""
_CPT_1_2: Final = "20560"
_CPT_3_PLUS: Final = "20561"

FLAG_CODES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "bleeding_disorder": {ICD10CM: ("D65-D69",)},
    "immunocompromised": {ICD10CM: ("D80-D84",)},
    "diabetes": {ICD10CM: ("E08-E13",)},
    "epilepsy": {ICD10CM: ("G40",)},
}
"""Clinic-policy default table: coded data that sets a history answer to ``True``.

Keys are :class:`~dryneedle.model.History` field names; values map a code-system URI to code
patterns: a code (``G40.909``), a prefix (``G40``, matching every code under it) or an
inclusive range of categories (``D65-D69``). The defaults are ICD-10-CM block ranges chosen
as **clinic-policy defaults** (source ``policy``, grade C): SOURCES.md gives no code for these
flags, and whole blocks are deliberately broad (a false flag is reviewed; a missed one is not).
Pass your own table as ``flag_codes=`` (e.g. ``{**FLAG_CODES, "metal_allergy": {...}}``); it
is matched against the codes of ``Condition``, ``AllergyIntolerance`` and medications.
"""

ALLERGY_TERMS: Final[tuple[str, ...]] = ("nickel", "metal", "metals")
"""Clinic-policy default: whole words that mark an ``AllergyIntolerance`` as a metal allergy.

Matched case-insensitively in ``code.text``, coding displays and reaction substances. No
source gives a code for metal or nickel allergy (source ``policy``); pass ``allergy_terms=``
or code it in ``flag_codes["metal_allergy"]``.
"""

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_SIMPLE_FHIRPATH = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?)*"
)
_DATETIME = re.compile(
    r"(?P<y>[0-9]{4})(-(?P<m>[0-9]{2})(-(?P<d>[0-9]{2})"
    r"(T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?)(?P<tz>Z|[+-][0-9]{2}:[0-9]{2}))?)?)?"
)
_UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, BASE_URL)
_HISTORY_BOOLS: Final = tuple(
    a.name for a in attrs.fields(History) if a.name not in ("needle_phobia", "consent")
)
_ANSWER_KEYS: Final = frozenset((*(a.name for a in attrs.fields(History)), "pregnancy"))


# --- provenance -------------------------------------------------------------------------------


class Action(enum.StrEnum):
    """What a mapping decision did with a resource (or a form answer)."""

    USED = "used"
    """The resource set the answer at ``path``."""
    IGNORED = "ignored"
    """The resource contributed nothing; ``reason`` says why."""
    SUPERSEDED = "superseded"
    """A value that lost to a more recent or more cautious one."""
    CONFLICT = "conflict"
    """Values that disagreed with no way to choose: the answer stays unknown."""


@attrs.frozen(kw_only=True)
class Provenance:
    """One traceable mapping decision.

    Attributes:
        path: The answer concerned (``patient.history.anticoagulant_therapy``,
            ``patient.pregnancy``, ``patient.conditions``, ...); ``""`` when the resource was
            ignored as a whole.
        value: The value it gave (JSON-ready), or ``None``.
        resource: ``Type/id``; the entry's ``fullUrl`` when the resource has no id;
            ``Type[n]`` (n-th resource of the input, 0-based) when it has neither; ``answers``
            for a form answer.
        code: The code that decided it as a FHIR token ``system|code``, or ``None``.
        action: What was done.
        reason: Short machine-readable reason (``atc-b01a``, ``flag-codes``,
            ``clinicalStatus:inactive``, ``verificationStatus:refuted``,
            ``status:entered-in-error``, ``unmapped-code``, ``other-patient``, ...).
        sources: Source ids behind the mapping.
    """

    path: str
    value: Any = None
    resource: str
    code: str | None = None
    action: Action
    reason: str
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {
            "path": self.path,
            "value": self.value,
            "resource": self.resource,
            "code": self.code,
            "action": self.action.value,
            "reason": self.reason,
            "sources": list(self.sources),
        }


@attrs.frozen(kw_only=True)
class FhirPatientInputs:
    """The patient model built from FHIR data, and how each answer was obtained.

    Attributes:
        patient: The screening patient (``patient_id`` is the FHIR ``Patient.id``).
        provenance: Every mapping decision, in input order (form answers last).
    """

    patient: Patient
    provenance: tuple[Provenance, ...]

    def provenance_for(self, path: str) -> tuple[Provenance, ...]:
        """Return the mapping decisions about one answer path."""
        return tuple(p for p in self.provenance if p.path == path)

    def evidence_for(self, path: str) -> tuple[str, ...]:
        """Return the FHIR resources that set the answer at ``path`` (used, not form answers)."""
        return tuple(
            dict.fromkeys(
                p.resource for p in self.provenance
                if p.path == path and p.action is Action.USED and p.resource != "answers"
            )
        )

    @property
    def ignored(self) -> tuple[Provenance, ...]:
        """The resources (or parts) that were ignored, with the reason."""
        return tuple(p for p in self.provenance if p.action is Action.IGNORED)

    def as_dict(self) -> dict[str, Any]:
        """Return the patient (record format v1) and the provenance as JSON-ready data."""
        from dryneedle.records import converter  # noqa: PLC0415 - keep import light

        return {
            "patient": converter.unstructure(self.patient),
            "provenance": [p.as_dict() for p in self.provenance],
        }


class FhirInputError(ValueError):
    """The input cannot be mapped at all (not FHIR, no patient, several patients, bad answers).

    Bad *clinical* data inside resources never raises: it is ignored and recorded.
    """


# --- small JSON helpers -----------------------------------------------------------------------


def _d(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _l(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _codings(concept: Any) -> list[tuple[str | None, str]]:
    """Return (system, code) pairs of a CodeableConcept (codings without a code skipped)."""
    out = []
    for coding in _l(_d(concept).get("coding")):
        code = _s(_d(coding).get("code"))
        if code is not None:
            out.append((_s(_d(coding).get("system")), code.strip()))
    return out


def _status_codes(concept: Any) -> set[str]:
    return {code for _, code in _codings(concept)}


def _token(system: str | None, code: str) -> str:
    return f"{system}|{code}" if system else code


def _texts(concept: Any) -> list[str]:
    c = _d(concept)
    out = [t for t in [_s(c.get("text"))] if t]
    out.extend(t for coding in _l(c.get("coding")) if (t := _s(_d(coding).get("display"))))
    return out


def _norm_code(code: str) -> str:
    return code.replace(".", "").strip().upper()


def _code_matches(code: str, pattern: str) -> bool:
    """Match a code against a code, a prefix or an inclusive range of categories."""
    c = _norm_code(code)
    if not _norm_code(pattern).strip("-"):
        return False  # an empty pattern matches nothing (never everything)
    if "-" in pattern and not pattern.startswith("-"):
        first, last = (_norm_code(p) for p in pattern.split("-", 1))
        width = max(len(first), len(last))
        return first <= c[:width] <= last
    return c.startswith(_norm_code(pattern))


def _match_flags(
    codings: Iterable[tuple[str | None, str]],
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]],
) -> list[tuple[str, str | None, str]]:
    """Return (flag, system, code) for every coding matching the flag table."""
    hits = []
    for system, code in codings:
        for flag, by_system in flag_codes.items():
            patterns = by_system.get(system or "", ())
            if any(_code_matches(code, p) for p in patterns):
                hits.append((flag, system, code))
    return hits


def _parse_when(text: Any) -> tuple[date, datetime | None] | None:
    """Parse a FHIR date/dateTime to (written date, UTC instant or None); partial -> None."""
    if not isinstance(text, str):
        return None
    m = _DATETIME.fullmatch(text)
    if m is None or m.group("d") is None:
        return None
    try:
        day = date(int(m.group("y")), int(m.group("m")), int(m.group("d")))
        if m.group("time") is None:
            return day, None
        instant = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
    return day, instant


def _later(a: tuple[date, datetime | None], b: tuple[date, datetime | None]) -> bool:
    """Whether ``a`` is strictly later than ``b`` (instants when both have one, else dates)."""
    if a[1] is not None and b[1] is not None:
        return a[1] > b[1]
    return a[0] > b[0]


def _observation_when(obs: Mapping[str, Any]) -> tuple[date, datetime | None] | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in obs:
            return _parse_when(obs[key])
    period = _d(obs.get("effectivePeriod"))
    return _parse_when(period.get("end") or period.get("start"))


# --- FHIR in ----------------------------------------------------------------------------------


@attrs.frozen
class _Res:
    index: int
    resource: Mapping[str, Any]
    full_url: str | None
    valid: bool = True

    @property
    def type(self) -> str:
        return _s(self.resource.get("resourceType")) or "Resource"

    @property
    def label(self) -> str:
        rid = _s(self.resource.get("id"))
        if rid is not None:
            return f"{self.type}/{rid}"
        return self.full_url or f"{self.type}[{self.index}]"


def _flatten(data: Any) -> list[tuple[Any, str | None]]:
    """Flatten bundles (nested too) and lists into (resource, fullUrl) pairs, in order."""
    out: list[tuple[Any, str | None]] = []

    def walk(item: Any, full_url: str | None) -> None:
        if item is None:
            return
        if isinstance(item, Mapping):
            if item.get("resourceType") == "Bundle":
                for entry in _l(item.get("entry")):
                    e = _d(entry)
                    walk(e.get("resource"), _s(e.get("fullUrl")))
                return
            out.append((item, full_url))
            return
        if isinstance(item, list | tuple):
            for x in item:
                walk(x, None)
            return
        out.append((item, full_url))

    walk(data, None)
    return out


_SUBJECT_KEY: Final = {
    "Condition": "subject",
    "Observation": "subject",
    "MedicationStatement": "subject",
    "MedicationRequest": "subject",
    "AllergyIntolerance": "patient",
}


def _ref_patient_id(ref: Any, full_urls: Mapping[str, str]) -> str | None:
    """Return the Patient id a Reference points at, ``""`` for a non-Patient target, or None."""
    text = _s(_d(ref).get("reference"))
    if text is None:
        return None
    if text in full_urls:
        return full_urls[text]
    parts = text.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2:
        return parts[-1] if parts[-2] == "Patient" else ""
    return None


@attrs.frozen(kw_only=True)
class _PregnancyObs:
    res: _Res
    value: Pregnancy
    when: tuple[date, datetime | None] | None
    code: str


class _Mapper:
    """One pass over the flattened input, collecting values and provenance."""

    def __init__(
        self,
        items: list[_Res],
        *,
        patient_id: str,
        flag_codes: Mapping[str, Mapping[str, Sequence[str]]],
        allergy_terms: Sequence[str],
        patient_urls: Mapping[str, str],
    ) -> None:
        self.items = items
        self.patient_id = patient_id
        self.flag_codes = flag_codes
        self.patient_urls = patient_urls
        words = "|".join(re.escape(t) for t in allergy_terms if t)
        self.allergy_re = re.compile(rf"\b({words})\b", re.IGNORECASE) if words else None
        self.trail: list[tuple[int, Provenance]] = []
        self.flags: dict[str, bool] = {}
        self.conditions: list[str] = []
        self.pregnancy: list[_PregnancyObs] = []
        self.demographics: dict[str, list[tuple[_Res, Any, str]]] = {}
        by_ref: dict[str, Mapping[str, Any]] = {}
        for r in items:
            if r.type == "Medication":
                by_ref[r.label] = r.resource
                if r.full_url:
                    by_ref[r.full_url] = r.resource
        self.medications = by_ref

    def note(self, r: _Res | None, **kwargs: Any) -> None:
        label = "answers" if r is None else r.label
        index = len(self.items) if r is None else r.index
        self.trail.append((index, Provenance(resource=label, **kwargs)))

    def ignore(self, r: _Res, reason: str, code: str | None = None) -> None:
        self.note(r, path="", action=Action.IGNORED, reason=reason, code=code,
                  sources=("fhir-r4",))

    def run(self) -> None:
        handlers = {
            "Patient": self.patient,
            "Observation": self.observation,
            "Condition": self.condition,
            "AllergyIntolerance": self.allergy,
            "MedicationStatement": self.medication,
            "MedicationRequest": self.medication,
        }
        for r in self.items:
            if not r.valid:
                self.ignore(r, "not-a-resource")
                continue
            handler = handlers.get(r.type)
            if handler is None:
                if r.type != "Medication":  # resolved through medicationReference
                    self.ignore(r, "unsupported-type")
                continue
            key = _SUBJECT_KEY.get(r.type)
            if key is not None:
                target = _ref_patient_id(r.resource.get(key), self.patient_urls)
                if target is not None and target != self.patient_id:
                    self.ignore(r, "other-patient" if target else "subject-not-a-patient")
                    continue
            handler(r)

    # Patient --------------------------------------------------------------------------------

    def patient(self, r: _Res) -> None:
        rid = _s(r.resource.get("id"))
        if rid is not None and rid != self.patient_id:
            self.ignore(r, "other-patient")
            return
        birth = r.resource.get("birthDate")
        if birth is not None:
            when = _parse_when(birth)
            if when is None or when[1] is not None:
                self.note(r, path="patient.birth_date", action=Action.IGNORED,
                          reason="partial-or-invalid-date", sources=("fhir-r4",))
            else:
                self.demographics.setdefault("patient.birth_date", []).append(
                    (r, when[0], "birthDate"))
        gender = r.resource.get("gender")
        if gender is not None:
            if isinstance(gender, str) and gender in {s.value for s in Sex}:
                self.demographics.setdefault("patient.sex", []).append((r, Sex(gender), "gender"))
            else:
                self.note(r, path="patient.sex", action=Action.IGNORED, reason="unmapped-value",
                          sources=("fhir-r4",))

    # Observation (pregnancy) ----------------------------------------------------------------

    def observation(self, r: _Res) -> None:
        res = r.resource
        if (LOINC, PREGNANCY_LOINC) not in _codings(res.get("code")):
            self.ignore(r, "unmapped-code")
            return
        status = _s(res.get("status")) or "missing"
        if status not in ("final", "amended", "corrected"):
            self.ignore(r, f"status:{status}", _token(LOINC, PREGNANCY_LOINC))
            return
        answers = [
            (code, PREGNANCY_ANSWERS[code])
            for system, code in _codings(res.get("valueCodeableConcept"))
            if system == LOINC and code in PREGNANCY_ANSWERS
        ]
        if len({v for _, v in answers}) != 1:
            self.ignore(r, "unmapped-value" if not answers else "contradictory-value",
                        _token(LOINC, PREGNANCY_LOINC))
            return
        code, value = answers[0]
        self.pregnancy.append(
            _PregnancyObs(res=r, value=value, when=_observation_when(res), code=code))

    def resolve_pregnancy(self) -> Pregnancy | None:
        """The most recent observation wins; a tie or an undated disagreement is a conflict."""
        obs = self.pregnancy
        if not obs:
            return None
        dated = [(o, o.when) for o in obs if o.when is not None]
        latest = [o for o, when in dated if not any(_later(w, when) for _, w in dated)]
        top = {o.value for o in (latest or obs)}
        undated_disagree = [o for o in obs if o.when is None and o.value not in top]
        conflict = len(top) != 1 or bool(undated_disagree)
        decided = None if conflict else next(iter(top))
        deciders = [*(latest or obs), *undated_disagree]
        for o in obs:
            if conflict and o in deciders:
                action, reason = Action.CONFLICT, "conflicting-pregnancy-status"
            elif o.value == decided and (o in deciders or o.when is None):
                action, reason = Action.USED, "loinc-82810-3"
            else:
                action, reason = Action.SUPERSEDED, "older-observation"
            self.note(o.res, path="patient.pregnancy", value=o.value.value, action=action,
                      reason=reason, code=_token(LOINC, o.code), sources=("ips-pregnancy",))
        return decided

    # Condition ----------------------------------------------------------------------------------

    def condition(self, r: _Res) -> None:
        res = r.resource
        verification = _status_codes(res.get("verificationStatus"))
        for bad in ("entered-in-error", "refuted"):
            if bad in verification:
                self.ignore(r, f"verificationStatus:{bad}")
                return
        clinical = _status_codes(res.get("clinicalStatus"))
        for bad in ("inactive", "resolved", "remission"):
            if bad in clinical:
                self.ignore(r, f"clinicalStatus:{bad}")
                return
        codings = _codings(res.get("code"))
        used = False
        for system, code in codings:
            if system != ICD10CM:
                continue
            for cond in CONDITIONS.values():
                if any(_code_matches(code, p) for p in cond.all_codes()):
                    if cond.id not in self.conditions:
                        self.conditions.append(cond.id)
                    self.note(r, path="patient.conditions", value=cond.id, action=Action.USED,
                              reason="icd10cm-catalog", code=_token(system, code),
                              sources=("icd10cm",))
                    used = True
        used = self.flag_hits(r, codings) or used
        if not used:
            self.ignore(r, "unmapped-code" if codings else "no-code",
                        _token(*codings[0]) if codings else None)

    def flag_hits(self, r: _Res, codings: list[tuple[str | None, str]]) -> bool:
        hits = _match_flags(codings, self.flag_codes)
        for flag, system, code in hits:
            self.set_flag(r, flag, reason="flag-codes", code=_token(system, code),
                          sources=("policy",))
        return bool(hits)

    def set_flag(self, r: _Res, flag: str, *, reason: str, code: str | None,
                 sources: tuple[str, ...]) -> None:
        self.flags[flag] = True
        self.note(r, path=f"patient.history.{flag}", value=True, action=Action.USED,
                  reason=reason, code=code, sources=sources)

    # AllergyIntolerance -----------------------------------------------------------------------

    def allergy(self, r: _Res) -> None:
        res = r.resource
        verification = _status_codes(res.get("verificationStatus"))
        for bad in ("entered-in-error", "refuted"):
            if bad in verification:
                self.ignore(r, f"verificationStatus:{bad}")
                return
        clinical = _status_codes(res.get("clinicalStatus"))
        for bad in ("inactive", "resolved"):
            if bad in clinical:
                self.ignore(r, f"clinicalStatus:{bad}")
                return
        concepts = [res.get("code")]
        concepts += [_d(reaction).get("substance") for reaction in _l(res.get("reaction"))]
        codings = [c for concept in concepts for c in _codings(concept)]
        used = self.flag_hits(r, codings)
        if self.allergy_re is not None and "metal_allergy" not in self.flags_from(r):
            for text in (t for concept in concepts for t in _texts(concept)):
                m = self.allergy_re.search(text)
                if m is not None:
                    self.set_flag(r, "metal_allergy", reason=f"allergy-term:{m.group(1).lower()}",
                                  code=None, sources=("policy",))
                    used = True
                    break
        if not used:
            self.ignore(r, "unmapped-code", _token(*codings[0]) if codings else None)

    def flags_from(self, r: _Res) -> set[str]:
        return {
            p.path.rsplit(".", 1)[-1] for i, p in self.trail
            if i == r.index and p.action is Action.USED and p.path.startswith("patient.history.")
        }

    # MedicationStatement / MedicationRequest ----------------------------------------------------

    def medication(self, r: _Res) -> None:
        res = r.resource
        status = _s(res.get("status")) or "missing"
        ok = ("active", "on-hold", "intended") if r.type == "MedicationStatement" else (
            "active", "on-hold", "draft")
        if status not in ok:
            self.ignore(r, f"status:{status}")
            return
        if res.get("doNotPerform") is True:
            self.ignore(r, "doNotPerform")
            return
        if "medicationCodeableConcept" in res:
            concept: Any = res.get("medicationCodeableConcept")
        else:
            ref = _s(_d(res.get("medicationReference")).get("reference"))
            med: Mapping[str, Any] | None = None
            if ref is not None and ref.startswith("#"):
                med = next((_d(c) for c in _l(res.get("contained"))
                            if _d(c).get("id") == ref[1:]), None)
            elif ref is not None:
                med = self.medications.get(ref)
            if med is None:
                self.ignore(r, "unresolved-medication")
                return
            concept = med.get("code")
        codings = _codings(concept)
        used = False
        for system, code in codings:
            if system == ATC and _code_matches(code, ANTITHROMBOTIC_ATC):
                self.set_flag(r, "anticoagulant_therapy", reason="atc-b01a",
                              code=_token(system, code), sources=("atc-b01a",))
                used = True
        used = self.flag_hits(r, codings) or used
        if not used:
            self.ignore(r, "unmapped-code" if codings else "no-code",
                        _token(*codings[0]) if codings else None)

    # Demographics ---------------------------------------------------------------------------------

    def resolve_demographic(self, path: str) -> Any:
        seen = self.demographics.get(path, [])
        values = {v for _, v, _ in seen}
        value = next(iter(values)) if len(values) == 1 else None
        for r, v, element in seen:
            self.note(
                r, path=path, value=v.isoformat() if isinstance(v, date) else str(v.value),
                action=Action.USED if value is not None else Action.CONFLICT,
                reason=f"Patient.{element}" if value is not None else "conflicting-patient-data",
                sources=("fhir-r4",),
            )
        return value


_CAUTION: Final[Mapping[Pregnancy, int]] = {
    Pregnancy.NOT_PREGNANT: 0, Pregnancy.UNKNOWN: 1, Pregnancy.PREGNANT: 2,
}


def _coerce_answers(answers: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in answers.items():
        if key not in _ANSWER_KEYS:
            msg = f"unknown answer {key!r}; known: {sorted(_ANSWER_KEYS)}"
            raise FhirInputError(msg)
        if value is None:
            continue  # the same as not answered
        try:
            if key == "pregnancy":
                out[key] = Pregnancy(value)
            elif key == "needle_phobia":
                out[key] = NeedlePhobia(value)
            elif isinstance(value, bool):
                out[key] = value
            else:
                raise ValueError(value)
        except ValueError:
            # The value itself is not echoed: a misplaced answer could be free text.
            msg = f"answer {key!r}: invalid value (expected true, false, null or a listed value)"
            raise FhirInputError(msg) from None
    return out


def _find_patient_id(items: list[_Res], full_urls: Mapping[str, str]) -> str:
    ids = list(dict.fromkeys(
        rid for r in items if r.type == "Patient" and (rid := _s(r.resource.get("id")))
    ))
    if len(ids) > 1:
        msg = "the input holds several patients; pass patient_id="
        raise FhirInputError(msg)
    if ids:
        return ids[0]
    refs = list(dict.fromkeys(
        pid for r in items if r.type in _SUBJECT_KEY
        if (pid := _ref_patient_id(r.resource.get(_SUBJECT_KEY[r.type]), full_urls))
    ))
    if len(refs) == 1:
        return refs[0]
    msg = ("no Patient resource and no single patient reference in the input; pass patient_id="
           if not refs else "the input refers to several patients; pass patient_id=")
    raise FhirInputError(msg)


def patient_from_fhir(
    resources: Mapping[str, Any] | Sequence[Any] | None,
    *,
    patient_id: str | None = None,
    answers: Mapping[str, bool | str | None] | None = None,
    site_findings: Iterable[SiteFinding] = (),
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
) -> FhirPatientInputs:
    """Build the screening patient from FHIR R4 resources, with a provenance trail.

    Args:
        resources: A ``Bundle`` (any type; nested bundles are read), one resource, or a list
            of resources / bundles / ``None`` (as in CDS Hooks prefetch).
        patient_id: The patient's FHIR id (default: the single ``Patient.id`` in the input, or
            the single patient every subject refers to). Resources about another patient are
            ignored.
        answers: Answers collected outside FHIR (e.g. the clinic's intake form), by
            :class:`~dryneedle.model.History` field name or ``pregnancy``. FHIR evidence can
            only make an answer more cautious: a form ``False`` is overridden by a FHIR
            ``True`` (recorded as superseded), a form ``not_pregnant`` by a pregnant
            observation.
        site_findings: Site findings (not derived from FHIR).
        flag_codes: Coded data that sets history answers (default :data:`FLAG_CODES`).
        allergy_terms: Words marking a metal allergy (default :data:`ALLERGY_TERMS`).

    Returns:
        The :class:`FhirPatientInputs` (patient and provenance).

    Raises:
        FhirInputError: When no single patient can be identified or an answer is invalid.
    """
    flat = _flatten(resources)
    items = [
        _Res(i, res, url) if isinstance(res, Mapping)
        else _Res(i, {"resourceType": type(res).__name__}, url, valid=False)
        for i, (res, url) in enumerate(flat)
    ]
    unknown_flags = set(flag_codes) - set(_HISTORY_BOOLS)
    if unknown_flags:
        msg = f"flag_codes: unknown history answers {sorted(unknown_flags)}"
        raise FhirInputError(msg)
    patient_urls = {
        r.full_url: rid for r in items
        if r.type == "Patient" and r.full_url and (rid := _s(r.resource.get("id")))
    }
    pid = patient_id or _find_patient_id(items, patient_urls)
    for r in items:  # an id-less Patient entry: its fullUrl identifies the target patient
        if r.type == "Patient" and r.full_url and not _s(r.resource.get("id")):
            patient_urls[r.full_url] = pid
    form = _coerce_answers(answers or {})
    m = _Mapper(items, patient_id=pid, flag_codes=flag_codes, allergy_terms=allergy_terms,
                patient_urls=patient_urls)
    m.run()
    birth_date = m.resolve_demographic("patient.birth_date")
    sex = m.resolve_demographic("patient.sex")
    fhir_pregnancy = m.resolve_pregnancy()

    # Merge the form answers: the more cautious value wins; every choice is recorded.
    history: dict[str, Any] = {}
    for name in (a.name for a in attrs.fields(History)):
        form_value = form.get(name)
        history[name] = True if m.flags.get(name) is True else form_value
        if form_value is not None:
            overridden = history[name] != form_value
            m.note(None, path=f"patient.history.{name}", value=_json(form_value),
                   action=Action.SUPERSEDED if overridden else Action.USED,
                   reason="fhir-evidence" if overridden else "answers")
    pregnancy = fhir_pregnancy
    if fhir_pregnancy is None and m.pregnancy:
        # Conflicting observations: the status is unknown, and no form answer can make it
        # less cautious than that.
        fhir_pregnancy = Pregnancy.UNKNOWN
    form_preg: Pregnancy | None = form.get("pregnancy")
    if form_preg is not None:
        final = form_preg
        if fhir_pregnancy is not None and _CAUTION[fhir_pregnancy] > _CAUTION[form_preg]:
            final = fhir_pregnancy
        # FHIR observations overridden by a more cautious form answer are superseded.
        m.trail = [
            (i, attrs.evolve(p, action=Action.SUPERSEDED, reason="more-cautious-answer"))
            if p.path == "patient.pregnancy" and p.action is Action.USED and p.value != final.value
            else (i, p)
            for i, p in m.trail
        ]
        m.note(None, path="patient.pregnancy", value=form_preg.value,
               action=Action.USED if final is form_preg else Action.SUPERSEDED,
               reason="answers" if final is form_preg else "fhir-evidence")
        pregnancy = final
    patient = Patient(
        patient_id=pid,
        birth_date=birth_date,
        sex=sex,
        pregnancy=pregnancy,
        history=History(**history),
        site_findings=tuple(site_findings),
        conditions=tuple(c for c in CONDITIONS if c in m.conditions),
    )
    trail = [p for _, p in sorted(m.trail, key=lambda t: t[0])]
    return FhirPatientInputs(patient=patient, provenance=tuple(trail))


def _json(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def planned_sites_from_fhir(resources: Mapping[str, Any] | Sequence[Any] | None) -> tuple[
    PlannedSite, ...
]:
    """Return the sites planned in ``ServiceRequest`` / ``Procedure`` resources.

    A ``bodySite`` coded in dryneedle's muscle code system (``SYSTEMS["muscle"]``, as written
    by :func:`procedure`) is a planned site; its side comes from the :data:`EXT_BODY_SIDE`
    extension and defaults to ``midline`` (which overlaps both sides, the cautious reading).

    >>> from dryneedle.fhir import SYSTEMS, planned_sites_from_fhir
    >>> order = {"resourceType": "ServiceRequest", "status": "draft", "bodySite": [
    ...     {"coding": [{"system": SYSTEMS["muscle"], "code": "psoas"}]}]}
    >>> [(s.muscle, s.side.value) for s in planned_sites_from_fhir([order])]
    [('psoas', 'midline')]
    """
    from dryneedle.model import Side  # noqa: PLC0415

    sites: list[PlannedSite] = []
    for res, _ in _flatten(resources):
        r = _d(res)
        if r.get("resourceType") not in ("ServiceRequest", "Procedure"):
            continue
        for site in _l(r.get("bodySite")):
            side = Side.MIDLINE
            for ext in _l(_d(site).get("extension")):
                code = _d(ext).get("valueCode")
                if _d(ext).get("url") == EXT_BODY_SIDE and code in {s.value for s in Side}:
                    side = Side(code)
            for system, code in _codings(site):
                if system == SYSTEMS["muscle"]:
                    sites.append(PlannedSite(muscle=code, side=side))
    return tuple(sites)


# --- screening --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FhirScreening:
    """A screening made from FHIR data, with its inputs' provenance.

    Attributes:
        inputs: The patient and provenance (:func:`patient_from_fhir`).
        result: The screening result.
    """

    inputs: FhirPatientInputs
    result: ScreeningResult

    def cards(self, *, always: bool = False, uuid_seed: str = "") -> list[dict[str, Any]]:
        """Return the CDS Hooks cards (see :func:`cds_cards`)."""
        return cds_cards(self.result, inputs=self.inputs, always=always, uuid_seed=uuid_seed)

    def detected_issues(self) -> list[dict[str, Any]]:
        """Return the ``DetectedIssue`` resources (see :func:`detected_issues`)."""
        return detected_issues(self.result, patient_id=self.inputs.patient.patient_id,
                               inputs=self.inputs)

    def operation_outcome(self) -> dict[str, Any]:
        """Return the findings as an ``OperationOutcome`` (see :func:`operation_outcome`)."""
        return operation_outcome(self.result.findings)

    def as_dict(self) -> dict[str, Any]:
        """Return the result and the provenance as JSON-ready data."""
        return {
            "result": self.result.as_dict(),
            "provenance": [p.as_dict() for p in self.inputs.provenance],
        }


def screen_fhir(
    resources: Mapping[str, Any] | Sequence[Any] | None,
    *,
    on: date,
    sites: Iterable[Any] = (),
    policy: Policy = DEFAULT_POLICY,
    patient_id: str | None = None,
    answers: Mapping[str, bool | str | None] | None = None,
    site_findings: Iterable[SiteFinding] = (),
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
) -> FhirScreening:
    """Map FHIR resources to a patient and screen it (see :func:`patient_from_fhir`).

    Args:
        resources: Bundle, resource or list of them.
        on: Evaluation date (never read from the clock here).
        sites: Planned sites, as for :func:`~dryneedle.screening.screen`.
        policy: The policy.
        patient_id: The patient's FHIR id (default: found in the input).
        answers: Answers collected outside FHIR.
        site_findings: Site findings.
        flag_codes: Coded data that sets history answers.
        allergy_terms: Words marking a metal allergy.

    Returns:
        The :class:`FhirScreening`.

    Raises:
        FhirInputError: As :func:`patient_from_fhir`.
    """
    inputs = patient_from_fhir(
        resources, patient_id=patient_id, answers=answers, site_findings=site_findings,
        flag_codes=flag_codes, allergy_terms=allergy_terms,
    )
    return FhirScreening(inputs=inputs,
                         result=screen(inputs.patient, on=on, sites=sites, policy=policy))


# --- FHIR out: Procedure ----------------------------------------------------------------------


def _reference(kind: str, ident: str, system_key: str) -> dict[str, Any]:
    if _FHIR_ID.fullmatch(ident):
        return {"reference": f"{kind}/{ident}"}
    return {"type": kind, "identifier": {"system": SYSTEMS[system_key], "value": ident}}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": _UCUM, "code": unit}


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
        cpt = _CPT_1_2 if muscles <= 2 else _CPT_3_PLUS
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


def _rule_title(code: str) -> str | None:
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
        title = _rule_title(f.code)
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


# --- CDS Hooks cards --------------------------------------------------------------------------

_INDICATOR: Final[Mapping[Decision, str]] = {
    Decision.NOT_ELIGIBLE: "critical",
    Decision.NEEDS_REVIEW: "warning",
    Decision.ELIGIBLE_WITH_PRECAUTIONS: "warning",
    Decision.ELIGIBLE: "info",
}
_DECISION_LABEL: Final[Mapping[Decision, str]] = {
    d: d.value.replace("_", " ") for d in Decision
}
_OVERRIDE_REASONS: Final = (
    ("data-outdated", "Patient data shown is incorrect or outdated"),
    ("answers-confirmed", "Missing answers were confirmed with the patient"),
    ("clinician-judgement", "Clinician judgement: benefit outweighs the risk"),
    ("no-needling-planned", "No dry needling is planned"),
)
_SUMMARY_MAX: Final = 139  # CDS Hooks: summary < 140 characters
_DOCS_URL: Final = "https://dryneedle.readthedocs.io/"


def _label(f: Finding) -> str:
    if f.code == "screening.unknown_answer":
        return f.path.rsplit(".", 1)[-1].replace("_", " ") + " unknown"
    title = _rule_title(f.code)
    if title is None:
        return f.code
    return title[0].lower() + title[1:]


def _summary(result: ScreeningResult) -> str:
    head = f"Dry needling: {_DECISION_LABEL[result.decision]}"
    wanted = {
        Decision.NOT_ELIGIBLE: (Severity.ERROR,),
        Decision.NEEDS_REVIEW: (Severity.ERROR, Severity.WARNING),
        Decision.ELIGIBLE_WITH_PRECAUTIONS: (Severity.ERROR, Severity.WARNING),
        Decision.ELIGIBLE: (Severity.ERROR, Severity.WARNING, Severity.INFO),
    }[result.decision]
    if result.decision is Decision.NEEDS_REVIEW and result.missing:
        n = len(result.missing)
        head += f", {n} answer{'s' if n != 1 else ''} unknown"
        labels = [_label(f) for f in result.findings
                  if f.severity in wanted and f.code != "screening.unknown_answer"]
    else:
        labels = [_label(f) for f in result.findings if f.severity in wanted]
    labels = list(dict.fromkeys(labels))
    for keep in range(len(labels), -1, -1):
        shown = labels[:keep]
        rest = len(labels) - keep
        inner = ", ".join(shown) + (f" +{rest} more" if rest and shown else "")
        if not shown and rest:
            inner = f"{rest} finding{'s' if rest != 1 else ''}"
        text = f"{head} ({inner})" if inner else head
        if len(text) <= _SUMMARY_MAX:
            return text
    return head[:_SUMMARY_MAX]  # pragma: no cover - the head alone is always short


def _md(text: str) -> str:
    return text.replace("`", "'")


def _resource_label(label: str) -> str:
    # Never print a patient identifier in a message: the Patient resource is named by type.
    return "Patient" if label.startswith("Patient/") or "/Patient/" in label else label


def _detail(result: ScreeningResult, inputs: FhirPatientInputs | None) -> str:
    lines = [
        f"**Decision: {_DECISION_LABEL[result.decision]}**, evaluated on "
        f"{result.on.isoformat()} under policy `{_md(result.policy_name)}` (fingerprint "
        f"`{result.policy}`), dryneedle {result.version}.",
        "",
    ]
    cited: list[str] = []
    if result.findings:
        lines += ["**Findings** (most serious first)", ""]
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    for f in sorted(result.findings, key=lambda f: order[Severity(f.severity)]):
        if f.code == "screening.unknown_answer":
            name = "Unknown answer: " + f.path.rsplit(".", 1)[-1].replace("_", " ")
        else:
            name = _rule_title(f.code) or f.code
        line = (f"- **{_md(name)}** (`{f.code}`, {Severity(f.severity).value}) at "
                f"`{_md(f.path) or '(input)'}`: {_md(f.message)}.")
        if inputs is not None:
            trail = inputs.provenance_for(f.path)
            used = [p for p in trail if p.action is Action.USED]
            if used:
                line += " From: " + "; ".join(
                    _md(_resource_label(p.resource)) + (f" (`{_md(p.code)}`)" if p.code else "")
                    for p in used
                ) + "."
            unusable = [p for p in trail if p.action in (Action.CONFLICT, Action.IGNORED)]
            if unusable:
                line += " Not usable: " + "; ".join(
                    f"{_md(_resource_label(p.resource))} ({p.reason})" for p in unusable
                ) + "."
            superseded = [p for p in trail if p.action is Action.SUPERSEDED]
            if superseded:
                line += " Superseded: " + "; ".join(
                    f"{_md(_resource_label(p.resource))} {json.dumps(p.value)} ({p.reason})"
                    for p in superseded
                ) + "."
        if f.sources:
            line += " Sources: " + ", ".join(f.sources) + "."
        lines.append(line)
        cited.extend(f.sources)
    if result.missing:
        lines += ["", "**Answers to collect** before needling: "
                  + ", ".join(f"`{p}`" for p in result.missing) + "."]
    if inputs is not None:
        n_used = len({p.resource for p in inputs.provenance
                      if p.action is Action.USED and p.resource != "answers"})
        reasons: dict[str, int] = {}
        for p in inputs.ignored:
            reasons[p.reason] = reasons.get(p.reason, 0) + 1
        line = f"**FHIR inputs**: {n_used} resource{'s' if n_used != 1 else ''} used"
        if reasons:
            line += ", ignored: " + ", ".join(f"{k} ({v})" for k, v in sorted(reasons.items()))
        conflicts = sorted({p.path for p in inputs.provenance if p.action is Action.CONFLICT})
        if conflicts:
            line += "; conflicting data left unknown: " + ", ".join(f"`{c}`" for c in conflicts)
        lines += ["", line + ". Absent FHIR data is read as unknown, never as no."]
    sources = [s for s in dict.fromkeys(cited) if s in SOURCES]
    if sources:
        lines += ["", "**Sources**", ""]
        for sid in sources:
            src = SOURCES[sid]
            ref = f"- `{sid}` ({src.grade}): {_md(src.reference)}"
            if src.url:
                ref += f" <{src.url}>"
            lines.append(ref)
    return "\n".join(lines)


def cds_cards(
    result: ScreeningResult,
    *,
    inputs: FhirPatientInputs | None = None,
    always: bool = False,
    uuid_seed: str = "",
) -> list[dict[str, Any]]:
    """Return a screening result as CDS Hooks 2.0 cards (``cds-hooks-2.0``).

    One card per decision: ``summary`` under 140 characters naming the decision and its
    reasons; ``indicator`` ``critical`` (not eligible), ``warning`` (needs review, eligible
    with precautions) or ``info`` (eligible); ``source`` with label, url and a topic coding the
    decision; ``detail`` in Markdown listing every finding with its rule id, path, the FHIR
    resources behind it and its sources; ``overrideReasons`` with displays; a deterministic
    ``uuid`` (UUID 5 of the card's content and ``uuid_seed``). A plain ``eligible`` result
    without findings has nothing to say: no card, unless ``always``.

    Args:
        result: The screening result.
        inputs: The FHIR inputs (adds where each answer came from).
        always: Return an ``info`` card even when there is nothing to say.
        uuid_seed: Mixed into the card uuid (e.g. the hook instance).

    Returns:
        The cards (possibly empty).
    """
    if result.decision is Decision.ELIGIBLE and not result.findings and not always:
        return []
    card: dict[str, Any] = {
        "summary": _summary(result),
        "indicator": _INDICATOR[result.decision],
        "detail": _detail(result, inputs),
        "source": {
            "label": f"dryneedle {result.version} screening",
            "url": _DOCS_URL,
            "topic": {"system": SYSTEMS["decision"], "code": result.decision.value,
                      "display": _DECISION_LABEL[result.decision].capitalize()},
        },
        "overrideReasons": [
            {"system": SYSTEMS["override-reason"], "code": code, "display": display}
            for code, display in _OVERRIDE_REASONS
        ],
        "extension": {"io.readthedocs.dryneedle": {
            "decision": result.decision.value,
            "codes": list(dict.fromkeys(f.code for f in result.findings)),
            "missing": list(result.missing),
            "policy": {"name": result.policy_name, "fingerprint": result.policy},
        }},
    }
    blob = json.dumps([uuid_seed, card], sort_keys=True, separators=(",", ":"))
    return [{"uuid": str(uuid.uuid5(_UUID_NAMESPACE, blob)), **card}]


def cds_response(
    result: ScreeningResult,
    *,
    inputs: FhirPatientInputs | None = None,
    always: bool = False,
    uuid_seed: str = "",
) -> dict[str, Any]:
    """Return the CDS Hooks response body ``{"cards": [...]}`` (see :func:`cds_cards`)."""
    return {"cards": cds_cards(result, inputs=inputs, always=always, uuid_seed=uuid_seed)}
