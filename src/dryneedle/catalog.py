"""Reference data: the anatomy catalog and the condition catalog.

Both catalogs are code-reviewed data, loaded once and immutable. Muscle ids and their safety
facts are part of the record-format contract (ids may be added, never renamed).

Anatomy facts cite their sources: muscles that overlie the lung (za-bn121 §5.1,
kalichman-2010), muscles where haemostasis by palpation is impossible (za-bn121 §3) and depth
limits (valera-calero-rhomboid).

>>> from dryneedle.catalog import MUSCLES, CONDITIONS
>>> MUSCLES["rhomboid_major"].depth_limit_mm
19.0
>>> MUSCLES["psoas"].palpable_haemostasis
False
>>> CONDITIONS["myofascial_pain_syndrome"].codes_for(2026)
('M79.11', 'M79.12', 'M79.18')
"""

from __future__ import annotations

import types
from collections.abc import Mapping

import attrs

from dryneedle.model import Region

__all__ = ["CONDITIONS", "MUSCLES", "Condition", "Muscle", "muscles_in"]


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
    """

    id: str
    name: str
    region: Region
    over_lung: bool
    palpable_haemostasis: bool
    depth_limit_mm: float | None = None
    sources: tuple[str, ...] = ()


_LUNG = ("za-bn121", "kalichman-2010")
_NO_PALP = ("za-bn121",)


def _m(
    id_: str,
    name: str,
    region: Region,
    over_lung: bool,
    palpable: bool = True,
    depth: float | None = None,
    sources: tuple[str, ...] = (),
) -> Muscle:
    if not sources:
        sources = _LUNG if over_lung else ()
    if not palpable:
        sources = (*sources, *_NO_PALP)
    return Muscle(
        id=id_,
        name=name,
        region=region,
        over_lung=over_lung,
        palpable_haemostasis=palpable,
        depth_limit_mm=depth,
        sources=sources,
    )


_R = Region
_MUSCLES = (
    _m("upper_trapezius", "Upper trapezius", _R.NECK, True),
    _m("middle_trapezius", "Middle trapezius", _R.UPPER_BACK, True),
    _m("lower_trapezius", "Lower trapezius", _R.UPPER_BACK, True),
    _m("rhomboid_major", "Rhomboid major", _R.UPPER_BACK, True, depth=19.0,
       sources=(*_LUNG, "valera-calero-rhomboid")),
    _m("rhomboid_minor", "Rhomboid minor", _R.UPPER_BACK, True, depth=19.0,
       sources=(*_LUNG, "valera-calero-rhomboid")),
    _m("thoracic_paraspinals", "Thoracic paraspinals", _R.UPPER_BACK, True),
    _m("scalenes", "Scalenes", _R.NECK, True),
    _m("pectoralis_major", "Pectoralis major", _R.CHEST, True),
    _m("pectoralis_minor", "Pectoralis minor", _R.CHEST, True),
    _m("serratus_anterior", "Serratus anterior", _R.CHEST, True),
    _m("intercostals", "Intercostals", _R.CHEST, True),
    _m("levator_scapulae", "Levator scapulae", _R.NECK, False),
    _m("sternocleidomastoid", "Sternocleidomastoid", _R.NECK, False),
    _m("splenius_capitis", "Splenius capitis", _R.NECK, False),
    _m("suboccipitals", "Suboccipitals", _R.NECK, False),
    _m("infraspinatus", "Infraspinatus", _R.SHOULDER, False),
    _m("supraspinatus", "Supraspinatus", _R.SHOULDER, False),
    _m("teres_major", "Teres major", _R.SHOULDER, False),
    _m("teres_minor", "Teres minor", _R.SHOULDER, False),
    _m("deltoid", "Deltoid", _R.SHOULDER, False),
    _m("masseter", "Masseter", _R.JAW, False),
    _m("temporalis", "Temporalis", _R.HEAD_FACE, False),
    _m("lumbar_multifidus", "Lumbar multifidus", _R.LOWER_BACK, False),
    _m("quadratus_lumborum", "Quadratus lumborum", _R.LOWER_BACK, False),
    _m("lumbar_erector_spinae", "Lumbar erector spinae", _R.LOWER_BACK, False),
    _m("psoas", "Psoas", _R.ABDOMEN, False, palpable=False),
    _m("gluteus_maximus", "Gluteus maximus", _R.PELVIS, False),
    _m("gluteus_medius", "Gluteus medius", _R.PELVIS, False),
    _m("gluteus_minimus", "Gluteus minimus", _R.PELVIS, False),
    _m("piriformis", "Piriformis", _R.PELVIS, False),
    _m("tensor_fasciae_latae", "Tensor fasciae latae", _R.HIP, False),
    _m("vastus_lateralis", "Vastus lateralis", _R.THIGH, False),
    _m("vastus_medialis", "Vastus medialis", _R.THIGH, False),
    _m("rectus_femoris", "Rectus femoris", _R.THIGH, False),
    _m("hamstrings", "Hamstrings", _R.THIGH, False),
    _m("adductor_longus", "Adductor longus", _R.THIGH, False),
    _m("gastrocnemius", "Gastrocnemius", _R.LEG, False),
    _m("soleus", "Soleus", _R.LEG, False),
    _m("tibialis_anterior", "Tibialis anterior", _R.LEG, False),
    _m("fibularis_longus", "Fibularis longus", _R.LEG, False),
    _m("tibialis_posterior", "Tibialis posterior", _R.LEG, False, palpable=False),
    _m("biceps_brachii", "Biceps brachii", _R.ARM, False),
    _m("triceps_brachii", "Triceps brachii", _R.ARM, False),
    _m("forearm_extensors", "Forearm extensors", _R.FOREARM, False),
    _m("forearm_flexors", "Forearm flexors", _R.FOREARM, False),
)

MUSCLES: Mapping[str, Muscle] = types.MappingProxyType({m.id: m for m in _MUSCLES})
"""The anatomy catalog, by muscle id (read-only)."""


def muscles_in(region: Region) -> tuple[Muscle, ...]:
    """Return the catalog's muscles in one body region, in catalog order.

    Args:
        region: A body region.

    Returns:
        The muscles whose region is ``region``.

    >>> from dryneedle.catalog import muscles_in
    >>> from dryneedle.model import Region
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


_IND = ("seed", "apta-2013", "icd10cm")
_CONDITIONS = (
    Condition(
        id="myofascial_pain_syndrome",
        name="Myofascial pain syndrome (myalgia)",
        # FY2023 split M79.1 into site-specific codes (M79.1x in icd10cm).
        codes={2016: ("M79.1",), 2023: ("M79.11", "M79.12", "M79.18")},
        sources=("seed", "icd10cm"),
    ),
    Condition(id="joint_problems", name="Joint problems", sources=("seed", "apta-2013")),
    Condition(id="tendonitis", name="Tendonitis", sources=("seed", "apta-2013")),
    Condition(id="whiplash", name="Whiplash", codes={2016: ("S13.4XXA",)}, sources=_IND),
    Condition(id="pelvic_pain", name="Pelvic pain", codes={2016: ("R10.2",)}, sources=_IND),
    Condition(id="disc_issues", name="Disc issues", codes={2016: ("M51",)}, sources=_IND),
    Condition(
        id="tmj_disorders", name="TMJ and jaw-related disorders", codes={2016: ("M26.6",)},
        sources=_IND,
    ),
    Condition(
        id="spine_problems", name="Spine problems (e.g. cervicalgia)", codes={2016: ("M54.2",)},
        sources=_IND,
    ),
    Condition(id="night_cramps", name="Night cramps", codes={2016: ("R25.2",)}, sources=_IND),
    Condition(id="migraine", name="Migraine", codes={2016: ("G43",)}, sources=_IND),
    Condition(
        id="tension_type_headache", name="Tension-type headache", codes={2016: ("G44.2",)},
        sources=_IND,
    ),
    Condition(
        id="repetitive_strain_injury",
        name="Repetitive strain injury",
        codes={2016: ("X50.3XXA",)},
        sources=("seed", "icd10cm"),
    ),
    Condition(
        id="phantom_limb_pain", name="Phantom limb pain", codes={2016: ("G54.6",)}, sources=_IND
    ),
    Condition(
        id="inflammation",
        name="Inflammation as the treatment target",
        indication=False,
        sources=("seed",),
    ),
)

CONDITIONS: Mapping[str, Condition] = types.MappingProxyType({c.id: c for c in _CONDITIONS})
"""The condition catalog, by condition id (read-only)."""
