"""Planned needling sites from the orders and appointments a CDS Hooks request carries.

What it is for: :func:`planned_sites` reads ``ServiceRequest`` / ``Procedure`` resources in
``context.draftOrders`` (``order-select``, ``order-sign``) or ``context.appointments``
(``appointment-book``; resources in the bundle and ``contained`` in an ``Appointment``) and
returns the sites they plan. A ``bodySite`` coded in dryneedle's muscle code system or in
SNOMED CT through the cited table :data:`SNOMED_BODY_SITES` (``data/snomed-body-sites.json``)
is a planned site. A ``bodySite`` that is coded but maps to no catalog muscle is **not
ignored**: it becomes a site whose muscle is unknown, which screening reports as an unknown
answer (``needs_review``) -- an unrecognised site is never read as a safe one.

May import: the standard library, :mod:`dryneedle.model`, :mod:`dryneedle.catalog`,
:mod:`dryneedle.screening` and :mod:`dryneedle.fhir` (public names only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any, Final

from dryneedle.catalog import MUSCLES
from dryneedle.fhir import EXT_BODY_SIDE, SYSTEMS
from dryneedle.model import Side
from dryneedle.screening import PlannedSite

__all__ = ["SNOMED", "SNOMED_BODY_SITES", "SNOMED_LATERALITY", "planned_sites"]

SNOMED: Final = "http://snomed.info/sct"
"""SNOMED CT code system URI (``snomed-ct``)."""


def _load() -> tuple[dict[str, str], dict[str, Side]]:
    text = resources.files("dryneedle.service").joinpath("data/snomed-body-sites.json")
    data = json.loads(text.read_text(encoding="utf-8"))
    if data["header"]["system"] != SNOMED:  # pragma: no cover - a packaging error
        msg = "snomed-body-sites.json: wrong system"
        raise ValueError(msg)
    muscles: dict[str, str] = {}
    sides: dict[str, Side] = {}
    for entry in data["entries"]:
        if "muscle" in entry:
            if entry["muscle"] not in MUSCLES:  # pragma: no cover - checked by the tests
                msg = f"snomed-body-sites.json: {entry['muscle']!r} is not a catalog muscle"
                raise ValueError(msg)
            muscles[entry["code"]] = entry["muscle"]
        else:
            sides[entry["code"]] = Side(entry["side"])
    return muscles, sides


_MUSCLES, _SIDES = _load()
SNOMED_BODY_SITES: Final[Mapping[str, str]] = _MUSCLES
"""SNOMED CT body-structure concept id -> anatomy-catalog muscle id (exact equivalents only;
concept ids and names as published in DICOM PS3.16 CID 6116, ``snomed-ct``)."""
SNOMED_LATERALITY: Final[Mapping[str, Side]] = _SIDES
"""SNOMED CT laterality qualifier -> side (``7771000`` left, ``24028007`` right,
``51440002`` right and left, read as midline: it overlaps both sides)."""

_ORDER_TYPES: Final = frozenset({"ServiceRequest", "Procedure"})
_INACTIVE: Final = frozenset({"revoked", "entered-in-error", "completed", "cancelled",
                              "not-done", "stopped"})


def _obj(value: Any) -> Mapping[str, Any]:
    return value if type(value) is dict or isinstance(value, Mapping) else {}  # dict: no ABC


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _resources(data: Any) -> Iterator[Mapping[str, Any]]:
    """Yield the resources of a bundle / list / resource, with ``contained`` ones."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
            continue
        res = _obj(item)
        if res.get("resourceType") == "Bundle":
            stack.extend(reversed([_obj(e).get("resource") for e in _list(res.get("entry"))]))
            continue
        if res:
            yield res
            stack.extend(reversed(_list(res.get("contained"))))


def _side(site: Mapping[str, Any], codings: list[Mapping[str, Any]]) -> Side:
    for ext in _list(site.get("extension")):
        code = _obj(ext).get("valueCode")
        if _obj(ext).get("url") == EXT_BODY_SIDE and code in {s.value for s in Side}:
            return Side(code)
    for c in codings:
        if c.get("system") == SNOMED and c.get("code") in SNOMED_LATERALITY:
            return SNOMED_LATERALITY[c["code"]]
    return Side.MIDLINE  # unknown side: midline overlaps both sides (the cautious reading)


def _muscle(codings: list[Mapping[str, Any]]) -> str | None:
    for c in codings:
        if c.get("system") == SYSTEMS["muscle"] and isinstance(c.get("code"), str):
            return str(c["code"])
    for c in codings:
        if c.get("system") == SNOMED and c.get("code") in SNOMED_BODY_SITES:
            return SNOMED_BODY_SITES[c["code"]]
    return None


def planned_sites(context_resources: Any) -> list[PlannedSite]:
    """Return the sites planned by the orders in a hook's context (see the module docstring).

    Args:
        context_resources: ``context.draftOrders`` or ``context.appointments`` (a Bundle, a
            list or a resource; anything else gives no site).

    Returns:
        The planned sites, in order. A coded ``bodySite`` that maps to no catalog muscle is a
        site with the muscle ``unrecognised:<system>|<code>``, which screening reports as an
        unknown muscle (review), never as a safe site.

    >>> from dryneedle.service import planned_sites
    >>> order = {"resourceType": "ServiceRequest", "status": "draft", "bodySite": [
    ...     {"coding": [{"system": "http://snomed.info/sct", "code": "35259002"},
    ...                 {"system": "http://snomed.info/sct", "code": "7771000"}]},
    ...     {"coding": [{"system": "http://snomed.info/sct", "code": "31764008"}]}]}
    >>> [(s.muscle, s.side.value) for s in planned_sites([order])]
    [('deltoid', 'left'), ('unrecognised:http://snomed.info/sct|31764008', 'midline')]
    """
    sites: list[PlannedSite] = []
    for res in _resources(context_resources):
        if res.get("resourceType") not in _ORDER_TYPES or res.get("status") in _INACTIVE:
            continue
        for raw in _list(res.get("bodySite")):
            site = _obj(raw)
            codings = [_obj(c) for c in _list(site.get("coding"))]
            muscle = _muscle(codings)
            if muscle is None:
                if not codings and not site.get("text"):
                    continue  # an empty bodySite says nothing
                named = [c for c in codings if c.get("system") != SNOMED
                         or c.get("code") not in SNOMED_LATERALITY]
                first = named[0] if named else {}
                muscle = (f"unrecognised:{first.get('system')}|{first.get('code')}"
                          if first else "unrecognised:text")
            sites.append(PlannedSite(muscle=muscle, side=_side(site, codings)))
    return sites
