"""Site rules: whether each planned site may be needled.

Private module behind :mod:`dryneedle.screening` (import the public names from there). It holds
:func:`site_row`, which applies the site rules to one planned site: site findings (wounds,
scars, tattoos, injuries, infections, implants, lymphoedema of the limb, recent surgery), deep
needling without palpable haemostasis under bleeding risk, and the over-lung precaution. A new
site rule is declared in :mod:`dryneedle._screening.rules` and applied in :func:`site_row`.

May import: the model, reference data (catalog), findings, policy and
:mod:`dryneedle._screening.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from dryneedle._screening.rules import (
    OVER_LUNG_SITE,
    SITE_BLEEDING_RISK,
    SITE_FINDING,
    SITE_LYMPHOEDEMA,
    SITE_RECENT_SURGERY,
    ScreeningTable,
)
from dryneedle.catalog import MUSCLES, limb_of
from dryneedle.findings import Finding, Rule
from dryneedle.model import Region, Side, SiteFinding, SiteFindingKind, SiteSide, Technique
from dryneedle.policy import Policy

__all__ = ["readable_findings", "regions_touched", "site_row"]


# A lymphoedema finding excludes its whole limb (za-bn121 "area or limb"): the limbs are
# catalog data (upper limb shoulder, arm, forearm, hand; lower limb hip, thigh, knee, leg,
# ankle and foot). A region outside the limbs is its own "limb".
_LIMB: dict[Region, object] = {region: limb_of(region) or region for region in Region}

_LYMPHOEDEMA = SiteFindingKind.LYMPHOEDEMA
_SF_MIDLINE = SiteSide.MIDLINE
_SF_BILATERAL = SiteSide.BILATERAL
_MIDLINE = Side.MIDLINE

_KIND_RULE = {
    SiteFindingKind.LYMPHOEDEMA: SITE_LYMPHOEDEMA,
    SiteFindingKind.SURGERY: SITE_RECENT_SURGERY,
}


_LIMB_REGIONS: dict[object, frozenset[Region]] = {
    limb: frozenset(r for r in Region if _LIMB[r] == limb) for limb in set(_LIMB.values())
}


def _read_finding(region: Region | None, side: SiteSide | None, kind: SiteFindingKind | None,
                  day: date | None) -> SiteFinding:
    """A :class:`SiteFinding` whose unreadable parts are ``None``, as the record reader makes.

    The model's converters refuse ``None``, so it is built without them.
    """
    finding = object.__new__(SiteFinding)
    for name, value in (("region", region), ("side", side), ("kind", kind), ("date", day)):
        object.__setattr__(finding, name, value)
    return finding


def _member(enum: type[Enum], value: Any) -> Any:
    """``value`` as a member of ``enum`` (its value may be given), else ``None`` (unknown).

    Types are asked with ``type()``, which an object cannot fake (its ``__class__`` it can).
    """
    if value is None or type(value) is enum:
        return value
    if issubclass(type(value), str):  # a value, or another str enum's member with one
        try:
            member = enum(value)
        except ValueError:
            return None
        return member if type(member) is enum else None
    return None


def _day_of(value: Any) -> date | None:
    """A site finding's date as the model reads it (a ``datetime`` as its date), else ``None``.

    ``None`` is unknown: a surgery then counts as recent. The date is rebuilt as a plain
    ``date`` (a subclass could compute differently).
    """
    kind = type(value)
    if issubclass(kind, datetime):
        value = value.date()
    elif not issubclass(kind, date):
        return None
    return date(value.year, value.month, value.day)


def _read(sf: Any) -> SiteFinding:
    """A caller's site finding read once, part by part (see :func:`readable_findings`)."""
    try:
        if isinstance(sf, Mapping):
            region, side, kind, day = (sf.get("region"), sf.get("side"), sf.get("kind"),
                                       sf.get("date"))
        else:  # a missing attribute is unknown too
            region, side, kind, day = (getattr(sf, "region", None), getattr(sf, "side", None),
                                       getattr(sf, "kind", None), getattr(sf, "date", None))
        return _read_finding(_member(Region, region), _member(SiteSide, side),
                             _member(SiteFindingKind, kind), _day_of(day))
    except Exception:  # a finding that cannot be read at all is unknown (never raises)
        return _read_finding(None, None, None, None)


def readable_findings(site_findings: Sequence[Any]) -> Sequence[SiteFinding]:
    """The site findings as the site rules read them: every part a model member or ``None``.

    Findings of the model are returned as they are. Anything else a caller passed -- a
    mapping, an object with plain strings, a part that is not a member, a ``datetime`` -- is
    read once, part by part, as the model's converters read it: a value of the enum becomes
    its member, a ``datetime`` its date, and a part that cannot be read becomes ``None``
    (unknown: the sites it may concern go to review; a surgery of unknown date counts as
    recent), never an error and never a finding silently dropped.

    >>> from dryneedle.model import Region
    >>> [(f.region, f.kind) for f in readable_findings([{"region": "neck", "kind": "?"}])]
    [(<Region.NECK: 'neck'>, None)]
    """
    if all(type(sf) is SiteFinding for sf in site_findings):
        return site_findings
    return [sf if type(sf) is SiteFinding else _read(sf) for sf in site_findings]


def regions_touched(site_findings: Sequence[SiteFinding]) -> frozenset[Region] | None:
    """The regions whose sites the site findings can concern, or ``None`` if it cannot tell.

    A site of a catalog muscle outside these regions gets from :func:`site_row` exactly the
    row it gets without site findings (every finding is of another region, a lymphoedema
    finding of another limb), so the screen reads it from the plain sites' memo. ``None``
    when a finding's region, side or kind is unknown (such a finding may concern any site).

    >>> from dryneedle.model import SiteFinding
    >>> sorted(regions_touched([SiteFinding(region="neck", side="left", kind="scar")]))
    [<Region.NECK: 'neck'>]
    >>> len(regions_touched([SiteFinding(region="arm", side="left", kind="lymphoedema")]))
    4
    """
    touched: set[Region] = set()
    for sf in site_findings:
        region, side, kind = _parts(sf)
        if region is None or side is None or kind is None:
            return None
        if kind == _LYMPHOEDEMA:  # its whole limb
            regions = _LIMB_REGIONS.get(_LIMB.get(region, region))
            if regions is None:
                return None
            touched.update(regions)
        touched.add(region)
    return frozenset(touched)


def _site_exclusion(
    sf: SiteFinding, on: date | None, policy: Policy
) -> tuple[Rule, str] | None:
    """Return (rule, message) when a site finding excludes its site on ``on``.

    An unknown evaluation date (``None``, unreadable in a record) makes every surgery recent.
    """
    rule = _KIND_RULE.get(sf.kind, SITE_FINDING)
    if sf.kind is SiteFindingKind.SURGERY:
        if sf.date is None or on is None:
            return rule, "surgery of unknown date in this area counts as recent: do not needle"
        days = (on - sf.date).days
        if days > policy.recent_surgery_days:
            return None
        return rule, (
            f"surgery {days} days before (recent: within {policy.recent_surgery_days} days) "
            "in this area: do not needle"
        )
    return rule, f"{sf.kind.value} in this area: do not needle here"


def _parts(
    sf: SiteFinding,
) -> tuple[Region | None, SiteSide | None, SiteFindingKind | None]:
    """Region, side and kind of a site finding; ``None`` where a record's was unreadable."""
    return sf.region, sf.side, sf.kind


def _unchecked(
    c: ScreeningTable, here: list[Finding], j: int, sf: SiteFinding, region: Region,
    side: Side | None, on: date | None, path: str,
) -> int:
    """A site finding with an unknown part: review every site it could concern (its rank)."""
    sf_region, sf_side, sf_kind = _parts(sf)
    if sf_region is not None and sf_region is not region and (
        sf_kind not in (None, _LYMPHOEDEMA)
        or _LIMB.get(sf_region, 0) != _LIMB.get(region, -1)
    ):
        return 0  # known to be elsewhere
    if (sf_side is not None and side is not None and side is not _MIDLINE
            and sf_side is not _SF_MIDLINE and sf_side is not _SF_BILATERAL
            and sf_side.value != side.value):
        return 0  # known to be on the other side
    if sf_kind is not None and _site_exclusion(sf, on, c.policy) is None:
        return 0  # known not to exclude (an old surgery)
    hit = c.unknown(f"patient.site_findings[{j}]",
                    f"what this site finding is (it may concern {path})", SITE_FINDING)
    here.append(hit[0])
    return hit[1]


def site_row(
    c: ScreeningTable,
    i: int,
    site: Any,
    site_path: str,
    site_findings: Sequence[SiteFinding],
    on: date | None,
    bleeding_risk: bool,
) -> tuple[tuple[Any, ...], int]:
    """Return the row ``(i, path, muscle, side, allowed, findings)`` of one site and its rank.

    Args:
        c: The policy's screening table.
        i: Position of the site in the planned sites.
        site: The site (an insertion or a planned site).
        site_path: Path prefix of the sites (``<site_path>[i]``).
        site_findings: The patient's site findings. One whose region, side or kind is
            unknown (``None``: unreadable in a record) concerns every site it could concern:
            the site goes to review (``screening.unknown_answer`` at the finding's path), never
            dropped.
        on: Evaluation date (recent surgery is counted back from it); ``None`` if unknown.
        bleeding_risk: Whether the patient has a bleeding disorder or antithrombotic therapy.
    """
    path = f"{site_path}[{i}]"
    muscle = MUSCLES.get(site.muscle)
    here: list[Finding] = []
    rank = 0
    excluded = False
    if muscle is None:
        hit = c.unknown(f"{path}.muscle", "muscle (not in the anatomy catalog)", SITE_FINDING)
        here.append(hit[0])
        rank = hit[1]
        excluded = True
    else:
        region = muscle.region
        side: Side | None = site.side  # None: unreadable in a record
        for j, sf in enumerate(site_findings):
            sf_region, sf_side, sf_kind = _parts(sf)
            if sf_region is None or sf_side is None or sf_kind is None:
                rank = max(rank, _unchecked(c, here, j, sf, region, side, on, path))
                continue
            if sf_region is not region and (
                sf_kind is not _LYMPHOEDEMA or _LIMB.get(sf_region, 0) != _LIMB.get(region, -1)
            ):
                continue  # another region (a lymphoedema finding covers its whole limb)
            if not (sf_side is _SF_MIDLINE or sf_side is _SF_BILATERAL or side is _MIDLINE
                    or side is None  # an unknown side could be either
                    or sf_side.value == side.value):
                continue
            exclusion = _site_exclusion(sf, on, c.policy)
            if exclusion is not None:
                hit = c.finding(exclusion[0], path, exclusion[1])
                here.append(hit[0])
                rank = max(rank, hit[1])
                excluded = True
        if (bleeding_risk and not muscle.palpable_haemostasis
                and site.technique is not Technique.SUPERFICIAL):
            hit = c.finding(
                SITE_BLEEDING_RISK, path,
                f"bleeding risk: deep needling of {muscle.id} cannot be controlled by palpation",
            )
            here.append(hit[0])
            rank = max(rank, hit[1])
            excluded = True
        if muscle.over_lung and not excluded:
            hit = c.finding(OVER_LUNG_SITE, path,
                            f"{muscle.id} overlies the lung: superficial technique "
                            "preferred, respect depth limits")
            here.append(hit[0])
            rank = max(rank, hit[1])
    return (i, path, site.muscle, site.side, not excluded, tuple(here)), rank
