"""FHIR in: a patient (and planned sites) from FHIR R4 resources.

What it is for: :func:`patient_from_fhir` flattens the input, finds the one patient, lets
:class:`~._mapper.Mapper` read every resource, then merges the form answers (the more
cautious value wins, every choice recorded) into the screening
:class:`~dryneedle.model.Patient`; :func:`planned_sites_from_fhir` reads the planned sites of
``ServiceRequest`` / ``Procedure`` resources.

May import: the standard library, ``attrs``, :mod:`dryneedle.catalog`, :mod:`dryneedle.model`,
:mod:`dryneedle.policy` (the plausible range of ``pregnancy_status_max_age_days``),
:mod:`dryneedle.screening` (:class:`~dryneedle.screening.PlannedSite`) and, in this package,
:mod:`._mapper`, :mod:`._provenance`, :mod:`._reading` and :mod:`._terminology`.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, Final

import attrs

from dryneedle.catalog import CONDITIONS
from dryneedle.fhir._mapper import Mapper
from dryneedle.fhir._provenance import Action, FhirInputError, FhirPatientInputs
from dryneedle.fhir._reading import (
    SUBJECT_KEY,
    InputResource,
    codings_of,
    flatten,
    input_items,
    jlist,
    jobj,
    jstr,
    ref_patient_id,
)
from dryneedle.fhir._terminology import (
    ALLERGY_TERMS,
    ANSWER_CODES,
    ANTITHROMBOTIC_NAMES,
    EXT_BODY_SIDE,
    FLAG_CODES,
    ICD10CM,
    SYSTEMS,
    AnswerCodes,
    icd10cm_key,
    merge_codes,
)
from dryneedle.model import History, NeedlePhobia, Patient, Pregnancy, Sex, SiteFinding
from dryneedle.policy import DEFAULT_POLICY
from dryneedle.screening import PlannedSite

__all__ = ["patient_from_fhir", "planned_sites_from_fhir"]

_HISTORY_BOOLS: Final = tuple(
    a.name for a in attrs.fields(History) if a.name not in ("needle_phobia", "consent")
)
_HISTORY_NAMES: Final = tuple(a.name for a in attrs.fields(History))
_HISTORY_BOOL_SET: Final = frozenset(_HISTORY_BOOLS)
_ANSWER_KEYS: Final = frozenset((*_HISTORY_NAMES, "pregnancy"))
_PREGNANCY_AGE_LIMIT: Final = next(
    lim for lim in DEFAULT_POLICY.limits() if lim.name == "pregnancy_status_max_age_days")


def _check_pregnancy_age(days: Any) -> None:
    """Refuse a ``pregnancy_status_max_age_days`` outside the policy's plausible range.

    It is a programming argument (the policy limit :func:`screen_fhir` passes), not clinical
    data: a wrong one is a ``ValueError``, never read as "no recency check".
    """
    lim = _PREGNANCY_AGE_LIMIT
    low = lim.minimum if lim.minimum is not None else 0
    high = lim.maximum if lim.maximum is not None else float("inf")
    if isinstance(days, bool) or not isinstance(days, int) or not low <= days <= high:
        msg = (f"pregnancy_status_max_age_days must be an integer from {low:g} to {high:g} "
               f"{lim.unit} (the policy limit's plausible range), got {days!r}")
        raise ValueError(msg)


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


def _find_patient_id(items: list[InputResource], full_urls: Mapping[str, str]) -> str:
    ids = list(dict.fromkeys(
        rid for r in items if r.type == "Patient" and (rid := jstr(r.resource.get("id")))
    ))
    if len(ids) > 1:
        msg = "the input holds several patients; pass patient_id="
        raise FhirInputError(msg)
    if ids:
        return ids[0]
    refs = list(dict.fromkeys(
        pid for r in items if r.type in SUBJECT_KEY
        if (pid := ref_patient_id(r.resource.get(SUBJECT_KEY[r.type]), full_urls))
    ))
    if len(refs) == 1:
        return refs[0]
    msg = ("no Patient resource and no single patient reference in the input; pass patient_id="
           if not refs else "the input refers to several patients; pass patient_id=")
    raise FhirInputError(msg)


def _answer_codes(clinic: tuple[AnswerCodes, ...]) -> AnswerCodes:
    """The shipped answer codes with a clinic's tables merged on top.

    :data:`ANSWER_CODES` is already a merged table (each code's flags without repeats): it is
    used as it is, or copied system by system (C-speed dict copies) and only the clinic's
    codes merged into the copy -- the same table as ``merge_codes(ANSWER_CODES, *clinic)``
    without rebuilding its thousands of codes on every call. A clinic's ICD-10-CM codes are
    keyed by :func:`~._terminology.icd10cm_key` (as the shipped ones), also when the table was
    built by hand rather than read with :func:`~._terminology.read_code_table`.
    """
    if not clinic:
        return ANSWER_CODES
    out = {system: dict(by_code) for system, by_code in ANSWER_CODES.items()}
    for system, by_code in merge_codes(*clinic).items():
        into = out.setdefault(system, {})
        for code, flags in by_code.items():
            key = icd10cm_key(code) if system == ICD10CM else code  # a hand-built table too
            into[key] = tuple(dict.fromkeys((*into.get(key, ()), *flags)))
    return out


def patient_from_fhir(
    resources: Mapping[str, Any] | Sequence[Any] | None,
    *,
    patient_id: str | None = None,
    answers: Mapping[str, bool | str | None] | None = None,
    site_findings: Iterable[SiteFinding] | None = (),
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
    on: date | None = None,
    codes: Iterable[Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]] = (),
    pregnancy_status_max_age_days: int = 30,
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
        site_findings: Site findings from the clinician's inspection (``()``: inspected,
            none; ``None``: not inspected, so the site findings are unknown). Findings read
            from FHIR (a Procedure with a body site, a Condition or Observation with one) are
            added to them.
        flag_codes: Coded data that sets history answers (default :data:`FLAG_CODES`).
        allergy_terms: Words marking a metal allergy (default :data:`ALLERGY_TERMS`).
        on: The evaluation date: a "not pregnant" status counts only when dated within
            ``pregnancy_status_max_age_days`` before it, conditions are read against it
            (onset, abatement). Without it (mapping only) a "not pregnant" status cannot be
            shown current, so it makes the pregnancy status unknown (reason
            ``no-evaluation-date``), any "pregnant" one counts, and condition dates are not
            checked: screen through :func:`screen_fhir`, which always passes its ``on``.
        codes: A clinic's own answer-code tables (see :func:`read_code_table`), merged on top
            of :data:`ANSWER_CODES`.
        pregnancy_status_max_age_days: How old a pregnancy status may be (the policy's
            ``pregnancy_status_max_age_days``, within its plausible range, 0 to 280 days;
            :func:`screen_fhir` passes it).

    Returns:
        The :class:`FhirPatientInputs` (patient and provenance).

    Raises:
        FhirInputError: When no single patient can be identified or an answer is invalid.
        ValueError: When ``pregnancy_status_max_age_days`` is not an integer in the policy
            limit's plausible range.
    """
    _check_pregnancy_age(pregnancy_status_max_age_days)
    items = input_items(resources)
    unknown_flags = set(flag_codes) - _HISTORY_BOOL_SET
    if unknown_flags:
        msg = f"flag_codes: unknown history answers {sorted(unknown_flags)}"
        raise FhirInputError(msg)
    patients = [r for r in items if r.type == "Patient"]  # one pass, then the few Patients
    patient_urls = {
        r.full_url: rid for r in patients
        if r.full_url and (rid := jstr(r.resource.get("id")))
    }
    pid = patient_id or _find_patient_id(items, patient_urls)
    for r in patients:  # an id-less Patient entry: its fullUrl identifies the target patient
        if r.full_url and not jstr(r.resource.get("id")):
            patient_urls[r.full_url] = pid
    form = _coerce_answers(answers or {})
    table = _answer_codes(tuple(codes))
    m = Mapper(items, patient_id=pid, flag_codes=flag_codes, allergy_terms=allergy_terms,
               patient_urls=patient_urls, answer_codes=table,
               antithrombotic_names=ANTITHROMBOTIC_NAMES, on=on,
               pregnancy_max_age_days=pregnancy_status_max_age_days)
    m.run()
    birth_date = m.resolve_demographic("patient.birth_date")
    sex = m.resolve_demographic("patient.sex")
    fhir_pregnancy = m.resolve_pregnancy()

    # Merge the form answers: the more cautious value wins; every choice is recorded.
    history: dict[str, Any] = {}
    if not form:  # what the loop gives without form answers: FHIR's True, else unknown
        flags = m.flags
        history = {name: True if flags.get(name) is True else None for name in _HISTORY_NAMES}
    else:
        for name in _HISTORY_NAMES:
            form_value = form.get(name)
            if m.flags.get(name) is True:
                history[name] = True
            elif name in m.unread and form_value is not True:
                history[name] = None  # unread evidence: a form's "no" cannot settle it
            else:
                history[name] = form_value
            if form_value is not None:
                overridden = history[name] != form_value
                m.note(None, path=f"patient.history.{name}", value=_json(form_value),
                       action=Action.SUPERSEDED if overridden else Action.USED,
                       reason=("fhir-evidence" if history[name] is True
                               else "unread-fhir-evidence") if overridden else "answers")
    if m.pregnant_conditions:
        fhir_pregnancy = Pregnancy.PREGNANT
    elif m.pregnancy_unread and fhir_pregnancy is None and not m.pregnancy:
        fhir_pregnancy = Pregnancy.UNKNOWN
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
    if sex is Sex.MALE and pregnancy in (None, Pregnancy.UNKNOWN):
        sex = _gender_waives_nothing(m)
    patient = Patient(
        patient_id=pid,
        birth_date=birth_date,
        sex=sex,
        pregnancy=pregnancy,
        history=History(**history),
        site_findings=(*(site_findings or ()), *m.site_findings),
        conditions=tuple(c for c in CONDITIONS if c in m.conditions) if m.conditions else (),
    )
    trail = [p for _, p in sorted(m.trail, key=_first)]  # stable: input order, form last
    return FhirPatientInputs(
        patient=patient, provenance=tuple(trail),
        unclassified_medications=tuple(m.unclassified),
        site_findings_known=site_findings is not None and not m.site_unknown,
    )


def _gender_waives_nothing(m: Mapper) -> Sex:
    """The sex to screen a ``male`` patient whose pregnancy status is unknown (SPEC §8 (1.1)).

    ``Patient.gender`` is administrative, not clinical: when the input holds pregnancy
    evidence that could say "pregnant" (a pregnant observation or condition, an unread or
    contradictory status, an unconfirmed pregnancy diagnosis) and the status is not settled
    as "not pregnant", the gender must not waive the pregnancy question. The sex is then
    mapped to ``unknown`` (the gender recorded as superseded, the sex noted as unknown
    because of the first such resource), so the unknown pregnancy status blocks.
    """
    evidence = [o.res for o in m.pregnancy if o.value is Pregnancy.PREGNANT]
    evidence += m.pregnant_conditions
    evidence += m.pregnancy_evidence
    if not evidence:
        return Sex.MALE
    m.trail = [
        (i, attrs.evolve(p, action=Action.SUPERSEDED, reason="pregnancy-evidence"))
        if p.path == "patient.sex" and p.action is Action.USED else (i, p)
        for i, p in m.trail
    ]
    first = min(evidence, key=lambda r: r.index)
    m.note(first, path="patient.sex", value=Sex.UNKNOWN.value, action=Action.USED,
           reason="administrative-gender-with-pregnancy-evidence",
           sources=("fhir-r4", "ips-pregnancy"))
    return Sex.UNKNOWN


_first: Final = operator.itemgetter(0)


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
    for res, _ in flatten(resources):
        r = jobj(res)
        if r.get("resourceType") not in ("ServiceRequest", "Procedure"):
            continue
        for site in jlist(r.get("bodySite")):
            side = Side.MIDLINE
            for ext in jlist(jobj(site).get("extension")):
                code = jobj(ext).get("valueCode")
                if jobj(ext).get("url") == EXT_BODY_SIDE and code in {s.value for s in Side}:
                    side = Side(code)
            for system, code in codings_of(site):
                if system == SYSTEMS["muscle"]:
                    sites.append(PlannedSite(muscle=code, side=side))
    return tuple(sites)

