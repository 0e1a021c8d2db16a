"""What the FHIR reader collects and how it resolves it (the base of :class:`~._mapper.Mapper`).

What it is for: :class:`Evidence` holds what one pass over the input collects (answers set
or left unknown, pregnancy observations, site findings, demographics), records every
decision as a :class:`~dryneedle.fhir.Provenance`, looks codes up in the answer tables, and
resolves the pregnancy status and the demographics once everything is read. The readers, one
per resource type, are :class:`~._mapper.Mapper`'s (a subclass).

May import: the standard library, ``attrs``, :mod:`dryneedle.model` and, in this package,
:mod:`._provenance`, :mod:`._reading` and :mod:`._terminology`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, Literal

import attrs

from dryneedle.fhir._provenance import Action, Provenance
from dryneedle.fhir._reading import InputResource, is_later, jobj, token
from dryneedle.fhir._terminology import (
    ANSWER_CODES,
    ANTITHROMBOTIC_ATC,
    ATC,
    FLAG_CODES,
    ICD10CM,
    NO_ANSWER,
    RXNORM,
    SNOMED,
    SYSTEM_ALIASES,
    AnswerCodes,
    CodePatterns,
    icd10cm_key,
    match_flags,
)
from dryneedle.model import Pregnancy, SiteFinding

__all__ = ["DOUBTFUL", "Evidence", "PregnancyObs"]

_SOURCE_OF = {SNOMED: "snomed-ct", ICD10CM: "icd10cm", RXNORM: "rxnorm", ATC: "atc-b01a"}
_ANTITHROMBOTIC: Final = CodePatterns((ANTITHROMBOTIC_ATC,))
_ALIAS_OF: Final[dict[str | None, str | None]] = dict(SYSTEM_ALIASES.items())
DOUBTFUL: Final = "subject-unreadable"
"""The reason of what a resource with a malformed subject says (only unknown)."""


_Hit = tuple[str, str | None, str, str]


def _field_setters() -> tuple[Callable[[Provenance, Any], None], ...]:
    """The slot setters of :class:`Provenance`'s fields, in :func:`attrs.fields` order.

    Setting each field once is all its ``__init__`` does when every field is given: no
    validator, converter or post-init hook (checked here, at import, so adding one fails
    loudly).
    """
    fields = attrs.fields(Provenance)
    names = ("path", "value", "resource", "code", "action", "reason", "sources")
    if tuple(a.name for a in fields) != names or any(
            a.validator is not None or a.converter is not None for a in fields) or hasattr(
            Provenance, "__attrs_post_init__") or not hasattr(Provenance, "__slots__"):
        msg = "Provenance's __init__ does more than set its fields: update _provenance"
        raise TypeError(msg)
    return tuple(vars(Provenance)[name].__set__ for name in names)


(_SET_PATH, _SET_VALUE, _SET_RESOURCE, _SET_CODE, _SET_ACTION, _SET_REASON,
 _SET_SOURCES) = _field_setters()
_NEW: Final = object.__new__


def _provenance(path: str, value: Any, resource: str, code: str | None, action: Action,
                reason: str, sources: tuple[str, ...]) -> Provenance:
    """``Provenance(path=path, value=value, ...)``, the same object, in half the time."""
    p: Provenance = _NEW(Provenance)
    _SET_PATH(p, path)
    _SET_VALUE(p, value)
    _SET_RESOURCE(p, resource)
    _SET_CODE(p, code)
    _SET_ACTION(p, action)
    _SET_REASON(p, reason)
    _SET_SOURCES(p, sources)
    return p


def _answers(codings: list[tuple[str | None, str]], answer_codes: AnswerCodes,
             flag_codes: Mapping[str, Mapping[str, Sequence[str]]]) -> list[_Hit]:
    """:meth:`Evidence.answers_of` with the given tables."""
    hits: list[_Hit] = []
    for system, code in codings:
        key = icd10cm_key(code) if system == ICD10CM else code
        for flag, _ in answer_codes.get(system or "", {}).get(key, ()):
            hits.append((flag, system, code, _SOURCE_OF.get(system or "", "policy")))
        if system == ATC and _ANTITHROMBOTIC.matches(code):
            hits.append(("anticoagulant_therapy", system, code, "atc-b01a"))
    hits += [(flag, system, code, "policy")
             for flag, system, code in match_flags(codings, flag_codes)]
    return hits


@functools.lru_cache(maxsize=4096)
def _shipped_answers(system: str | None, code: str) -> tuple[tuple[_Hit, ...], tuple[_Hit, ...]]:
    """One coding's hits in the shipped answer tables, and in the shipped flag table."""
    table = _answers([(system, code)], ANSWER_CODES, {})  # an empty flag table: no flag hits
    flags = tuple((flag, s, c, "policy") for flag, s, c in match_flags([(system, code)],
                                                                       FLAG_CODES))
    return tuple(table), flags


@functools.lru_cache(maxsize=4096)
def _shipped_hits(codings: tuple[tuple[str | None, str], ...]) -> tuple[_Hit, ...]:
    """:meth:`Evidence.answers_of` with the shipped tables, for a tuple of codings (immutable)."""
    parts = [_shipped_answers(system, code) for system, code in codings]
    return (*(h for table, _ in parts for h in table), *(h for _, flags in parts for h in flags))


@functools.lru_cache(maxsize=32)
def _words_re(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """The whole-word, case-insensitive pattern of ``terms`` (compiled once per word list)."""
    words = "|".join(re.escape(t) for t in terms if t)
    return re.compile(rf"\b({words})\b", re.IGNORECASE) if words else None


@attrs.frozen(kw_only=True)
class PregnancyObs:
    """A counted pregnancy status: the resource, its value, when it applies, its code.

    ``ongoing``: the status was observed over an ``effectivePeriod`` with a start and no end,
    which FHIR R4 reads as still ongoing (``fhir-r4``, Period): a "pregnant" status then holds
    on the evaluation date however long ago it started.
    """

    res: InputResource
    value: Pregnancy
    when: tuple[date, datetime | None] | None
    code: str
    ongoing: bool = False


class Evidence:
    """What one pass over the flattened input collects, with the provenance of each value."""

    def __init__(
        self,
        items: list[InputResource],
        *,
        patient_id: str,
        flag_codes: Mapping[str, Mapping[str, Sequence[str]]],
        allergy_terms: Sequence[str],
        patient_urls: Mapping[str, str],
        answer_codes: AnswerCodes,
        antithrombotic_names: Sequence[str],
        on: date | None,
        pregnancy_max_age_days: int,
    ) -> None:
        self.items = items
        self.answer_codes = answer_codes
        self.on = on
        self.pregnancy_max_age_days = pregnancy_max_age_days
        self.names_re = _words_re(tuple(antithrombotic_names))
        self.unread: set[str] = set()
        # The resource being read has a malformed subject: what it says is only unknown.
        self.doubtful = False
        self.pregnancy_unread = False
        self.pregnancy_doubts: list[tuple[date, datetime | None] | None] = []
        self.pregnancy_evidence: list[InputResource] = []  # unread, could say "pregnant"
        self.pregnant_conditions: list[InputResource] = []
        self.unclassified: list[str] = []
        self.site_findings: list[SiteFinding] = []
        self.site_unknown = False
        self.patient_id = patient_id
        self.flag_codes = flag_codes
        self.patient_urls = patient_urls
        self.allergy_re = _words_re(tuple(allergy_terms))
        self.trail: list[tuple[int, Provenance]] = []
        self.flags: dict[str, bool] = {}
        self.conditions: list[str] = []
        self.pregnancy: list[PregnancyObs] = []
        self.demographics: dict[str, list[tuple[InputResource, Any, str]]] = {}
        by_ref: dict[str, Mapping[str, Any]] = {}
        for r in items:
            if r.type == "Medication":
                by_ref[r.label] = r.resource
                if r.full_url:
                    by_ref[r.full_url] = r.resource
        self.medications = by_ref

    def note(self, r: InputResource | None, *, path: str, action: Action, reason: str,
             value: Any = None, code: str | None = None, sources: tuple[str, ...] = ()) -> None:
        """Record a mapping decision about ``r`` (``None``: a form answer).

        The :class:`~dryneedle.fhir.Provenance` is made by :func:`_provenance` (the fields
        :func:`attrs.fields` lists, each set once: what its ``__init__`` does, faster).
        """
        if r is None:
            label, index = "answers", len(self.items)
        else:
            label, index = r.label, r.index
        self.trail.append((index, _provenance(path, value, label, code, action, reason, sources)))

    def ignore(self, r: InputResource, reason: str, code: str | None = None) -> None:
        """Record that ``r`` contributed nothing, and why."""
        # What note(r, path="", action=IGNORED, ...) records, without its keyword call (a
        # call of a dozen reads ignores about half of its resources).
        self.trail.append((r.index, _provenance("", None, r.label, code, Action.IGNORED,
                                                reason, ("fhir-r4",))))

    def codings(self, concept: Any) -> list[tuple[str | None, str]]:
        """The (canonical system, code) pairs of a CodeableConcept (OID systems as URIs)."""
        # codings_of with canonical_system, in one loop (every concept of every resource).
        c = concept if type(concept) is dict else jobj(concept)
        codings = c.get("coding")
        out: list[tuple[str | None, str]] = []
        if type(codings) is not list and not isinstance(codings, list | tuple):
            return out
        aliases = _ALIAS_OF  # an OID's URI; any other system as it is (None stays None)
        for coding in codings:
            if type(coding) is not dict:
                coding = jobj(coding)  # noqa: PLW2901 - read once
            code = coding.get("code")
            if isinstance(code, str) and code:
                system = coding.get("system")
                system = system if isinstance(system, str) and system else None
                out.append((aliases.get(system, system), code.strip()))
        return out

    def answers_of(self, codings: list[tuple[str | None, str]]) -> list[tuple[str, str | None,
                                                                               str, str]]:
        """Return (flag, system, code, source) for every coding an answer table names.

        The answer tables' hits, coding by coding, then the flag table's. With the shipped
        tables (which never change) the hits are kept per tuple of codings (a resource's few
        codings repeat from call to call), and each coding's two parts per code.
        """
        if self.answer_codes is ANSWER_CODES and self.flag_codes is FLAG_CODES:
            return list(_shipped_hits(tuple(codings)))
        return _answers(codings, self.answer_codes, self.flag_codes)

    def mark_unread(self, r: InputResource, flag: str, *, reason: str,
                    code: str | None = None, sources: tuple[str, ...] = ("fhir-r4",),
                    doubt: tuple[date, datetime | None] | Literal[False] | None = None) -> None:
        """Record that ``r`` bears on ``flag`` but cannot settle it: the answer is unknown.

        For ``pregnancy``, ``doubt`` says whether ``r`` could say "pregnant": ``False`` when
        it cannot (a stale or preliminary "not pregnant"), else when it applies (``None``:
        undated). Such evidence, when current, also overrides an observed "not pregnant"
        (:meth:`resolve_pregnancy`).
        """
        path = "patient.pregnancy" if flag == "pregnancy" else f"patient.history.{flag}"
        if flag == "pregnancy":
            self.pregnancy_unread = True
            if doubt is not False:
                self.pregnancy_doubts.append(doubt)
                self.pregnancy_evidence.append(r)
        else:
            self.unread.add(flag)
        self.note(r, path=path, action=Action.UNREAD, reason=reason, code=code, sources=sources)

    def apply(self, r: InputResource, hits: list[tuple[str, str | None, str, str]], *,
              confirmed: bool, reason: str) -> bool:
        """Set (or, when not ``confirmed``, make unknown) the answers ``hits`` name."""
        used = False
        for flag, system, code, source in hits:
            if flag == NO_ANSWER:
                self.note(r, path="", action=Action.IGNORED, reason="reviewed-no-answer",
                          code=token(system, code), sources=(source,))
                used = True
                continue
            if not confirmed:
                self.mark_unread(r, flag, reason=reason, code=token(system, code),
                                 sources=(source,))
            elif self.doubtful:
                self.mark_unread(r, flag, reason=DOUBTFUL, code=token(system, code),
                                 sources=(source,))
            elif flag == "pregnancy":
                self.pregnant_conditions.append(r)
                self.note(r, path="patient.pregnancy", value=Pregnancy.PREGNANT.value,
                          action=Action.USED, reason=reason, code=token(system, code),
                          sources=(source,))
            else:
                why = {"policy": "flag-codes", "atc-b01a": "atc-b01a"}.get(source, reason)
                self.set_flag(r, flag, reason=why, code=token(system, code), sources=(source,))
            used = True
        return used

    def stale(self, when: tuple[date, datetime | None] | None) -> str | None:
        """Why a pregnancy status dated ``when`` cannot count on the evaluation date, or None."""
        if self.on is None:
            return "no-evaluation-date"  # patient_from_fhir without on=: cannot be current
        if when is None:
            return "undated"
        age = (self.on - when[0]).days
        if age < 0:
            return "dated-after-evaluation-date"
        if age > self.pregnancy_max_age_days:
            return f"older-than-{self.pregnancy_max_age_days}-days"
        return None

    def current(self, when: tuple[date, datetime | None] | None) -> bool:
        """Whether "pregnant" evidence dated ``when`` may still hold on the evaluation date.

        Only evidence dated more than ``pregnancy_max_age_days`` before the evaluation date is
        not current; undated evidence, evidence dated after it, or any evidence without an
        evaluation date (mapping only) may be: "pregnant" is the cautious reading.
        """
        if self.on is None or when is None:
            return True
        return (self.on - when[0]).days <= self.pregnancy_max_age_days

    def resolve_pregnancy(self) -> Pregnancy | None:
        """Resolve the counted pregnancy observations (``None``: a conflict, left unknown).

        Any current "pregnant" observation (final, amended, corrected or preliminary; see
        :meth:`current`; or ongoing: an open-ended ``effectivePeriod``) makes the status
        pregnant, whatever other observations say and in any date order: they are recorded as
        superseded (SPEC 1.1 §8, the cautious reading).
        Otherwise the most recent observation wins (so an old "pregnant" is superseded by a
        later "not pregnant"), a tie or an undated disagreement is a conflict, and a "not
        pregnant" result gives way to current unread evidence that could say "pregnant"
        (:meth:`mark_unread` with ``doubt``): the status is then unknown.
        """
        obs = self.pregnancy
        if not obs:
            return None
        pregnant = [o for o in obs if o.value is Pregnancy.PREGNANT
                    and (o.ongoing or self.current(o.when))]
        if pregnant:
            for o in obs:
                if o in pregnant:
                    action, reason = Action.USED, "loinc-82810-3"
                elif o.value is Pregnancy.PREGNANT:
                    action, reason = Action.SUPERSEDED, "older-observation"
                else:
                    action, reason = Action.SUPERSEDED, "current-pregnant-status"
                self.note(o.res, path="patient.pregnancy", value=o.value.value, action=action,
                          reason=reason, code=o.code, sources=("ips-pregnancy",))
            return Pregnancy.PREGNANT
        dated = [(o, o.when) for o in obs if o.when is not None]
        latest = [o for o, when in dated if not any(is_later(w, when) for _, w in dated)]
        top = {o.value for o in (latest or obs)}
        undated_disagree = [o for o in obs if o.when is None and o.value not in top]
        conflict = len(top) != 1 or bool(undated_disagree)
        decided = None if conflict else next(iter(top))
        doubted = decided is Pregnancy.NOT_PREGNANT and any(
            self.current(when) for when in self.pregnancy_doubts)
        deciders = [*(latest or obs), *undated_disagree]
        for o in obs:
            if conflict and o in deciders:
                action, reason = Action.CONFLICT, "conflicting-pregnancy-status"
            elif o.value == decided and (o in deciders or o.when is None):
                action, reason = (Action.SUPERSEDED, "unread-fhir-evidence") if doubted else (
                    Action.USED, "loinc-82810-3")
            else:
                action, reason = Action.SUPERSEDED, "older-observation"
            self.note(o.res, path="patient.pregnancy", value=o.value.value, action=action,
                      reason=reason, code=o.code, sources=("ips-pregnancy",))
        return None if doubted else decided

    def site_unread(self, r: InputResource, reason: str, code: str | None) -> None:
        """A resource at a body site that cannot be placed: the site findings are unknown."""
        self.site_unknown = True
        self.note(r, path="patient.site_findings", action=Action.UNREAD, reason=reason,
                  code=code, sources=("fhir-r4",))

    def set_flag(self, r: InputResource, flag: str, *, reason: str, code: str | None,
                 sources: tuple[str, ...]) -> None:
        """Set a history flag to ``True`` and record why (unknown with a malformed subject)."""
        if self.doubtful:
            self.mark_unread(r, flag, reason=DOUBTFUL, code=code, sources=sources)
            return
        self.flags[flag] = True
        self.note(r, path=f"patient.history.{flag}", value=True, action=Action.USED,
                  reason=reason, code=code, sources=sources)

    def flags_from(self, r: InputResource, since: int = 0) -> set[str]:
        """Return the history flags ``r`` has already set.

        ``since``: the first trail entry to look at (``r``'s entries are all recorded while
        it is read: its reader passes the trail's length when it started, so a large input is
        not searched once per resource).
        """
        return {
            p.path.rsplit(".", 1)[-1] for i, p in self.trail[since:]
            if i == r.index and p.action is Action.USED and p.path.startswith("patient.history.")
        }

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
