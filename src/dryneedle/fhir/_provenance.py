"""What the FHIR reader returns: the patient it built and the provenance of every answer.

What it is for: :class:`Provenance` (one traceable mapping decision, with its
:class:`Action`), :class:`FhirPatientInputs` (the patient plus the trail) and
:class:`FhirInputError`. These are shared by the reader (:mod:`._mapper`, :mod:`._inbound`)
and the writers (:mod:`._outbound`, :mod:`._cds`), which is why they sit below both.

May import: the standard library, ``attrs`` and :mod:`dryneedle.model`; lazily,
:data:`dryneedle.wire.converter` (for :meth:`FhirPatientInputs.as_dict`).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from dryneedle.model import Patient

__all__ = ["Action", "FhirInputError", "FhirPatientInputs", "Provenance"]


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
    UNREAD = "unread"
    """Evidence that could bear on the answer but cannot be read (a medication with status
    ``unknown``, an unclassified active medication, a stale or undated pregnancy status, an
    unconfirmed diagnosis, a body site that cannot be placed): the answer is unknown, so a
    form's "no" cannot settle it."""


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
    unclassified_medications: tuple[str, ...] = ()
    """Active (or status-unknown) medications the mapper could not classify, as ``Type/id``
    with their coding display or text: each makes ``anticoagulant_therapy`` unknown unless a
    recognised antithrombotic makes it ``True``. Check them for antithrombotics."""
    site_findings_known: bool = True
    """Whether the site findings are known: ``False`` when no inspection was given
    (``site_findings=None``) or a FHIR resource at a body site could not be read. FHIR can
    record a finding, never prove the absence of one."""

    def origin(self, path: str) -> str:
        """Where the answer at ``path`` came from.

        Returns ``fhir``, ``answers``, ``fhir+answers`` (both agreed, or FHIR overrode the
        form), ``unread`` (FHIR evidence left it unknown) or ``none``.
        """
        trail = self.provenance_for(path)
        fhir = any(p.action is Action.USED and p.resource != "answers" for p in trail)
        form = any(p.resource == "answers" for p in trail)
        unread = any(p.action in (Action.UNREAD, Action.CONFLICT) for p in trail)
        if fhir and form:
            return "fhir+answers"
        if fhir:
            return "fhir"
        if unread:
            return "unread"
        return "answers" if form else "none"

    def origins(self) -> dict[str, str]:
        """:meth:`origin` of every screening answer (history fields and ``pregnancy``)."""
        names = [f"patient.history.{a.name}" for a in attrs.fields(type(self.patient.history))]
        return {path: self.origin(path) for path in [*names, "patient.pregnancy",
                                                      "patient.site_findings"]}

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
        from dryneedle.wire import converter  # noqa: PLC0415 - keep import light

        return {
            "patient": converter.unstructure(self.patient),
            "provenance": [p.as_dict() for p in self.provenance],
            "origins": self.origins(),
            "unclassified_medications": list(self.unclassified_medications),
            "site_findings_known": self.site_findings_known,
        }


class FhirInputError(ValueError):
    """The input cannot be mapped at all (not FHIR, no patient, several patients, bad answers).

    Bad *clinical* data inside resources never raises: it is ignored and recorded.
    """

