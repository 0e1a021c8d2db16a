"""Reference data: the anatomy catalog and the condition catalog.

Layer: reference data. May import :mod:`dryneedle.model` and :mod:`dryneedle.sources` only.

Both catalogs are data files with provenance, ``src/dryneedle/data/anatomy.json`` and
``conditions.json`` (each opens with a ``header`` naming its sources, version and date, as
python-stdnum's ``iban.dat`` does), loaded once at import, checked at load (every entry cites
registered sources; ``scripts/check_data.py`` runs the same check) and immutable. Muscle ids
and their safety facts are part of the record-format contract (ids may be added, never
renamed).

Anatomy facts cite their sources: muscles that overlie the lung (za-bn121 §5.1,
kalichman-2010), muscles where haemostasis by palpation is impossible (za-bn121 §3), depth
limits (valera-calero-rhomboid) and, a separate fact, the mean depth from the skin to the
pleura by sex where a source measured it (upper trapezius at GB21: 14.6 mm in women, 17.4 mm
in men, chen-2018; means, so a shallower pleura is common). :data:`LIMBS` maps each limb to
its regions (a lymphoedema finding excludes the whole limb, za-bn121).

>>> from dryneedle.catalog import MUSCLES, CONDITIONS
>>> MUSCLES["rhomboid_major"].depth_limit_mm
19.0
>>> MUSCLES["psoas"].palpable_haemostasis
False
>>> from dryneedle.model import Sex
>>> trapezius = MUSCLES["upper_trapezius"]
>>> trapezius.pleura_depth_for(Sex.MALE), trapezius.pleura_depth_for(None)
(17.4, 14.6)
>>> from dryneedle.catalog import LIMBS
>>> sorted(r.value for r in LIMBS["upper_limb"])
['arm', 'forearm', 'hand', 'shoulder']
>>> CONDITIONS["myofascial_pain_syndrome"].codes_for(2026)
('M79.11', 'M79.12', 'M79.18')
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any

import attrs

from dryneedle.exports import data_text
from dryneedle.model import Region, Sex
from dryneedle.sources import SOURCES

__all__ = [
    "ANATOMY_ABOUT",
    "CONDITIONS",
    "CONDITIONS_ABOUT",
    "LIMBS",
    "LIMBS_SOURCES",
    "MUSCLES",
    "Condition",
    "Muscle",
    "limb_of",
    "muscles_in",
]


@attrs.frozen(kw_only=True)
class Muscle:
    """A commonly needled muscle and the safety facts the rules need.

    Attributes:
        id: Stable muscle id used in records.
        name: Human-readable name.
        region: Body region (what site findings are matched against).
        over_lung: Whether the muscle overlies the lung (pneumothorax risk).
        palpable_haemostasis: Whether bleeding can be stopped by palpation/compression.
        depth_limit_mm: Maximum safe depth where a source gives one.
        sources: Source ids for the safety facts above.
        region_sources: Source ids for the muscle itself and its region.
        pleura_depth_mm: Mean depth from the skin to the pleura by sex, where a source measured
            one (``()`` otherwise); read it with :meth:`pleura_depth_for`. These are *means*:
            a shallower pleura is common, so a clinic may apply a margin
            (the policy limit ``pleura_depth_margin_mm``).
        pleura_sources: Source ids for :attr:`pleura_depth_mm`.
    """

    id: str
    name: str
    region: Region
    over_lung: bool
    palpable_haemostasis: bool
    depth_limit_mm: float | None = None
    sources: tuple[str, ...] = ()
    region_sources: tuple[str, ...] = ()
    pleura_depth_mm: tuple[tuple[Sex, float], ...] = ()
    pleura_sources: tuple[str, ...] = ()

    def pleura_depth_for(self, sex: Sex | None) -> float | None:
        """Return the depth to the pleura for a patient's sex, or ``None`` where none is known.

        A sex that is not recorded, or that the source did not measure, takes the smallest
        value the catalog gives (fail closed).

        Args:
            sex: The patient's sex (``None`` when unknown).
        """
        if not self.pleura_depth_mm:
            return None
        for known, depth in self.pleura_depth_mm:
            if known is sex and sex is not None:
                return depth
        return min(depth for _, depth in self.pleura_depth_mm)


def _load(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read one reference-data file of ``dryneedle/data``: its ``header`` and its entries."""
    doc = json.loads(data_text(f"{name}.json"))
    about = doc["header"]
    entries = doc[next(k for k in doc if k != "header" and isinstance(doc[k], list))]
    _check_sources(f"{name}.json header", about["sources"])
    return about, entries


def _pleura(where: str, entry: dict[str, Any]) -> tuple[tuple[Sex, float], ...]:
    depths = entry.get("pleura_depth_mm")
    if depths is None:
        return ()
    if not isinstance(depths, dict) or set(depths) != {s.value for s in Sex}:
        msg = f"data/{where}: pleura_depth_mm needs a depth for each of {[s.value for s in Sex]}"
        raise ValueError(msg)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0
               for v in depths.values()):
        msg = f"data/{where}: pleura_depth_mm values must be positive numbers"
        raise ValueError(msg)
    if not _check_sources(where, entry.get("pleura_sources", [])):
        msg = f"data/{where}: pleura_depth_mm needs pleura_sources"
        raise ValueError(msg)
    return tuple((s, float(depths[s.value])) for s in Sex)


def _check_sources(where: str, ids: list[str]) -> tuple[str, ...]:
    unknown = [s for s in ids if s not in SOURCES]
    if unknown:
        msg = f"data/{where} cites unknown sources {unknown}"
        raise ValueError(msg)
    return tuple(ids)


def _muscle(entry: dict[str, Any]) -> Muscle:
    where = f"anatomy.json muscle {entry.get('id')!r}"
    if not isinstance(entry["over_lung"], bool) or not isinstance(
        entry["palpable_haemostasis"], bool
    ):
        msg = f"data/{where}: over_lung and palpable_haemostasis must be true or false"
        raise ValueError(msg)
    depth = entry["depth_limit_mm"]
    if depth is not None and not (isinstance(depth, int | float) and depth > 0):
        msg = f"data/{where}: depth_limit_mm must be a positive number or null"
        raise ValueError(msg)
    sources = _check_sources(where, entry["sources"])
    region_sources = _check_sources(where, entry["region_sources"])
    if not region_sources:
        msg = f"data/{where}: the id and region need a source"
        raise ValueError(msg)
    return Muscle(
        id=entry["id"],
        name=entry["name"],
        region=Region(entry["region"]),
        over_lung=entry["over_lung"],
        palpable_haemostasis=entry["palpable_haemostasis"],
        depth_limit_mm=None if depth is None else float(depth),
        sources=sources,
        region_sources=region_sources,
        pleura_depth_mm=_pleura(where, entry),
        pleura_sources=tuple(entry.get("pleura_sources", ())),
    )


ANATOMY_ABOUT, _muscle_entries = _load("anatomy")
"""Provenance of the anatomy catalog (the ``header`` of ``data/anatomy.json``)."""
_MUSCLES = tuple(_muscle(e) for e in _muscle_entries)
if len({m.id for m in _MUSCLES}) != len(_MUSCLES):  # pragma: no cover - data check
    msg = "data/anatomy.json repeats a muscle id"
    raise ValueError(msg)

MUSCLES: Mapping[str, Muscle] = types.MappingProxyType({m.id: m for m in _MUSCLES})
"""The anatomy catalog, by muscle id (read-only)."""


def _limbs() -> tuple[Mapping[str, frozenset[Region]], tuple[str, ...]]:
    block = json.loads(data_text("anatomy.json"))["limbs"]
    sources = _check_sources("anatomy.json limbs", block["sources"])
    if not sources:
        msg = "data/anatomy.json limbs: the limb map needs a source"
        raise ValueError(msg)
    limbs = {name: frozenset(Region(r) for r in regions) for name, regions in block.items()
             if name not in ("sources", "note")}
    seen: set[Region] = set()
    for regions in limbs.values():
        if seen & regions:
            msg = "data/anatomy.json limbs: a region belongs to two limbs"
            raise ValueError(msg)
        seen |= regions
    return types.MappingProxyType(limbs), sources


LIMBS, LIMBS_SOURCES = _limbs()
"""The regions of each limb (``upper_limb``, ``lower_limb``), from ``data/anatomy.json``.

A lymphoedema finding excludes every region of its limb on its side (za-bn121 "lymphoedema
area/limb"): upper limb shoulder, arm, forearm, hand; lower limb hip, thigh, knee, leg,
ankle and foot. ``LIMBS_SOURCES`` are the sources of the map.
"""

_LIMB_OF: Mapping[Region, str] = types.MappingProxyType(
    {region: name for name, regions in LIMBS.items() for region in regions})


def limb_of(region: Region) -> str | None:
    """Return the limb a region belongs to (``upper_limb``, ``lower_limb``), or ``None``.

    >>> from dryneedle.catalog import limb_of
    >>> from dryneedle.model import Region
    >>> limb_of(Region.SHOULDER), limb_of(Region.ANKLE_FOOT), limb_of(Region.NECK)
    ('upper_limb', 'lower_limb', None)
    """
    return _LIMB_OF.get(region)


def muscles_in(region: Region) -> tuple[Muscle, ...]:
    """Return the catalog's muscles in one body region, in catalog order.

    Args:
        region: A body region.

    Returns:
        The muscles whose region is ``region``.

    >>> from dryneedle.catalog import muscles_in
    >>> from dryneedle.model import Region, Sex
    >>> [m.id for m in muscles_in(Region.JAW)]
    ['masseter']
    """
    return tuple(m for m in _MUSCLES if m.region is region)


@attrs.frozen(kw_only=True)
class Condition:
    """A condition dry needling is used for (or, flagged, is *not* an indication for).

    Attributes:
        id: Stable condition id used in records.
        name: Human-readable name.
        codes: ICD-10-CM codes (or code prefixes ending in a letter-free stem, e.g. ``G43``) by
            the first fiscal-year edition they apply to; the newest edition not after the asked
            year applies. Empty where no source gives a code (never guessed).
        indication: ``False`` for targets dry needling does not treat.
        sources: Source ids.
    """

    id: str
    name: str
    codes: Mapping[int, tuple[str, ...]] = attrs.field(factory=dict, eq=False)
    indication: bool = True
    sources: tuple[str, ...] = ()

    def codes_for(self, fiscal_year: int) -> tuple[str, ...]:
        """Return the ICD-10-CM codes of the edition in force in a fiscal year.

        Args:
            fiscal_year: US fiscal year (FY2026 runs 2025-10-01 to 2026-09-30).

        Returns:
            The codes of the newest edition whose first year is ``<= fiscal_year``, or ``()``.
        """
        best = None
        for first in self.codes:
            if first <= fiscal_year and (best is None or first > best):
                best = first
        return self.codes[best] if best is not None else ()

    def all_codes(self) -> frozenset[str]:
        """Every code (or prefix) of every edition, for matching incoming data."""
        return frozenset(c for codes in self.codes.values() for c in codes)


def _condition(entry: dict[str, Any]) -> Condition:
    where = f"conditions.json condition {entry.get('id')!r}"
    sources = _check_sources(where, entry["sources"])
    if not sources:
        msg = f"data/{where} cites no source"
        raise ValueError(msg)
    codes = {int(year): tuple(c) for year, c in entry["codes"].items()}
    if codes and "icd10cm" not in sources:
        msg = f"data/{where}: ICD-10-CM codes need the icd10cm source"
        raise ValueError(msg)
    return Condition(
        id=entry["id"],
        name=entry["name"],
        codes=codes,
        indication=entry["indication"],
        sources=sources,
    )


CONDITIONS_ABOUT, _condition_entries = _load("conditions")
"""Provenance of the condition catalog (the ``header`` of ``data/conditions.json``)."""
_CONDITIONS = tuple(_condition(e) for e in _condition_entries)

CONDITIONS: Mapping[str, Condition] = types.MappingProxyType({c.id: c for c in _CONDITIONS})
"""The condition catalog, by condition id (read-only)."""
