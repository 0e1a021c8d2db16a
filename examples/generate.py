r"""Generate realistic, deterministic dry-needling session records (record format v1).

The records are synthetic: pseudonymous patients (``p-000123``) each attend a course of
weekly-ish sessions with increasing session numbers; every line of the output is one record of
format ``dryneedle.session/1`` (SPEC §6). The data is meant for examples, tests and benchmarks,
so it mixes three kinds of records:

* **clean records** with realistic distributions (ages, history answers, muscles, depths,
  needles, adverse events) taken from the anatomy and condition catalogs of :mod:`dryneedle`;
* **protocol findings** at ``protocol_issue_rate``: records that are structurally valid but
  clinically problematic (deep needling over the lung beyond 31 mm, a superficial insertion at
  12 mm, a 1500 s dwell, three needles in a first session, both sides of the thorax, an
  untrained practitioner, a needle-count mismatch, deep psoas needling under anticoagulants,
  an upper-trapezius insertion deeper than the pleura (chen-2018) without ultrasound and not
  recorded as directed away from the lung);
* **structurally invalid lines** at ``invalid_rate`` (truncated JSON, arrays or numbers instead
  of objects, missing required fields, wrong types, unknown enum values, bad dates, negative
  counts, wrong format tags), and unknown extra fields (warnings only) at
  ``unknown_field_rate``.

Everything is derived from ``random.Random(seed).random()`` (the one method whose sequence
Python guarantees across versions and platforms) and integer arithmetic: no ``hash()``, no set
order, no clock. The same arguments give the same bytes everywhere, and a shorter run is a
prefix of a longer one with the same seed.

Usage::

    python examples/generate.py --count 300 --seed 2026 --invalid-rate 0.08 \
        -o examples/sessions.jsonl

>>> import json
>>> from generate import generate_lines
>>> lines = list(generate_lines(3, seed=1, invalid_rate=0.0))
>>> [json.loads(line)["record_id"] for line in lines]
['r-000001', 'r-000002', 'r-000003']
>>> lines == list(generate_lines(3, seed=1, invalid_rate=0.0))
True
"""

from __future__ import annotations

import argparse
import bisect
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any, BinaryIO, Final, Generic, TypeVar

from dryneedle.catalog import CONDITIONS, MUSCLES

__all__ = ["FORMAT", "generate", "generate_lines", "main"]

FORMAT: Final = "dryneedle.session/1"

_T = TypeVar("_T")
_Rand = Callable[[], float]
_Record = dict[str, Any]

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
"""Same output as ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``, built once."""


class _Table(Generic[_T]):
    """A weighted choice driven by ``random()`` only (stable across Python versions)."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, pairs: Sequence[tuple[_T, float]]) -> None:
        self._items = tuple(item for item, _ in pairs)
        cum: list[float] = []
        total = 0.0
        for _, weight in pairs:
            total += weight
            cum.append(total)
        self._cum = tuple(cum)
        self._total = total

    def pick(self, r: _Rand) -> _T:
        return self._items[bisect.bisect_right(self._cum, r() * self._total)]


def _below(r: _Rand, n: int) -> int:
    """Return a uniform integer in ``[0, n)``."""
    return int(r() * n)


# --- clinical tables ---------------------------------------------------------------------------
# Weights are illustrative frequencies for synthetic data, not clinical facts.

# muscle id: (weight, typical deep depth range in mm, needle lengths in mm)
_MUSCLE_TABLE: Final[tuple[tuple[str, float, int, int, tuple[int, ...]], ...]] = (
    ("upper_trapezius", 14, 12, 25, (30, 40)),
    ("middle_trapezius", 3, 12, 20, (30, 40)),
    ("lower_trapezius", 3, 12, 20, (30, 40)),
    ("rhomboid_major", 2, 12, 17, (30,)),
    ("rhomboid_minor", 1, 12, 16, (30,)),
    ("thoracic_paraspinals", 3, 12, 25, (30, 40)),
    ("scalenes", 1, 12, 20, (30,)),
    ("pectoralis_major", 2, 12, 20, (30, 40)),
    ("pectoralis_minor", 1, 14, 22, (30, 40)),
    ("serratus_anterior", 1, 11, 15, (25, 30)),
    ("intercostals", 0.3, 11, 13, (25,)),
    ("levator_scapulae", 5, 15, 35, (40, 50)),
    ("sternocleidomastoid", 1.5, 12, 20, (25, 30)),
    ("splenius_capitis", 2, 15, 30, (40,)),
    ("suboccipitals", 1.5, 20, 35, (40, 50)),
    ("infraspinatus", 9, 15, 35, (40, 50)),
    ("supraspinatus", 3, 15, 35, (40, 50)),
    ("teres_major", 2, 15, 30, (40,)),
    ("teres_minor", 1.5, 15, 30, (40,)),
    ("deltoid", 2, 12, 25, (30, 40)),
    ("masseter", 2, 12, 20, (25, 30)),
    ("temporalis", 1.5, 12, 18, (25, 30)),
    ("lumbar_multifidus", 9, 25, 45, (50, 60)),
    ("quadratus_lumborum", 5, 30, 45, (50, 60)),
    ("lumbar_erector_spinae", 5, 20, 40, (50, 60)),
    ("psoas", 0.6, 35, 45, (60,)),
    ("gluteus_maximus", 4, 20, 40, (50, 60)),
    ("gluteus_medius", 10, 25, 45, (50, 60)),
    ("gluteus_minimus", 3, 30, 45, (50, 60)),
    ("piriformis", 4, 35, 45, (50, 60)),
    ("tensor_fasciae_latae", 2, 15, 30, (40, 50)),
    ("vastus_lateralis", 3, 20, 40, (50, 60)),
    ("vastus_medialis", 2, 15, 35, (40, 50)),
    ("rectus_femoris", 1.5, 20, 40, (50, 60)),
    ("hamstrings", 3, 20, 40, (50, 60)),
    ("adductor_longus", 1, 20, 35, (40, 50)),
    ("gastrocnemius", 8, 15, 35, (40, 50)),
    ("soleus", 3, 20, 40, (50, 60)),
    ("tibialis_anterior", 2, 15, 30, (40, 50)),
    ("fibularis_longus", 1.5, 12, 25, (30, 40)),
    ("tibialis_posterior", 0.5, 35, 45, (50, 60)),
    ("biceps_brachii", 1, 12, 25, (30, 40)),
    ("triceps_brachii", 1, 12, 30, (40,)),
    ("forearm_extensors", 4, 12, 20, (25, 30)),
    ("forearm_flexors", 2.5, 12, 20, (25, 30)),
    ("latissimus_dorsi", 1.5, 12, 20, (30, 40)),
    ("first_dorsal_interosseous", 0.8, 11, 14, (25,)),
    ("extensor_digitorum_brevis", 0.5, 11, 14, (25,)),
    ("abductor_hallucis", 0.5, 11, 16, (25, 30)),
)

# condition id: (weight, muscles treated for it; empty = every muscle)
_CONDITION_TABLE: Final[tuple[tuple[str, float, tuple[str, ...]], ...]] = (
    ("myofascial_pain_syndrome", 50, ()),
    ("spine_problems", 10, ("upper_trapezius", "levator_scapulae", "thoracic_paraspinals",
                            "lumbar_multifidus", "lumbar_erector_spinae", "splenius_capitis")),
    ("disc_issues", 6, ("lumbar_multifidus", "lumbar_erector_spinae", "quadratus_lumborum",
                        "gluteus_medius", "piriformis", "psoas")),
    ("tension_type_headache", 6, ("upper_trapezius", "suboccipitals", "splenius_capitis",
                                  "levator_scapulae", "temporalis")),
    ("whiplash", 5, ("upper_trapezius", "levator_scapulae", "splenius_capitis", "suboccipitals",
                     "sternocleidomastoid", "scalenes")),
    ("joint_problems", 5, ("infraspinatus", "supraspinatus", "deltoid", "vastus_lateralis",
                           "vastus_medialis", "rectus_femoris", "gluteus_medius",
                           "tensor_fasciae_latae", "gastrocnemius", "tibialis_anterior")),
    ("tendonitis", 5, ("infraspinatus", "supraspinatus", "forearm_extensors", "forearm_flexors",
                       "gastrocnemius", "soleus", "biceps_brachii", "fibularis_longus")),
    ("pelvic_pain", 3, ("gluteus_medius", "gluteus_maximus", "piriformis", "psoas",
                        "adductor_longus", "quadratus_lumborum")),
    ("tmj_disorders", 3, ("masseter", "temporalis", "sternocleidomastoid")),
    ("repetitive_strain_injury", 3, ("forearm_extensors", "forearm_flexors", "upper_trapezius",
                                     "infraspinatus")),
    ("migraine", 2, ("upper_trapezius", "suboccipitals", "splenius_capitis", "temporalis",
                     "sternocleidomastoid")),
    ("night_cramps", 1.5, ("gastrocnemius", "soleus", "hamstrings")),
    ("phantom_limb_pain", 0.5, ("gluteus_medius", "vastus_lateralis", "hamstrings",
                                "rectus_femoris", "lumbar_multifidus")),
    ("inflammation", 0.4, ("infraspinatus", "gastrocnemius", "forearm_extensors")),
)

_HISTORY_KEYS: Final = (
    "bleeding_disorder", "anticoagulant_therapy", "immunocompromised", "metal_allergy",
    "epilepsy", "diabetes", "vascular_disease", "prior_adverse_reaction", "acute_illness",
    "lymph_node_removal", "needle_phobia", "consent",
)
# probability of a ``true`` answer (anticoagulants depend on age, see _history)
_HISTORY_TRUE: Final = (
    ("bleeding_disorder", 0.008), ("immunocompromised", 0.02), ("metal_allergy", 0.03),
    ("epilepsy", 0.01), ("diabetes", 0.08), ("vascular_disease", 0.035),
    ("prior_adverse_reaction", 0.012), ("lymph_node_removal", 0.02),
)

_REGIONS: Final = (
    "head_face", "jaw", "neck", "shoulder", "upper_back", "chest", "abdomen", "lower_back",
    "pelvis", "hip", "thigh", "knee", "leg", "ankle_foot", "arm", "forearm", "hand",
)
_SEX = _Table([("female", 55.0), ("male", 42.0), ("other", 1.5), ("unknown", 1.0), (None, 0.5)])
_PHOBIA = _Table([("none", 90.0), ("mild", 8.5), ("severe", 1.5)])
_SITE_KIND = _Table([
    ("scar", 35.0), ("tattoo", 30.0), ("surgery", 20.0), ("injury", 6.0), ("wound", 4.0),
    ("implant", 3.0), ("lymphoedema", 1.0), ("infection", 1.0),
])
_SITE_SIDE = _Table([("left", 40.0), ("right", 40.0), ("midline", 10.0), ("bilateral", 10.0)])
_LATERALITY = _Table([("left", 40.0), ("right", 40.0), ("bilateral", 20.0)])
_COURSE = _Table([(1, 15.0), (2, 15.0), (3, 18.0), (4, 17.0), (5, 12.0), (6, 10.0), (7, 7.0),
                  (8, 6.0)])
_INTERVAL = _Table([(5, 5.0), (6, 10.0), (7, 50.0), (8, 10.0), (10, 10.0), (14, 12.0),
                    (21, 3.0)])
_LATER_COUNT = _Table([(1, 10.0), (2, 20.0), (3, 25.0), (4, 20.0), (5, 15.0), (6, 10.0)])
_DWELL = _Table([(2.0, 1.0), (5.0, 3.0), (10.0, 4.0), (30.0, 10.0), (60.0, 14.0),
                 (120.0, 12.0), (180.0, 6.0), (300.0, 14.0), (600.0, 16.0), (900.0, 10.0),
                 (1200.0, 10.0)])
_THIN = _Table([(0.16, 20.0), (0.20, 40.0), (0.25, 40.0)])
_MEDIUM = _Table([(0.20, 15.0), (0.25, 60.0), (0.30, 25.0)])
_THICK = _Table([(0.25, 40.0), (0.30, 60.0)])
_MILD_AE = _Table([
    ("bruising", 30.0), ("pain_after", 25.0), ("pain_during", 15.0), ("bleeding", 12.0),
    ("drowsiness", 5.0), ("fatigue", 5.0), ("headache", 4.0), ("aggravation", 3.0),
    ("nausea", 1.0),
])
_SIGNIFICANT_AE = _Table([
    ("fainting", 35.0), ("aggravation", 20.0), ("other", 20.0), ("nerve_irritation", 15.0),
    ("infection", 5.0),
])
_PRACTITIONERS: Final = 15  # pt-1 .. pt-15, all trained; pt-16 is the untrained one
_POOL: Final = 16  # patients in treatment at once (interleaved in the output)
_FIRST_DAY: Final = date(2024, 1, 8).toordinal()
_FIRST_SPAN_DAYS: Final = 900


class _Muscle:
    __slots__ = ("hi", "id", "lengths", "lo", "over_lung", "pleura", "region", "weight")

    def __init__(self, row: tuple[str, float, int, int, tuple[int, ...]]) -> None:
        mid, weight, lo, hi, lengths = row
        facts = MUSCLES[mid]
        self.id = mid
        self.weight = float(weight)
        self.over_lung = facts.over_lung
        self.region = facts.region.value
        limit = facts.depth_limit_mm
        if self.over_lung:  # stay below 31 mm / the catalog limit in clean records
            hi = min(hi, 30 if limit is None else int(limit) - 1)
        # Depth to the pleura (chen-2018), the smallest mean: clean records stay above it
        # unless the needle is directed away from the lung.
        self.pleura = facts.pleura_depth_for(None)
        self.lo = lo
        self.hi = hi
        self.lengths = lengths


def _check_tables() -> None:
    unknown = [row[0] for row in _MUSCLE_TABLE if row[0] not in MUSCLES]
    unknown += [row[0] for row in _CONDITION_TABLE if row[0] not in CONDITIONS]
    unknown += [m for row in _CONDITION_TABLE for m in row[2] if m not in MUSCLES]
    if unknown:  # pragma: no cover - guards catalog edits
        msg = f"generator tables name ids missing from the catalogs: {unknown}"
        raise RuntimeError(msg)


_check_tables()
_MUSCLE_BY_ID: Final = {row[0]: _Muscle(row) for row in _MUSCLE_TABLE}
_ALL_MUSCLES: Final = tuple(_MUSCLE_BY_ID.values())
_LUNG_MUSCLES = _Table([(m, m.weight) for m in _ALL_MUSCLES if m.over_lung])
_CONDITION = _Table([((cid, muscles), w) for cid, w, muscles in _CONDITION_TABLE])
_CANDIDATES: Final = {
    cid: tuple(_MUSCLE_BY_ID[i] for i in muscles) if muscles else _ALL_MUSCLES
    for cid, _, muscles in _CONDITION_TABLE
}
_CANDIDATE_TABLE: Final = {
    cid: _Table([(m, m.weight) for m in muscles]) for cid, muscles in _CANDIDATES.items()
}


def _iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


# --- patients and sessions ------------------------------------------------------------------------


class _Patient:
    """One patient's course of treatment (internal state of the generator)."""

    __slots__ = ("course", "data", "laterality", "next_day", "number", "pool",
                 "practitioner", "serial", "text")

    def __init__(self, *, serial: int, data: _Record, pool: _Table[_Muscle], laterality: str,
                 practitioner: int, first_day: int, course: int) -> None:
        self.serial = serial
        self.data = data
        self.pool = pool
        self.laterality = laterality
        self.practitioner = practitioner
        self.next_day = first_day
        self.number = 0
        self.course = course
        self.text: str | None = None  # the patient part encoded once, for generate_lines


class _Generator:
    """The clean-record generator: a pool of patients in treatment, interleaved."""

    def __init__(self, seed: int, protocol_issue_rate: float) -> None:
        self.r: _Rand = random.Random(seed).random
        self.issue_rate = protocol_issue_rate
        self.issues = 0  # protocol issues injected so far: the kinds come in turn
        self.serial = 0
        self.slots = [self._new_patient() for _ in range(_POOL)]
        self.current = self.slots[0]  # the patient of the latest record

    # patients --------------------------------------------------------------------------------

    def _new_patient(self) -> _Patient:
        r = self.r
        self.serial += 1
        first_day = _FIRST_DAY + _below(r, _FIRST_SPAN_DAYS)
        u = r()
        if u < 0.003:
            age = 7 + _below(r, 5)
        elif u < 0.033:
            age = 12 + _below(r, 6)
        elif u < 0.978:
            age = 18 + int((r() + r()) * 31.5)  # 18-80, peaked around 49
        else:
            age = 81 + _below(r, 10)
        birth = first_day - int(age * 365.25) - _below(r, 365)
        sex = _SEX.pick(r)
        conditions = self._conditions()
        pool = self._muscle_pool(conditions)
        data: _Record = {
            "patient_id": f"p-{self.serial:06d}",
            "birth_date": None if r() < 0.003 else _iso(birth),
            "sex": sex,
            "pregnancy": self._pregnancy(sex, age),
            "history": self._history(age),
            "site_findings": self._site_findings(first_day, pool),
            "conditions": [] if r() < 0.01 else [c for c, _ in conditions],
        }
        return _Patient(serial=self.serial, data=data, pool=pool, laterality=_LATERALITY.pick(r),
                        practitioner=1 + _below(r, _PRACTITIONERS), first_day=first_day,
                        course=_COURSE.pick(r))

    def _pregnancy(self, sex: str | None, age: int) -> str | None:
        u = self.r()
        if sex == "male":
            return "not_pregnant" if u < 0.1 else None
        if sex == "female" and 15 <= age <= 50:
            if u < 0.025:
                return "pregnant"
            return "unknown" if u < 0.04 else None if u < 0.06 else "not_pregnant"
        return "unknown" if u < 0.03 else None if u < 0.08 else "not_pregnant"

    def _history(self, age: int) -> _Record:
        r = self.r
        h: _Record = dict.fromkeys(_HISTORY_KEYS, False)
        for key, p in _HISTORY_TRUE:
            h[key] = r() < p
        h["anticoagulant_therapy"] = r() < (0.015 if age < 50 else 0.09 if age < 70 else 0.15)
        h["needle_phobia"] = _PHOBIA.pick(r)
        h["consent"] = r() >= 0.006
        if r() < 0.05:  # some answers unknown: null or absent
            for _ in range(1 + _below(r, 3)):
                key = _HISTORY_KEYS[_below(r, len(_HISTORY_KEYS))]
                if key in h:
                    if r() < 0.5:
                        h[key] = None
                    else:
                        del h[key]
        return h

    def _conditions(self) -> list[tuple[str, tuple[str, ...]]]:
        r = self.r
        u = r()
        count = 1 if u < 0.8 else 2 if u < 0.98 else 3
        out: list[tuple[str, tuple[str, ...]]] = []
        for _ in range(count * 3):
            c = _CONDITION.pick(r)
            if c not in out:
                out.append(c)
                if len(out) == count:
                    break
        return out

    def _muscle_pool(self, conditions: list[tuple[str, tuple[str, ...]]]) -> _Table[_Muscle]:
        r = self.r
        candidates: Sequence[_Muscle]
        if len(conditions) == 1:
            candidates = _CANDIDATES[conditions[0][0]]
            table = _CANDIDATE_TABLE[conditions[0][0]]
        else:
            union: list[_Muscle] = []
            for cid, _ in conditions:
                union.extend(m for m in _CANDIDATES[cid] if m not in union)
            candidates = union
            table = _Table([(m, m.weight) for m in candidates])
        want = min(2 + _below(r, 4), len(candidates))
        chosen: list[_Muscle] = []
        for _ in range(want * 4):
            m = table.pick(r)
            if m not in chosen:
                chosen.append(m)
                if len(chosen) == want:
                    break
        return _Table([(m, m.weight) for m in chosen])

    def _site_findings(self, first_day: int, pool: _Table[_Muscle]) -> list[_Record]:
        r = self.r
        if r() >= 0.12:
            return []
        out = []
        for _ in range(1 if r() < 0.8 else 2):
            kind = _SITE_KIND.pick(r)
            region = pool.pick(r).region if r() < 0.5 else _REGIONS[_below(r, len(_REGIONS))]
            u = r()
            if kind == "surgery":
                days = None if u < 0.2 else 10 + _below(r, 80) if u < 0.45 else \
                    100 + _below(r, 5000)
            elif kind in ("scar", "tattoo", "implant"):
                days = None if u < 0.6 else 365 + _below(r, 7000)
            else:  # wound, injury, infection, lymphoedema
                days = None if u < 0.3 else 2 + _below(r, 60)
            out.append({
                "region": region,
                "side": _SITE_SIDE.pick(r),
                "kind": kind,
                "date": None if days is None else _iso(first_day - days),
            })
        return out

    # sessions ---------------------------------------------------------------------------------

    def record(self, index: int) -> _Record:
        r = self.r
        slot = _below(r, _POOL)
        pt = self.current = self.slots[slot]
        pt.number += 1
        day = pt.next_day
        if (day - 1) % 7 == 6:  # no sessions on Sundays
            day += 1
        pt.next_day = day + _INTERVAL.pick(r)
        if pt.number >= pt.course:
            self.slots[slot] = self._new_patient()
        patient = pt.data
        if r() < 0.01:  # acute illness on the day (a "today" answer)
            patient = dict(patient)
            history = patient["history"] = dict(patient["history"])
            history["acute_illness"] = True
        number = pt.number
        count = (1 if r() < 0.6 else 2) if number == 1 else _LATER_COUNT.pick(r)
        thorax = pt.laterality if pt.laterality != "bilateral" else \
            "left" if r() < 0.5 else "right"
        insertions = [self._insertion(pt, thorax) for _ in range(count)]
        u = r()
        removed = None if u < 0.004 else count - 1 if u < 0.01 else count
        practitioner = pt.practitioner if r() < 0.85 else 1 + _below(r, _PRACTITIONERS)
        rec: _Record = {
            "format": FORMAT,
            "record_id": f"r-{index + 1:06d}",
            "patient": patient,
            "session": {
                "session_id": f"s-{pt.serial:06d}-{number}",
                "date": _iso(day),
                "number": number,
                "practitioner": {
                    "practitioner_id": f"pt-{practitioner}",
                    "dry_needling_trained": None if r() < 0.01 else True,
                },
                "pre": {
                    "history_reviewed": self._step(),
                    "physical_exam": self._step(),
                    "consent": self._step(),
                    "skin_disinfected": self._step(),
                },
                "insertions": insertions,
                "post": {"needles_removed": removed, "skin_checked": self._step()},
                "adverse_events": self._adverse_events(insertions),
            },
        }
        if r() < self.issue_rate:
            self._protocol_issue(rec, pt, thorax)
        return rec

    def _step(self) -> bool | None:
        u = self.r()
        return True if u >= 0.01 else None if u < 0.006 else False

    def _insertion(self, pt: _Patient, thorax: str) -> _Record:
        r = self.r
        m = pt.pool.pick(r)
        if m.over_lung:
            side = thorax
        elif m.id == "lumbar_multifidus" and r() < 0.03:
            side = "midline"
        elif pt.laterality == "bilateral":
            side = "left" if r() < 0.5 else "right"
        else:
            side = pt.laterality
        return self._needle(m, side, superficial=r() < (0.55 if m.over_lung else 0.2))

    def _needle(self, m: _Muscle, side: str, *, superficial: bool) -> _Record:
        r = self.r
        depth: float | None
        if superficial:
            depth = (10 + _below(r, 11)) / 2  # 5.0-10.0 mm in half millimetres
            length = 25 if r() < 0.6 else 30
            static = r() < 0.9
        else:
            length = m.lengths[_below(r, len(m.lengths))]
            hi = min(m.hi, length - 5)
            depth = (2 * m.lo + _below(r, 2 * (hi - m.lo) + 1)) / 2
            static = r() < 0.35
        if r() < 0.003:
            depth = None
        directed: bool | None = None
        if m.over_lung:  # za-bn121: direct the needle away from the lung
            u = r()
            directed = True if u < 0.8 else None if u < 0.95 else False
            if m.pleura is not None and directed is not True and depth is not None:
                depth = min(depth, int(m.pleura * 2) / 2)  # e.g. 14.5 mm under 14.6 mm
        diameter = (_THIN if length <= 30 else _MEDIUM if length <= 50 else _THICK).pick(r)
        u = r()
        return {
            "muscle": m.id,
            "side": side,
            "technique": "superficial" if superficial else "deep",
            "depth_mm": depth,
            "manipulation": "static" if static else "pistoning",
            "dwell_s": _DWELL.pick(r) if static else None,
            "needle": {"diameter_mm": diameter, "length_mm": float(length)},
            "guide_tube": True if u < 0.9 else False if u < 0.98 else None,
            "twitch_response": None if r() < 0.03 else
            r() < (0.1 if superficial else 0.3 if static else 0.6),
            "ultrasound_guided": self._ultrasound(m),
            **({"directed_away_from_lung": directed} if m.over_lung else {}),
        }

    def _ultrasound(self, m: _Muscle) -> bool | None:
        u = self.r()
        if m.id == "psoas":
            return u < 0.3
        return None if u < 0.01 else u < 0.03

    def _adverse_events(self, insertions: list[_Record]) -> list[_Record]:
        r = self.r
        u = r()
        out: list[_Record] = []
        if u < 0.2:
            out.extend(
                {"kind": _MILD_AE.pick(r), "grade": None if r() < 0.005 else "mild"}
                for _ in range(1 if r() < 0.8 else 2)
            )
        elif u < 0.2025:
            kind = _SIGNIFICANT_AE.pick(r)
            if r() < 0.1 and any(_MUSCLE_BY_ID[i["muscle"]].over_lung for i in insertions):
                kind = "pneumothorax"
            out.append({"kind": kind, "grade": "significant"})
        return out

    # protocol findings (structurally valid) -----------------------------------------------------

    def _protocol_issue(self, rec: _Record, pt: _Patient, thorax: str) -> None:
        r = self.r
        s = rec["session"]
        ins: list[_Record] = s["insertions"]
        kind = self.issues % 9  # every kind in turn, so a short file shows each of them
        self.issues += 1
        if kind == 3 and s["number"] != 1:
            kind = 2  # "three needles in session 1" only applies to first sessions
        if kind == 0:  # deep over the lung beyond 31 mm, no ultrasound (za-bn121)
            m = _LUNG_MUSCLES.pick(r)
            lung_sides = [i["side"] for i in ins[1:] if _MUSCLE_BY_ID[i["muscle"]].over_lung]
            i0 = ins[0] = self._needle(m, lung_sides[0] if lung_sides else thorax,
                                       superficial=False)
            i0["depth_mm"] = float(32 + _below(r, 7))
            i0["needle"]["length_mm"] = 40.0 if r() < 0.7 else 50.0
            i0["ultrasound_guided"] = False
        elif kind == 1:  # superficial technique at 12 mm (seed: 5-10 mm)
            ins[0]["technique"] = "superficial"
            ins[0]["depth_mm"] = 12.0
            ins[0]["needle"]["length_mm"] = 30.0
        elif kind == 2:  # static dwell beyond 20 min (seed)
            ins[0]["manipulation"] = "static"
            ins[0]["dwell_s"] = 1500.0
        elif kind == 3:  # three needles in a first session (seed, za-bn121)
            while len(ins) < 3:
                ins.append(self._insertion(pt, thorax))
            s["post"]["needles_removed"] = len(ins)
        elif kind == 4:  # both sides of the thorax in one session (za-bn121)
            m = _LUNG_MUSCLES.pick(r)
            pair = [self._needle(m, side, superficial=r() < 0.5) for side in ("left", "right")]
            ins[:2] = pair
            s["post"]["needles_removed"] = len(ins)
        elif kind == 5:  # practitioner not trained in dry needling (seed)
            s["practitioner"] = {"practitioner_id": "pt-16", "dry_needling_trained": False}
        elif kind == 6:  # fewer needles removed than inserted (seed, za-bn121 §7)
            s["post"]["needles_removed"] = len(ins) - 1
        elif kind == 7:  # deep psoas under anticoagulants (za-bn121 3.1.5)
            side = ins[0]["side"] if ins[0]["side"] != "midline" else "left"
            i0 = ins[0] = self._needle(_MUSCLE_BY_ID["psoas"], side, superficial=False)
            i0["ultrasound_guided"] = False
            patient = rec["patient"] = dict(rec["patient"])
            history = patient["history"] = dict(patient["history"])
            history["anticoagulant_therapy"] = True
        else:  # upper trapezius deeper than the pleura (chen-2018), not directed away
            m = _MUSCLE_BY_ID["upper_trapezius"]
            lung_sides = [i["side"] for i in ins[1:] if _MUSCLE_BY_ID[i["muscle"]].over_lung]
            i0 = ins[0] = self._needle(m, lung_sides[0] if lung_sides else thorax,
                                       superficial=False)
            i0["depth_mm"] = float(18 + _below(r, 7))  # 18-24 mm: beyond 14.6 and 17.4 mm
            i0["needle"]["length_mm"] = 30.0 if r() < 0.5 else 40.0
            i0["ultrasound_guided"] = False
            i0["directed_away_from_lung"] = None if r() < 0.5 else False


# --- structurally invalid variants ------------------------------------------------------------


def _own_patient(rec: _Record) -> _Record:
    """Copy the (shared) patient part of a record before changing it."""
    patient: _Record = dict(rec["patient"])
    patient["history"] = dict(patient["history"])
    rec["patient"] = patient
    return patient


def _truncated(rec: _Record, r: _Rand) -> object:
    text = _ENCODER.encode(rec)
    return text[: 10 + _below(r, len(text) - 20)]


def _nan_depth(rec: _Record, r: _Rand) -> object:
    rec["session"]["insertions"][0]["depth_mm"] = float("nan")  # pandas-style export
    return _ENCODER.encode(rec)


def _array(rec: _Record, r: _Rand) -> object:
    return [rec]


def _number(rec: _Record, r: _Rand) -> object:
    return _below(r, 1000)


def _null(rec: _Record, r: _Rand) -> object:
    return None


def _no_record_id(rec: _Record, r: _Rand) -> object:
    del rec["record_id"]
    return rec


def _empty_record_id(rec: _Record, r: _Rand) -> object:
    rec["record_id"] = ""
    return rec


def _no_format(rec: _Record, r: _Rand) -> object:
    del rec["format"]
    return rec


def _wrong_format(rec: _Record, r: _Rand) -> object:
    tags = ("dryneedle.session/2", "dryneedle.session/1.0", "dryneedle-session/1", "session/1")
    rec["format"] = tags[_below(r, len(tags))]
    return rec


def _no_session_date(rec: _Record, r: _Rand) -> object:
    del rec["session"]["date"]
    return rec


def _no_patient_id(rec: _Record, r: _Rand) -> object:
    del _own_patient(rec)["patient_id"]
    return rec


def _no_muscle(rec: _Record, r: _Rand) -> object:
    ins = rec["session"]["insertions"]
    del ins[_below(r, len(ins))]["muscle"]
    return rec


def _depth_string(rec: _Record, r: _Rand) -> object:
    ins = rec["session"]["insertions"]
    item = ins[_below(r, len(ins))]
    item["depth_mm"] = str(int(item["depth_mm"] or 15))
    return rec


def _number_string(rec: _Record, r: _Rand) -> object:
    rec["session"]["number"] = str(rec["session"]["number"])
    return rec


def _history_yes(rec: _Record, r: _Rand) -> object:
    history = _own_patient(rec)["history"]
    key = _HISTORY_KEYS[_below(r, 10)]  # a boolean answer
    history[key] = "yes" if history.get(key) else "no"
    return rec


def _removed_float(rec: _Record, r: _Rand) -> object:
    # A fractional count: 2.0 would be an integer (JSON Schema semantics, spec §6 1.1).
    rec["session"]["post"]["needles_removed"] = len(rec["session"]["insertions"]) - 0.5
    return rec


def _conditions_string(rec: _Record, r: _Rand) -> object:
    _own_patient(rec)["conditions"] = "myofascial_pain_syndrome"
    return rec


def _insertions_object(rec: _Record, r: _Rand) -> object:
    rec["session"]["insertions"] = rec["session"]["insertions"][0]
    return rec


def _bad_sex(rec: _Record, r: _Rand) -> object:
    _own_patient(rec)["sex"] = ("F", "M", "Female", "w")[_below(r, 4)]
    return rec


def _bad_muscle(rec: _Record, r: _Rand) -> object:
    ins = rec["session"]["insertions"]
    bad = ("trapezius", "upper_traps", "glute_med", "Gastrocnemius", "multifidus")
    ins[_below(r, len(ins))]["muscle"] = bad[_below(r, len(bad))]
    return rec


def _bad_side(rec: _Record, r: _Rand) -> object:
    rec["session"]["insertions"][0]["side"] = ("L", "R", "both")[_below(r, 3)]
    return rec


def _bad_technique(rec: _Record, r: _Rand) -> object:
    rec["session"]["insertions"][0]["technique"] = ("Deep", "intramuscular", "dry")[_below(r, 3)]
    return rec


def _bad_grade(rec: _Record, r: _Rand) -> object:
    events = rec["session"]["adverse_events"]
    if events:
        events[0]["grade"] = "moderate"
    else:
        events.append({"kind": "bruising", "grade": "moderate"})
    return rec


def _bad_condition(rec: _Record, r: _Rand) -> object:
    _own_patient(rec)["conditions"] = [("MPS", "M79.1", "low_back_pain")[_below(r, 3)]]
    return rec


def _bad_session_date(rec: _Record, r: _Rand) -> object:
    rec["session"]["date"] = ("2026-13-01", "20/11/2026", "2026-02-30", "2026-1-5")[_below(r, 4)]
    return rec


def _bad_birth_date(rec: _Record, r: _Rand) -> object:
    _own_patient(rec)["birth_date"] = ("09/03/1984", "1984-3-9", "1984-00-10")[_below(r, 3)]
    return rec


def _negative_removed(rec: _Record, r: _Rand) -> object:
    rec["session"]["post"]["needles_removed"] = -1
    return rec


def _number_zero(rec: _Record, r: _Rand) -> object:
    rec["session"]["number"] = 0
    return rec


# name, weight, corruption (every one yields at least one structural error)
_CORRUPTIONS = _Table([
    (_truncated, 4.0), (_nan_depth, 1.0), (_array, 2.0), (_number, 1.0), (_null, 0.5),
    (_no_record_id, 2.0), (_empty_record_id, 1.0), (_no_format, 1.0), (_wrong_format, 2.0),
    (_no_session_date, 2.0), (_no_patient_id, 1.0), (_no_muscle, 2.0), (_depth_string, 2.0),
    (_number_string, 2.0), (_history_yes, 2.0), (_removed_float, 1.0),
    (_conditions_string, 1.0), (_insertions_object, 1.0), (_bad_sex, 2.0), (_bad_muscle, 2.0),
    (_bad_side, 1.0), (_bad_technique, 1.0), (_bad_grade, 1.0), (_bad_condition, 1.0),
    (_bad_session_date, 2.0), (_bad_birth_date, 1.0), (_negative_removed, 2.0),
    (_number_zero, 1.0),
])


def _unknown_field(rec: _Record, r: _Rand) -> None:
    """Add a plausible field the format does not define (a warning, not an error)."""
    k = _below(r, 5)
    if k == 0:
        rec["clinic_id"] = f"c-{1 + _below(r, 4)}"
    elif k == 1:
        _own_patient(rec)["history"]["smoker"] = r() < 0.2
    elif k == 2:
        rec["session"]["duration_min"] = 30 + 15 * _below(r, 3)
    elif k == 3:
        ins = rec["session"]["insertions"][0]
        ins["depth_cm"] = None if ins["depth_mm"] is None else ins["depth_mm"] / 10
    else:
        rec["session"]["room"] = str(1 + _below(r, 6))


# --- public API -----------------------------------------------------------------------------------


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        msg = f"{name} must be between 0 and 1, got {value!r}"
        raise ValueError(msg)


def generate(
    n: int,
    *,
    seed: int = 0,
    invalid_rate: float = 0.05,
    protocol_issue_rate: float = 0.06,
    unknown_field_rate: float | None = None,
) -> Iterator[Any]:
    """Yield ``n`` records: decoded JSON values, or the raw text of lines that are not JSON.

    Every item is a valid input of :func:`dryneedle.records.validate_records`: a ``dict``
    for records (valid or not), a list, number or ``None`` for "not an object" variants, and a
    ``str`` for lines that are not JSON at all (truncated lines, ``NaN``).

    Args:
        n: Number of records.
        seed: Seed of the generator; the same arguments always give the same records.
        invalid_rate: Share of records made structurally invalid (errors).
        protocol_issue_rate: Share of clean records given a protocol finding (still
            structurally valid).
        unknown_field_rate: Share of otherwise valid records given an unknown extra field
            (a warning only); by default a quarter of ``invalid_rate``.

    Yields:
        One item per record, in order.

    Raises:
        ValueError: If ``n`` is negative or a rate is outside ``[0, 1]``.
    """
    rate = _check_args(n, invalid_rate, protocol_issue_rate, unknown_field_rate)
    return _generate(n, seed, invalid_rate, protocol_issue_rate, rate, lines=False)


def _check_args(
    n: int, invalid_rate: float, protocol_issue_rate: float, unknown_field_rate: float | None
) -> float:
    """Check the arguments now (not at the first ``next``); return the unknown-field rate."""
    if n < 0:
        msg = f"n must be >= 0, got {n}"
        raise ValueError(msg)
    if unknown_field_rate is None:
        unknown_field_rate = invalid_rate / 4
    _check_rate("invalid_rate", invalid_rate)
    _check_rate("protocol_issue_rate", protocol_issue_rate)
    _check_rate("unknown_field_rate", unknown_field_rate)
    return unknown_field_rate


_LINE_HEAD: Final = '{"format":' + _ENCODER.encode(FORMAT) + ',"record_id":'


def _generate(
    n: int, seed: int, invalid_rate: float, issue_rate: float, unknown_rate: float, *,
    lines: bool,
) -> Iterator[Any]:
    gen = _Generator(seed, issue_rate)
    encode = _ENCODER.encode
    # A separate stream for the corruptions: clean records do not depend on invalid_rate.
    c = random.Random(f"dryneedle-invalid-{seed}").random
    for index in range(n):
        rec = gen.record(index)
        u = c()
        if u < invalid_rate:
            item = _CORRUPTIONS.pick(c)(rec, c)
            yield item if not lines or item.__class__ is str else encode(item)
            continue
        if u - invalid_rate < unknown_rate * (1.0 - invalid_rate):
            _unknown_field(rec, c)
        if not lines:
            yield rec
            continue
        pt = gen.current
        if rec["patient"] is pt.data and len(rec) == 4:
            # The patient part is shared by the patient's records: encode it once. The
            # result is byte-identical to encoding the whole record.
            if pt.text is None:
                pt.text = encode(pt.data)
            yield (_LINE_HEAD + encode(rec["record_id"]) + ',"patient":' + pt.text
                   + ',"session":' + encode(rec["session"]) + "}")
        else:
            yield encode(rec)


def generate_lines(
    n: int,
    *,
    seed: int = 0,
    invalid_rate: float = 0.05,
    protocol_issue_rate: float = 0.06,
    unknown_field_rate: float | None = None,
) -> Iterator[str]:
    """Yield ``n`` JSONL lines (without newline): :func:`generate` serialised compactly.

    Arguments are those of :func:`generate`; each item is encoded exactly as
    ``json.dumps(item, separators=(",", ":"), ensure_ascii=False)`` unless it already is a
    raw (non-JSON) line.
    """
    rate = _check_args(n, invalid_rate, protocol_issue_rate, unknown_field_rate)
    return _generate(n, seed, invalid_rate, protocol_issue_rate, rate, lines=True)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        msg = f"expected a number between 0 and 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        description="Generate deterministic synthetic dryneedle session records (JSONL)."
    )
    parser.add_argument("-n", "--count", type=int, default=300, help="records (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--invalid-rate", type=_rate, default=0.05,
                        help="share of structurally invalid records (default 0.05)")
    parser.add_argument("--protocol-issue-rate", type=_rate, default=0.06,
                        help="share of records with a protocol finding (default 0.06)")
    parser.add_argument("--unknown-field-rate", type=_rate, default=None,
                        help="share with an unknown extra field (default invalid-rate / 4)")
    parser.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    lines = generate_lines(args.count, seed=args.seed, invalid_rate=args.invalid_rate,
                           protocol_issue_rate=args.protocol_issue_rate,
                           unknown_field_rate=args.unknown_field_rate)
    if args.output == "-":
        _write(lines, sys.stdout.buffer)
    else:
        with open(args.output, "wb") as fh:
            _write(lines, fh)
    return 0


def _write(lines: Iterator[str], fh: BinaryIO) -> None:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= 10000:
            batch.append("")
            fh.write("\n".join(batch).encode("utf-8"))
            batch = []
    if batch:
        batch.append("")
        fh.write("\n".join(batch).encode("utf-8"))
    fh.flush()


if __name__ == "__main__":
    sys.exit(main())
