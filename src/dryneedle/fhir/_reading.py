"""Reading plain-JSON FHIR safely: accessors, codings, dates, bundles, patient references.

What it is for: the small helpers every part of the FHIR reader needs. Decoded JSON is ``Any``;
these narrow it without ever raising (a wrong type reads as absent), flatten bundles (nested
ones and ``null`` prefetch values included) and resolve which patient a reference points at.

May import: the standard library. Nothing of dryneedle.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

__all__ = [
    "SUBJECT_KEY",
    "InputResource",
    "codings_of",
    "flatten",
    "input_items",
    "is_later",
    "jlist",
    "jobj",
    "jstr",
    "observation_ongoing",
    "observation_when",
    "parse_when",
    "ref_patient_id",
    "reference_readable",
    "status_codes",
    "texts_of",
    "token",
    "utc_day",
]

_DATETIME = re.compile(
    r"(?P<y>[0-9]{4})(-(?P<m>[0-9]{2})(-(?P<d>[0-9]{2})"
    r"(T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?)(?P<tz>Z|[+-][0-9]{2}:[0-9]{2}))?)?)?"
)


# --- safe access to decoded JSON ---------------------------------------------------------------


def jobj(value: Any) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, else an empty one."""
    # A decoded JSON object is a dict, an absent one None: both checked before the (slower)
    # ABC check, which only other mappings reach.
    if type(value) is dict:
        return value
    return {} if value is None or not isinstance(value, Mapping) else value


def jlist(value: Any) -> list[Any]:
    """Return ``value`` as a list if it is a JSON array, else an empty list."""
    return list(value) if isinstance(value, list | tuple) else []


def jstr(value: Any) -> str | None:
    """Return ``value`` if it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def codings_of(concept: Any) -> list[tuple[str | None, str]]:
    """Return (system, code) pairs of a CodeableConcept (codings without a code skipped)."""
    # As jobj / jlist / jstr would read it, with the decoded-JSON types (dict, list) checked
    # first: this runs for every concept of every resource.
    c = concept if type(concept) is dict else jobj(concept)
    codings = c.get("coding")
    out: list[tuple[str | None, str]] = []
    if type(codings) is not list and not isinstance(codings, list | tuple):
        return out
    for coding in codings:
        if type(coding) is not dict:
            coding = jobj(coding)  # noqa: PLW2901 - read once
        code = coding.get("code")
        if isinstance(code, str) and code:
            system = coding.get("system")
            out.append((system if isinstance(system, str) and system else None, code.strip()))
    return out


def status_codes(concept: Any) -> set[str]:
    """Return the codes of a status CodeableConcept (``clinicalStatus``, ...)."""
    # The codes codings_of gives, read in its loop straight into the set (no pairs, no
    # comprehension): every Condition and AllergyIntolerance reads two status concepts.
    c = concept if type(concept) is dict else jobj(concept)
    codings = c.get("coding")
    out: set[str] = set()
    if type(codings) is not list and not isinstance(codings, list | tuple):
        return out
    for coding in codings:
        if type(coding) is not dict:
            coding = jobj(coding)  # noqa: PLW2901 - read once
        code = coding.get("code")
        if isinstance(code, str) and code:
            out.add(code.strip())
    return out


def token(system: str | None, code: str) -> str:
    """Return a FHIR search token ``system|code`` (``code`` alone without a system)."""
    return f"{system}|{code}" if system else code


def texts_of(concept: Any) -> list[str]:
    """Return a CodeableConcept's ``text`` and coding displays, in order."""
    # As jobj / jlist / jstr would read it, decoded-JSON types first, in one loop (as
    # codings_of): every allergy and medication concept is read for its words.
    c = concept if type(concept) is dict else jobj(concept)
    text = c.get("text")
    out = [text] if isinstance(text, str) and text else []
    codings = c.get("coding")
    if type(codings) is list or isinstance(codings, list | tuple):
        for coding in codings:
            if type(coding) is not dict:
                coding = jobj(coding)  # noqa: PLW2901 - read once
            display = coding.get("display")
            if isinstance(display, str) and display:
                out.append(display)
    return out


def parse_when(text: Any) -> tuple[date, datetime | None] | None:
    """Parse a FHIR date/dateTime to (written date, UTC instant or None); partial -> None."""
    if type(text) is str:
        return _parse_when_cached(text)  # a function of the text alone, its answer immutable
    if not isinstance(text, str):
        return None
    return _parse_when(text)  # a str subclass (its own hash or equality): not cached


def _parse_when(text: str) -> tuple[date, datetime | None] | None:
    """:func:`parse_when` of a string."""
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


_parse_when_cached: Final = functools.lru_cache(maxsize=4096)(_parse_when)
"""The dates of a call repeat (a patient's records, the same few days): parsed once."""


def utc_day(when: tuple[date, datetime | None]) -> date:
    """The day of a parsed date/dateTime in UTC (the written date when it has no time).

    The evaluation date is a UTC day: ``2026-12-02T09:00:00+10:00`` is 2026-12-01 in UTC.

    >>> when = parse_when("2026-12-02T09:00:00+10:00")
    >>> when is not None and utc_day(when).isoformat()
    '2026-12-01'
    """
    return when[1].date() if when[1] is not None else when[0]


def is_later(a: tuple[date, datetime | None], b: tuple[date, datetime | None]) -> bool:
    """Whether ``a`` is strictly later than ``b`` (instants when both have one, else dates)."""
    if a[1] is not None and b[1] is not None:
        return a[1] > b[1]
    return a[0] > b[0]


_EFFECTIVE: Final = ("effectiveDateTime", "effectiveInstant", "effectivePeriod")


def observation_when(obs: Mapping[str, Any]) -> tuple[date, datetime | None] | None:
    """Return when an Observation applies (``effective[x]``; a period's end, else start).

    Undated (``None``) when the dates cannot be trusted: several ``effective[x]`` given (an
    invalid resource), or a period that ends before it starts or whose start, given, cannot
    be read (so the order cannot be checked). Undated evidence is read cautiously: a
    "pregnant" status counts as current, a "not pregnant" one does not count.

    >>> observation_when({"effectivePeriod": {"start": "2026-11", "end": "2026-06-01"}}) is None
    True
    >>> observation_when({"effectivePeriod": {"start": "2026-05-01", "end": "2026-06-01"}})
    (datetime.date(2026, 6, 1), None)
    """
    given = [key for key in _EFFECTIVE if obs.get(key) is not None]
    if len(given) > 1:
        return None
    if given and given[0] != "effectivePeriod":
        return parse_when(obs[given[0]])
    period = jobj(obs.get("effectivePeriod"))
    end = period.get("end")
    if not end:
        return parse_when(period.get("start"))
    when = parse_when(end)
    if period.get("start") is None:
        return when
    start = parse_when(period.get("start"))
    if when is None or start is None or is_later(start, when):
        return None
    return when


def observation_ongoing(obs: Mapping[str, Any]) -> bool:
    """Whether an Observation's ``effectivePeriod`` is open-ended (no end, or an empty one).

    FHIR R4 reads a ``Period`` without an end as ongoing (``fhir-r4``): what was observed over
    it may still hold on the evaluation date, however long ago it started. Read whatever other
    ``effective[x]`` the resource also (invalidly) gives.

    >>> observation_ongoing({"effectivePeriod": {"start": "2026-06-01"}})
    True
    >>> observation_ongoing({"effectivePeriod": {"start": "2026-06-01", "end": "2026-07-01"}})
    False
    """
    period = obs.get("effectivePeriod")
    return isinstance(period, dict) and not period.get("end")


# --- resources, bundles and patient references ------------------------------------------------


class InputResource:
    """One item of the flattened input, with its position and the entry's ``fullUrl``.

    Its type and label are read once, when it is made (every reader and provenance entry asks
    for them); it is never changed after (a reader that needs another reading makes another).
    Two items are the same item only if they are one object (each has its own index).

    Attributes:
        index: Position in the flattened input (0-based).
        resource: The resource (a placeholder ``{"resourceType": ...}`` when not an object).
        full_url: The bundle entry's ``fullUrl``, if any.
        valid: Whether the item was a JSON object at all.
        source: The item itself when it was not (what :func:`flatten` gives), else unset.
        type: The ``resourceType`` (``Resource`` when missing).
        label: ``Type/id``, else the ``fullUrl``, else ``Type[index]`` (as in provenance).
    """

    __slots__ = ("full_url", "index", "label", "resource", "source", "type", "valid")
    source: Any

    def __init__(self, index: int, resource: Mapping[str, Any], full_url: str | None,
                 valid: bool = True) -> None:
        self.index = index
        self.resource = resource
        self.full_url = full_url
        self.valid = valid
        kind = resource.get("resourceType")
        self.type: str = kind if isinstance(kind, str) and kind else "Resource"
        rid = resource.get("id")
        self.label: str = (f"{self.type}/{rid}" if isinstance(rid, str) and rid
                           else full_url or f"{self.type}[{index}]")

    def __repr__(self) -> str:
        return f"InputResource({self.index}, {self.label!r})"


def flatten(data: Any) -> list[tuple[Any, str | None]]:
    """Flatten bundles (nested too) and lists into (resource, fullUrl) pairs, in order."""
    return [(r.resource if r.valid else r.source, r.full_url) for r in input_items(data)]


def input_items(data: Any) -> list[InputResource]:
    """The :class:`InputResource` of every item :func:`flatten` yields, indexed in order.

    A JSON object (any mapping) is a resource; anything else is a placeholder
    ``{"resourceType": <its Python type name>}`` with ``valid`` false. Made in the one walk
    (no list of pairs made first), by a module function: no closure referring to itself,
    so nothing of the input is kept alive in a reference cycle after the call.
    """
    out: list[InputResource] = []
    _walk(data, None, out)
    return out


def _walk(item: Any, full_url: str | None, out: list[InputResource]) -> None:
    if item is None:
        return
    if type(item) is dict or isinstance(item, Mapping):
        if item.get("resourceType") == "Bundle":
            entries = item.get("entry")
            for entry in entries if type(entries) is list else jlist(entries):
                e = entry if type(entry) is dict else jobj(entry)
                res = e.get("resource")
                url = e.get("fullUrl")
                url = url if isinstance(url, str) and url else None  # jstr, inlined
                if type(res) is dict and res.get("resourceType") != "Bundle":
                    out.append(InputResource(len(out), res, url))  # _walk's answer, inlined
                else:
                    _walk(res, url, out)
            return
        out.append(InputResource(len(out), item, full_url))
        return
    if isinstance(item, list | tuple):
        for x in item:
            _walk(x, None, out)
        return
    placeholder = InputResource(len(out), {"resourceType": type(item).__name__}, full_url,
                                valid=False)
    placeholder.source = item
    out.append(placeholder)


SUBJECT_KEY: Final[Mapping[str, str]] = {
    "Condition": "subject",
    "Observation": "subject",
    "MedicationStatement": "subject",
    "MedicationRequest": "subject",
    "MedicationDispense": "subject",
    "MedicationAdministration": "subject",
    "AllergyIntolerance": "patient",
    "Procedure": "subject",
}
"""The element naming the patient, by resource type (the types the reader maps)."""


def ref_patient_id(ref: Any, full_urls: Mapping[str, str]) -> str | None:
    """Return the Patient id a Reference points at, ``""`` for a non-Patient target, or None."""
    text = jstr(jobj(ref).get("reference"))
    if text is None:
        return None
    if text in full_urls:
        return full_urls[text]
    parts = text.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2:
        return parts[-1] if parts[-2] == "Patient" else ""
    return None


_WELL_FORMED_REF: Final = re.compile(r"(?:[^ ]*/)?[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def reference_readable(ref: Any, full_urls: Mapping[str, str]) -> bool:
    """Whether :func:`ref_patient_id` can tell whose a Reference is (SPEC 1.1 §8).

    Readable: no ``reference`` (nothing to tell), a bundle ``fullUrl``, a relative or absolute
    ``Type/id`` with a FHIR type and id (``Patient/p1``, ``Group/g1``,
    ``https://ehr.example/fhir/Patient/p1/_history/2``), or no ``/`` at all (an unresolved
    ``urn:uuid:``, read as about the patient). A malformed one (``patient/p1``, ``Patient/p1 ``
    with a space) is neither clearly this patient nor clearly another: its resource may bear
    on the answers, so they are unknown.

    >>> [reference_readable({"reference": r}, {}) for r in ("Patient/p1", "patient/p1",
    ...                                                      "Patient/p1 ", "urn:uuid:1")]
    [True, False, False, True]
    """
    text = jstr(jobj(ref).get("reference"))
    if text is None or text in full_urls or "/" not in text:
        return True
    return _WELL_FORMED_REF.fullmatch(text.split("/_history/", 1)[0]) is not None
