"""One pass over FHIR resources: what each resource type says, with a provenance entry each.

What it is for: :class:`Mapper` reads the flattened input once, resource type by resource
type (Patient, Observation, Condition, AllergyIntolerance, MedicationStatement /
MedicationRequest / MedicationDispense / MedicationAdministration, Procedure), collects the
values they give (answers set or left unknown, conditions, pregnancy observations, site
findings, unclassified medications, demographics)
and records every decision as a :class:`~dryneedle.fhir.Provenance` (through
:class:`~._evidence.Evidence`, its base). It only collects: merging with form answers and
building the patient is :mod:`._inbound`'s job.

May import: the standard library, :mod:`dryneedle.catalog`, :mod:`dryneedle.model` and, in
this package, :mod:`._evidence`, :mod:`._provenance`, :mod:`._reading` and
:mod:`._terminology`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Final

from dryneedle.catalog import CONDITIONS
from dryneedle.fhir._evidence import DOUBTFUL, Evidence, PregnancyObs
from dryneedle.fhir._provenance import Action
from dryneedle.fhir._reading import (
    SUBJECT_KEY,
    InputResource,
    codings_of,
    jlist,
    jobj,
    jstr,
    observation_ongoing,
    observation_when,
    parse_when,
    ref_patient_id,
    reference_readable,
    status_codes,
    texts_of,
    token,
    utc_day,
)
from dryneedle.fhir._terminology import (
    BODY_SITES,
    ICD10CM,
    LATERALITY,
    LOINC,
    NO_ANSWER,
    PREGNANCY_LOINC,
    PREGNANCY_VALUES,
    SITE_KINDS,
    SNOMED,
    SYSTEMS,
    CodePatterns,
)
from dryneedle.model import Pregnancy, Sex, SiteFinding, SiteFindingKind, SiteSide

__all__ = ["Mapper"]

MUSCLE_SYSTEM = SYSTEMS["muscle"]
# What a resource type's codes may say: a procedure is a history of it, an allergy only a
# metal allergy (an allergy *to* warfarin is no anticoagulant therapy), a medication anything
# but an allergy (a nickel compound given is not an allergy to it).
_PROCEDURE_ANSWERS = frozenset({"lymph_node_removal", NO_ANSWER})
_ALLERGY_ANSWERS = frozenset({"metal_allergy", NO_ANSWER})
_SEXES: Final = frozenset(s.value for s in Sex)
_PREGNANCY_TOKEN: Final = token(LOINC, PREGNANCY_LOINC)
# Condition status codes (clinicalStatus, verificationStatus) read together.
_CURRENT: Final = frozenset({"active", "recurrence", "relapse"})
_NOT_CURRENT: Final = frozenset({"inactive", "resolved", "remission"})
_AFFIRMED: Final = frozenset({"confirmed", "unconfirmed", "provisional", "differential"})
_RULED_OUT: Final = frozenset({"refuted", "entered-in-error"})
_UNSURE: Final = frozenset({"unconfirmed", "provisional", "differential"})
# The catalog's ICD-10-CM codes, compiled once (in catalog order): a coding is normalised once
# and matched against each condition's patterns in one pass, as code_matches would.
_CATALOG_CODES: Final = tuple((cond, CodePatterns(sorted(cond.all_codes())))
                              for cond in CONDITIONS.values())


@functools.lru_cache(maxsize=4096)
def _catalog_hits(code: str) -> tuple[str, ...]:
    """The ids of the catalog conditions an ICD-10-CM code falls under (in order).

    The code is :meth:`~._terminology.CodePatterns.normalise`-d here: cached by the code as
    written, a repeated one costs one look-up.
    """
    normalised = CodePatterns.normalise(code)
    return tuple(cond.id for cond, patterns in _CATALOG_CODES
                 if patterns.matches_normalised(normalised))


class Mapper(Evidence):
    """One pass over the flattened input, collecting values and provenance.

    The state, the provenance and the resolution of what was collected are
    :class:`~._evidence.Evidence`'s; this class holds the readers, one per resource type.
    """

    def run(self) -> None:
        """Read every item once, by resource type; other patients' resources are ignored."""
        readers = _READERS
        seen: dict[str, tuple[str | None, bool]] = {}  # reference -> (target, readable)
        for r in self.items:
            if not r.valid:
                self.ignore(r, "not-a-resource")
                continue
            reader = readers.get(r.type)
            if reader is None:
                if r.type != "Medication":  # resolved through medicationReference
                    self.ignore(r, "unsupported-type")
                continue
            handler, key = reader
            self.doubtful = False
            if key is not None:
                ref = r.resource.get(key)
                # Both answers depend on the reference text alone (and the patient's URLs):
                # most resources of a call name the same patient, read once.
                text = (ref if type(ref) is dict else jobj(ref)).get("reference")
                if not isinstance(text, str) or not text:  # jstr, inlined
                    target, readable = None, True  # what both say of no reference
                elif text in seen:
                    target, readable = seen[text]
                else:
                    target = ref_patient_id(ref, self.patient_urls)
                    readable = reference_readable(ref, self.patient_urls)
                    seen[text] = (target, readable)
                if not readable:
                    self.doubtful = True  # neither clearly this patient nor another
                elif target is not None and target != self.patient_id:
                    self.ignore(r, "other-patient" if target else "subject-not-a-patient")
                    continue
            handler(self, r)
        self.doubtful = False

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
            if isinstance(gender, str) and gender in _SEXES:
                self.demographics.setdefault("patient.sex", []).append((r, Sex(gender), "gender"))
            else:
                self.note(r, path="patient.sex", action=Action.IGNORED, reason="unmapped-value",
                          sources=("fhir-r4",))

    # Observation (pregnancy, site findings) ---------------------------------------------------

    def unsure_pregnancy(self, r: InputResource,
                         coded: list[tuple[str | None, str]] | None = None) -> bool:
        """An Observation not coded ``http://loinc.org|82810-3`` that still looks like one.

        Its code is 82810-3 under another system or none, or a pregnancy-status concept itself
        (e.g. SNOMED CT 77386006 with a boolean value), or its value is a pregnancy-status
        answer (LOINC LA15173-0, SNOMED CT 77386006, ...): it could bear on the pregnancy
        answer, so it makes the answer unknown rather than being ignored (SPEC section 8 1.1,
        review finding B8). Returns whether it was recorded (``coded``: the codings of its
        ``code``, when already read).
        """
        res = r.resource
        if jstr(res.get("status")) in ("entered-in-error", "cancelled"):
            return False
        values = {PREGNANCY_VALUES[(system or "", code)]
                  for system, code in self.codings(res.get("valueCodeableConcept"))
                  if (system or "", code) in PREGNANCY_VALUES}
        if coded is None:
            coded = self.codings(res.get("code"))
        if not values and all(code != PREGNANCY_LOINC and (system or "", code)
                              not in PREGNANCY_VALUES for system, code in coded):
            return False
        doubt = not values or Pregnancy.PREGNANT in values
        # From when it applies; an ongoing period applies now (undated: counts as current).
        when = None if observation_ongoing(res) else observation_when(res)
        self.mark_unread(r, "pregnancy", reason="unrecognised-pregnancy-code",
                         sources=("ips-pregnancy", "loinc"), doubt=when if doubt else False)
        return True

    def observation(self, r: InputResource) -> None:
        """Pregnancy status (LOINC 82810-3) or a finding at a body site."""
        res = r.resource
        coded = self.codings(res.get("code"))
        if (LOINC, PREGNANCY_LOINC) not in coded:
            if res.get("bodySite") is not None and jstr(res.get("status")) not in (
                    "entered-in-error", "cancelled"):
                self.site(r, res.get("bodySite"), coded, observation_when(res))
                self.unsure_pregnancy(r, coded)  # a pregnancy value at a body site still counts
                return
            if self.unsure_pregnancy(r, coded):
                return
            self.ignore(r, "unmapped-code")
            return
        tok = _PREGNANCY_TOKEN
        status = jstr(res.get("status")) or "missing"
        answers = [
            (token(system, code), PREGNANCY_VALUES[(system or "", code)])
            for system, code in self.codings(res.get("valueCodeableConcept"))
            if (system or "", code) in PREGNANCY_VALUES
        ]
        values = {v for _, v in answers}
        when = observation_when(res)
        # A period without an end is ongoing (fhir-r4, Period): a "pregnant" status observed
        # over it still holds today, however long ago it started.
        ongoing = observation_ongoing(res)
        # Unread, it could still say "pregnant" (no readable value, or "pregnant" among them):
        # from when it applies (an ongoing one applies now: undated, which counts as current).
        doubt = not answers or Pregnancy.PREGNANT in values
        doubt_when = None if ongoing else when
        if status in ("entered-in-error", "cancelled"):
            self.ignore(r, f"status:{status}", tok)
            return
        if status == "preliminary" and values == {Pregnancy.PREGNANT}:
            pass  # a preliminary "pregnant" counts as pregnant (the cautious reading)
        elif status not in ("final", "amended", "corrected"):
            self.mark_unread(r, "pregnancy", reason=f"status:{status}", code=tok,
                             sources=("ips-pregnancy",), doubt=doubt_when if doubt else False)
            return
        if len(values) != 1:
            self.mark_unread(r, "pregnancy", code=tok, sources=("ips-pregnancy",),
                             reason="unmapped-value" if not answers else "contradictory-value",
                             doubt=doubt_when if doubt else False)
            return
        code, value = answers[0]
        if value is Pregnancy.NOT_PREGNANT:  # a "pregnant" status always counts (SPEC 8)
            stale = self.stale(when)
            if stale is not None:
                self.mark_unread(r, "pregnancy", reason=stale, code=code,
                                 sources=("ips-pregnancy", "policy"), doubt=False)
                return
        if self.doubtful:
            self.mark_unread(r, "pregnancy", reason=DOUBTFUL, code=code,
                             sources=("ips-pregnancy",),
                             doubt=doubt_when if value is not Pregnancy.NOT_PREGNANT else False)
            return
        self.pregnancy.append(PregnancyObs(res=r, value=value, when=when, code=code,
                                           ongoing=ongoing))

    # Site findings --------------------------------------------------------------------------------

    def site(self, r: InputResource, body_sites: Any, codings: list[tuple[str | None, str]],
             when: tuple[date, datetime | None] | None, *, surgery: bool = False) -> bool:
        """Turn a resource at a body site into site findings; return whether it was one.

        The kind is surgery for a Procedure, else looked up in :data:`SITE_KINDS`; the region
        and side come from :data:`BODY_SITES` and :data:`LATERALITY` (no side: both sides). A
        site or kind that cannot be read makes the site findings unknown.
        """
        sites = [s for s in (body_sites if isinstance(body_sites, list) else [body_sites])
                 if not any(sys == MUSCLE_SYSTEM for sys, _ in codings_of(s))]
        if not sites:
            return False
        kind = SiteFindingKind.SURGERY if surgery else next(
            (SITE_KINDS[c] for sys, c in codings if sys == SNOMED and c in SITE_KINDS), None)
        tok = token(*codings[0]) if codings else None
        if kind is None:
            self.site_unread(r, "unmapped-site-finding-kind", tok)
            return True
        if self.doubtful:
            self.site_unread(r, DOUBTFUL, tok)
            return True
        for site in sites:
            site_codings = self.codings(site)
            placed = [BODY_SITES[c] for sys, c in site_codings
                      if sys == SNOMED and c in BODY_SITES]
            if not placed:
                self.site_unread(r, "unmapped-body-site", tok)
                continue
            lateral = [LATERALITY[c] for sys, c in site_codings
                       if sys == SNOMED and c in LATERALITY]
            for regions, fixed in placed:
                side = fixed or (lateral[0] if len(set(lateral)) == 1 else SiteSide.BILATERAL)
                for region in regions:
                    finding = SiteFinding(region=region, side=side, kind=kind,
                                          date=when[0] if when else None)
                    self.site_findings.append(finding)
                    self.note(r, path="patient.site_findings",
                              value={"region": region.value, "side": side.value,
                                     "kind": kind.value,
                                     "date": when[0].isoformat() if when else None},
                              action=Action.USED, reason="body-site", code=tok,
                              sources=("snomed-ct",))
        return True

    def procedure(self, r: InputResource) -> None:
        """A Procedure's answer codes (e.g. lymph node removal), and surgery at its body site.

        A code an answer table names sets that answer (status ``stopped``, ``unknown`` or
        none: unknown, as it may have been done); a body site makes a surgery there
        (undated: counts as recent).
        """
        res = r.resource
        status = jstr(res.get("status")) or "missing"
        codings = self.codings(res.get("code"))
        hits = [h for h in self.answers_of(codings) if h[0] in _PROCEDURE_ANSWERS]
        uncertain = status in ("stopped", "unknown", "missing")
        used = bool(hits) and status not in ("entered-in-error", "not-done", "preparation")
        if used:
            self.apply(r, hits, confirmed=not uncertain,
                       reason=f"status:{status}" if uncertain else "value-set")
        if status in ("entered-in-error", "not-done", "preparation", "stopped"):
            if not used:
                self.ignore(r, f"status:{status}")
            return
        if res.get("bodySite") is None:
            if not used:
                self.ignore(r, "no-body-site")
            return
        period = jobj(res.get("performedPeriod"))
        when = parse_when(res.get("performedDateTime") or period.get("start"))
        if not self.site(r, res.get("bodySite"), codings, when, surgery=True) and not used:
            self.ignore(r, "dryneedle-muscle-site")

    # Condition ----------------------------------------------------------------------------------

    def condition(self, r: InputResource) -> None:
        """Map a current, unrefuted ``Condition`` to catalog conditions, answers, site findings.

        Verification ``refuted`` / ``entered-in-error`` and clinical status ``inactive`` /
        ``resolved`` / ``remission`` are ignored, as is a condition abated on or before the
        evaluation date (dates with a time compared as UTC days); ``unconfirmed`` /
        ``provisional`` / ``differential``, status codings that contradict each other (active
        and resolved, unconfirmed and refuted), or an onset after the evaluation date, make
        the answers they name unknown (not ``True``: a suspicion is not a fact, but a form cannot
        rule it out); an acute illness counts as today's only with an onset on the evaluation
        date, else it is unknown.
        """
        res = r.resource
        verification = status_codes(res.get("verificationStatus"))
        clinical = status_codes(res.get("clinicalStatus"))
        # Codings that contradict each other (active and resolved; unconfirmed and refuted)
        # cannot rule the condition out: its answers are unknown, never dropped.
        contradictory = bool(
            (clinical & _CURRENT and clinical & _NOT_CURRENT)
            or (verification & _AFFIRMED and verification & _RULED_OUT))
        if not contradictory and verification & _RULED_OUT:
            bad = "entered-in-error" if "entered-in-error" in verification else "refuted"
            self.ignore(r, f"verificationStatus:{bad}")
            return
        if not contradictory and clinical & _NOT_CURRENT:
            bad = next(b for b in ("inactive", "resolved", "remission") if b in clinical)
            self.ignore(r, f"clinicalStatus:{bad}")
            return
        abated = parse_when(res.get("abatementDateTime")
                            or jobj(res.get("abatementPeriod")).get("end"))
        onset = parse_when(res.get("onsetDateTime")
                           or jobj(res.get("onsetPeriod")).get("start"))
        if self.on is not None and abated is not None and utc_day(abated) <= self.on:
            self.ignore(r, "abated")
            return
        # An onset after the evaluation date (instants compared in UTC) is a data error or a
        # planned entry: it could bear on the answers, so they are unknown (as unconfirmed).
        future = self.on is not None and onset is not None and utc_day(onset) > self.on
        confirmed = not future and not contradictory and not verification & _UNSURE
        codings = self.codings(res.get("code"))
        used = False
        for system, code in codings:
            if system != ICD10CM:
                continue
            for cond_id in _catalog_hits(code):
                if cond_id not in self.conditions:
                    self.conditions.append(cond_id)
                self.note(r, path="patient.conditions", value=cond_id, action=Action.USED,
                          reason="icd10cm-catalog", code=token(system, code),
                          sources=("icd10cm",))
                used = True
        hits = self.answers_of(codings)
        today = self.on is not None and onset is not None and onset[0] == self.on
        acute = [h for h in hits if h[0] == "acute_illness"]
        if acute and not today:
            self.apply(r, acute, confirmed=False, reason="acute-illness-onset-not-today")
            hits = [h for h in hits if h[0] != "acute_illness"]
            used = True
        reason = ("value-set" if confirmed else "onset-after-evaluation-date" if future
                  else "contradictory-status" if contradictory
                  else "verificationStatus:unconfirmed")
        used = self.apply(r, hits, confirmed=confirmed, reason=reason) or used
        if res.get("bodySite") is not None:
            used = self.site(r, res.get("bodySite"), codings, onset) or used
        if not used:
            self.ignore(r, "unmapped-code" if codings else "no-code",
                        token(*codings[0]) if codings else None)

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
        confirmed = "unconfirmed" not in verification
        start = len(self.trail)  # what this resource records comes after
        concepts = [res.get("code")]
        concepts += [jobj(reaction).get("substance") for reaction in jlist(res.get("reaction"))]
        codings = [c for concept in concepts for c in self.codings(concept)]
        hits = [h for h in self.answers_of(codings) if h[0] in _ALLERGY_ANSWERS]
        used = self.apply(r, hits, confirmed=confirmed,
                          reason="value-set" if confirmed else "verificationStatus:unconfirmed")
        if self.allergy_re is not None and "metal_allergy" not in self.flags_from(r, start):
            for text in (t for concept in concepts for t in texts_of(concept)):
                m = self.allergy_re.search(text)
                if m is not None:
                    if confirmed:
                        self.set_flag(r, "metal_allergy",
                                      reason=f"allergy-term:{m.group(1).lower()}", code=None,
                                      sources=("policy",))
                    else:
                        self.mark_unread(r, "metal_allergy", reason="verificationStatus:"
                                         "unconfirmed", sources=("policy",))
                    used = True
                    break
        if not used:
            self.ignore(r, "unmapped-code", token(*codings[0]) if codings else None)

    # MedicationStatement / MedicationRequest / MedicationDispense / MedicationAdministration ---

    def medication(self, r: InputResource) -> None:
        """Classify a current medication (RxNorm, ATC URI or OID, the answer tables).

        Taken or ordered (``active``, ``on-hold``, ``intended`` / ``draft``): a recognised
        antithrombotic makes ``anticoagulant_therapy`` ``True``. Status ``unknown`` or none:
        whatever it is, the answers it names are unknown. A current medication no table
        classifies could be an antithrombotic (no complete drug list exists offline): it is
        listed in :attr:`FhirPatientInputs.unclassified_medications` and makes
        ``anticoagulant_therapy`` unknown (the reason says when its text names a B01A agent).
        """
        res = r.resource
        status = jstr(res.get("status")) or "missing"
        ok = ("active", "on-hold", "intended") if r.type == "MedicationStatement" else (
            "active", "on-hold", "draft")
        uncertain = status in ("unknown", "missing")
        if status not in ok and not uncertain:
            self.ignore(r, f"status:{status}")
            return
        if res.get("doNotPerform") is True:
            self.ignore(r, "doNotPerform")
            return
        codings, texts = self.medication_concept(res)
        hits = [h for h in self.answers_of(codings) if h[0] != "metal_allergy"]
        if hits:
            reason = f"status:{status}" if uncertain else "value-set"
            self.apply(r, hits, confirmed=not uncertain, reason=reason)
            return
        named = self.antithrombotic_name(texts)
        what = texts[0] if texts else (token(*codings[0]) if codings else "no code")
        self.unclassified.append(f"{r.label} ({what})")
        reason = (f"antithrombotic-name-in-text:{named}" if named is not None
                  else f"status:{status}" if uncertain else "unclassified-medication")
        self.mark_unread(r, "anticoagulant_therapy", reason=reason,
                         code=token(*codings[0]) if codings else None,
                         sources=("atc-b01a", "rxnorm"))

    def medication_concept(self, res: Mapping[str, Any]) -> tuple[
            list[tuple[str | None, str]], list[str]]:
        """The codings and texts of a resource's medication (codeable or referenced)."""
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
            concept = None if med is None else med.get("code")
        texts = texts_of(concept)  # a new list: the reference's display added after
        display = jstr(jobj(res.get("medicationReference")).get("display"))
        if display is not None:
            texts.append(display)
        return self.codings(concept), texts

    def antithrombotic_name(self, texts: list[str]) -> str | None:
        """The first antithrombotic INN or brand name in ``texts`` (lower case), or None."""
        return next((m.group(1).lower() for t in texts
                     if self.names_re is not None and (m := self.names_re.search(t))), None)

    def given(self, r: InputResource) -> None:
        """A ``MedicationDispense`` / ``MedicationAdministration``: evidence of a medication.

        Not cancelled, declined, not done or entered in error, one naming an answer (a code
        the tables classify, or an antithrombotic name in its text) makes that answer
        unknown: a dispense or a past administration does not show current therapy, but a
        form's "no" cannot settle it (SPEC 1.1 §8). An administration ``in-progress`` or
        ``on-hold`` is current therapy, read as an active ``MedicationStatement``.
        """
        res = r.resource
        status = jstr(res.get("status")) or "missing"
        if status in ("cancelled", "declined", "not-done", "entered-in-error"):
            self.ignore(r, f"status:{status}")
            return
        if r.type == "MedicationAdministration" and status in ("in-progress", "on-hold"):
            self.medication(InputResource(r.index, {**res, "status": "active"}, r.full_url))
            return
        codings, texts = self.medication_concept(res)
        hits = [h for h in self.answers_of(codings) if h[0] != "metal_allergy"]
        reason = f"{r.type}:{status}"
        if hits:
            self.apply(r, hits, confirmed=False, reason=reason)
            return
        named = self.antithrombotic_name(texts)
        if named is None:
            self.ignore(r, "unmapped-code", token(*codings[0]) if codings else None)
            return
        self.mark_unread(r, "anticoagulant_therapy",
                         reason=f"antithrombotic-name-in-text:{named}",
                         code=token(*codings[0]) if codings else None,
                         sources=("atc-b01a", "rxnorm"))


_HANDLERS: Final[Mapping[str, Callable[[Mapper, InputResource], None]]] = {
    "Patient": Mapper.patient,
    "Observation": Mapper.observation,
    "Condition": Mapper.condition,
    "AllergyIntolerance": Mapper.allergy,
    "MedicationStatement": Mapper.medication,
    "MedicationRequest": Mapper.medication,
    "MedicationDispense": Mapper.given,
    "MedicationAdministration": Mapper.given,
    "Procedure": Mapper.procedure,
}
"""The reader of each resource type :meth:`Mapper.run` reads (made once, not per call)."""
_READERS: Final[Mapping[str, tuple[Callable[[Mapper, InputResource], None], str | None]]] = {
    kind: (handler, SUBJECT_KEY.get(kind)) for kind, handler in _HANDLERS.items()}
"""Each reader with the element naming the patient (:data:`SUBJECT_KEY`): one look-up."""
