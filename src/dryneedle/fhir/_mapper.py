"""One pass over FHIR resources: what each resource type says, with a provenance entry each.

What it is for: :class:`Mapper` reads the flattened input once, resource type by resource
type (Patient, Observation, Condition, AllergyIntolerance, MedicationStatement /
MedicationRequest), collects the values they give (flags, conditions, pregnancy observations,
demographics) and records every decision as a :class:`~dryneedle.fhir.Provenance`. It only
collects: merging with form answers and building the patient is :mod:`._inbound`'s job.

May import: the standard library, :mod:`dryneedle.catalog`, :mod:`dryneedle.model` and, in
this package, :mod:`._provenance`, :mod:`._reading` and :mod:`._terminology`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import attrs

from dryneedle.catalog import CONDITIONS
from dryneedle.fhir._provenance import Action, Provenance
from dryneedle.fhir._reading import (
    SUBJECT_KEY,
    InputResource,
    codings_of,
    is_later,
    jlist,
    jobj,
    jstr,
    observation_when,
    parse_when,
    ref_patient_id,
    status_codes,
    texts_of,
    token,
)
from dryneedle.fhir._terminology import (
    ANTITHROMBOTIC_ATC,
    ATC,
    ICD10CM,
    LOINC,
    PREGNANCY_ANSWERS,
    PREGNANCY_LOINC,
    code_matches,
    match_flags,
)
from dryneedle.model import Pregnancy, Sex

__all__ = ["Mapper"]


@attrs.frozen(kw_only=True)
class _PregnancyObs:
    res: InputResource
    value: Pregnancy
    when: tuple[date, datetime | None] | None
    code: str


class Mapper:
    """One pass over the flattened input, collecting values and provenance."""

    def __init__(
        self,
        items: list[InputResource],
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
        self.demographics: dict[str, list[tuple[InputResource, Any, str]]] = {}
        by_ref: dict[str, Mapping[str, Any]] = {}
        for r in items:
            if r.type == "Medication":
                by_ref[r.label] = r.resource
                if r.full_url:
                    by_ref[r.full_url] = r.resource
        self.medications = by_ref

    def note(self, r: InputResource | None, **kwargs: Any) -> None:
        """Record a mapping decision about ``r`` (``None``: a form answer)."""
        label = "answers" if r is None else r.label
        index = len(self.items) if r is None else r.index
        self.trail.append((index, Provenance(resource=label, **kwargs)))

    def ignore(self, r: InputResource, reason: str, code: str | None = None) -> None:
        """Record that ``r`` contributed nothing, and why."""
        self.note(r, path="", action=Action.IGNORED, reason=reason, code=code,
                  sources=("fhir-r4",))

    def run(self) -> None:
        """Read every item once, by resource type; other patients' resources are ignored."""
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
            key = SUBJECT_KEY.get(r.type)
            if key is not None:
                target = ref_patient_id(r.resource.get(key), self.patient_urls)
                if target is not None and target != self.patient_id:
                    self.ignore(r, "other-patient" if target else "subject-not-a-patient")
                    continue
            handler(r)

    # Patient --------------------------------------------------------------------------------

    def patient(self, r: InputResource) -> None:
        """Collect ``birthDate`` and ``gender`` (resolved by :meth:`resolve_demographic`)."""
        rid = jstr(r.resource.get("id"))
        if rid is not None and rid != self.patient_id:
            self.ignore(r, "other-patient")
            return
        birth = r.resource.get("birthDate")
        if birth is not None:
            when = parse_when(birth)
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

    def observation(self, r: InputResource) -> None:
        """Collect a final pregnancy-status observation (LOINC 82810-3) and its answer."""
        res = r.resource
        if (LOINC, PREGNANCY_LOINC) not in codings_of(res.get("code")):
            self.ignore(r, "unmapped-code")
            return
        status = jstr(res.get("status")) or "missing"
        if status not in ("final", "amended", "corrected"):
            self.ignore(r, f"status:{status}", token(LOINC, PREGNANCY_LOINC))
            return
        answers = [
            (code, PREGNANCY_ANSWERS[code])
            for system, code in codings_of(res.get("valueCodeableConcept"))
            if system == LOINC and code in PREGNANCY_ANSWERS
        ]
        if len({v for _, v in answers}) != 1:
            self.ignore(r, "unmapped-value" if not answers else "contradictory-value",
                        token(LOINC, PREGNANCY_LOINC))
            return
        code, value = answers[0]
        self.pregnancy.append(
            _PregnancyObs(res=r, value=value, when=observation_when(res), code=code))

    def resolve_pregnancy(self) -> Pregnancy | None:
        """The most recent observation wins; a tie or an undated disagreement is a conflict."""
        obs = self.pregnancy
        if not obs:
            return None
        dated = [(o, o.when) for o in obs if o.when is not None]
        latest = [o for o, when in dated if not any(is_later(w, when) for _, w in dated)]
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
                      reason=reason, code=token(LOINC, o.code), sources=("ips-pregnancy",))
        return decided

    # Condition ----------------------------------------------------------------------------------

    def condition(self, r: InputResource) -> None:
        """Map an active, unrefuted ``Condition`` to catalog conditions and history flags."""
        res = r.resource
        verification = status_codes(res.get("verificationStatus"))
        for bad in ("entered-in-error", "refuted"):
            if bad in verification:
                self.ignore(r, f"verificationStatus:{bad}")
                return
        clinical = status_codes(res.get("clinicalStatus"))
        for bad in ("inactive", "resolved", "remission"):
            if bad in clinical:
                self.ignore(r, f"clinicalStatus:{bad}")
                return
        codings = codings_of(res.get("code"))
        used = False
        for system, code in codings:
            if system != ICD10CM:
                continue
            for cond in CONDITIONS.values():
                if any(code_matches(code, p) for p in cond.all_codes()):
                    if cond.id not in self.conditions:
                        self.conditions.append(cond.id)
                    self.note(r, path="patient.conditions", value=cond.id, action=Action.USED,
                              reason="icd10cm-catalog", code=token(system, code),
                              sources=("icd10cm",))
                    used = True
        used = self.flag_hits(r, codings) or used
        if not used:
            self.ignore(r, "unmapped-code" if codings else "no-code",
                        token(*codings[0]) if codings else None)

    def flag_hits(self, r: InputResource, codings: list[tuple[str | None, str]]) -> bool:
        """Set the history flags whose codes match; return whether any did."""
        hits = match_flags(codings, self.flag_codes)
        for flag, system, code in hits:
            self.set_flag(r, flag, reason="flag-codes", code=token(system, code),
                          sources=("policy",))
        return bool(hits)

    def set_flag(self, r: InputResource, flag: str, *, reason: str, code: str | None,
                 sources: tuple[str, ...]) -> None:
        """Set a history flag to ``True`` and record why."""
        self.flags[flag] = True
        self.note(r, path=f"patient.history.{flag}", value=True, action=Action.USED,
                  reason=reason, code=code, sources=sources)

    # AllergyIntolerance -----------------------------------------------------------------------

    def allergy(self, r: InputResource) -> None:
        """Map an active, unrefuted ``AllergyIntolerance`` to flags (codes, then allergy words)."""
        res = r.resource
        verification = status_codes(res.get("verificationStatus"))
        for bad in ("entered-in-error", "refuted"):
            if bad in verification:
                self.ignore(r, f"verificationStatus:{bad}")
                return
        clinical = status_codes(res.get("clinicalStatus"))
        for bad in ("inactive", "resolved"):
            if bad in clinical:
                self.ignore(r, f"clinicalStatus:{bad}")
                return
        concepts = [res.get("code")]
        concepts += [jobj(reaction).get("substance") for reaction in jlist(res.get("reaction"))]
        codings = [c for concept in concepts for c in codings_of(concept)]
        used = self.flag_hits(r, codings)
        if self.allergy_re is not None and "metal_allergy" not in self.flags_from(r):
            for text in (t for concept in concepts for t in texts_of(concept)):
                m = self.allergy_re.search(text)
                if m is not None:
                    self.set_flag(r, "metal_allergy", reason=f"allergy-term:{m.group(1).lower()}",
                                  code=None, sources=("policy",))
                    used = True
                    break
        if not used:
            self.ignore(r, "unmapped-code", token(*codings[0]) if codings else None)

    def flags_from(self, r: InputResource) -> set[str]:
        """Return the history flags ``r`` has already set."""
        return {
            p.path.rsplit(".", 1)[-1] for i, p in self.trail
            if i == r.index and p.action is Action.USED and p.path.startswith("patient.history.")
        }

    # MedicationStatement / MedicationRequest ----------------------------------------------------

    def medication(self, r: InputResource) -> None:
        """Map an active medication coded in ATC B01A (or in the flag table) to flags."""
        res = r.resource
        status = jstr(res.get("status")) or "missing"
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
            ref = jstr(jobj(res.get("medicationReference")).get("reference"))
            med: Mapping[str, Any] | None = None
            if ref is not None and ref.startswith("#"):
                med = next((jobj(c) for c in jlist(res.get("contained"))
                            if jobj(c).get("id") == ref[1:]), None)
            elif ref is not None:
                med = self.medications.get(ref)
            if med is None:
                self.ignore(r, "unresolved-medication")
                return
            concept = med.get("code")
        codings = codings_of(concept)
        used = False
        for system, code in codings:
            if system == ATC and code_matches(code, ANTITHROMBOTIC_ATC):
                self.set_flag(r, "anticoagulant_therapy", reason="atc-b01a",
                              code=token(system, code), sources=("atc-b01a",))
                used = True
        used = self.flag_hits(r, codings) or used
        if not used:
            self.ignore(r, "unmapped-code" if codings else "no-code",
                        token(*codings[0]) if codings else None)

    # Demographics ---------------------------------------------------------------------------------

    def resolve_demographic(self, path: str) -> Any:
        """Return the one value all Patient resources agree on (else ``None``, a conflict)."""
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

