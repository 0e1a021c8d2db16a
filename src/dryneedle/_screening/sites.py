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

from collections.abc import Sequence
from datetime import date
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

__all__ = ["site_row"]


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


def _site_exclusion(
    sf: SiteFinding, on: date, policy: Policy
) -> tuple[Rule, str] | None:
    """Return (rule, message) when a site finding excludes its site on ``on``."""
    rule = _KIND_RULE.get(sf.kind, SITE_FINDING)
    if sf.kind is SiteFindingKind.SURGERY:
        if sf.date is None:
            return rule, "surgery of unknown date in this area counts as recent: do not needle"
        days = (on - sf.date).days
        if days > policy.recent_surgery_days:
            return None
        return rule, (
            f"surgery {days} days before (recent: within {policy.recent_surgery_days} days) "
            "in this area: do not needle"
        )
    return rule, f"{sf.kind.value} in this area: do not needle here"


def site_row(
    c: ScreeningTable,
    i: int,
    site: Any,
    site_path: str,
    site_findings: Sequence[SiteFinding],
    on: date,
    bleeding_risk: bool,
) -> tuple[tuple[Any, ...], int]:
    """Return the row ``(i, path, muscle, side, allowed, findings)`` of one site and its rank.

    Args:
        c: The policy's screening table.
        i: Position of the site in the planned sites.
        site: The site (an insertion or a planned site).
        site_path: Path prefix of the sites (``<site_path>[i]``).
        site_findings: The patient's site findings.
        on: Evaluation date (recent surgery is counted back from it).
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
        side = site.side
        for sf in site_findings:
            if sf.region is not region and (
                sf.kind is not _LYMPHOEDEMA or _LIMB[sf.region] != _LIMB[region]
            ):
                continue  # another region (a lymphoedema finding covers its whole limb)
            sf_side = sf.side
            if not (sf_side is _SF_MIDLINE or sf_side is _SF_BILATERAL or side is _MIDLINE
                    or sf_side == side):  # str values: SiteSide.LEFT == Side.LEFT
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
