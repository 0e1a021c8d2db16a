"""Per-session protocol checks: one session against the policy's limits and the catalog.

Private module behind :mod:`dryneedle.protocol` (import the public names from there). It holds
:func:`check_session_findings` (screens the patient if needed) and
:func:`check_screened_session` (the checks given the screening outcome, which the record
validator calls directly): depth, lung, dwell, needle count and size, bleeding risk,
screening, practitioner, pre- and post-steps and conditions. A new per-session check goes into
:func:`check_screened_session`, its rule into :mod:`dryneedle._protocol.rules`.

May import: the model, reference data, findings, policy, screening and
:mod:`dryneedle._protocol.rules`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Final

from dryneedle._protocol.rules import (
    BLEEDING_NO_HAEMOSTASIS,
    BLEEDING_PRECAUTION,
    BLEEDING_UNCHECKED,
    BLEEDING_UNKNOWN,
    CONDITION_NOT_INDICATION,
    DEPTH_BEYOND_LONGEST,
    DEPTH_BEYOND_NEEDLE,
    DEPTH_DEEP,
    DEPTH_NOT_POSITIVE,
    DEPTH_SUPERFICIAL,
    DEPTH_UNKNOWN,
    DWELL_RANGE,
    DWELL_UNKNOWN,
    GUIDE_TUBE,
    INSERTIONS_UNCHECKED,
    LUNG_BOTH_SIDES,
    LUNG_BOTH_SIDES_UNCHECKED,
    LUNG_DEEP,
    LUNG_DEPTH,
    LUNG_PLEURA,
    LUNG_UNCHECKED,
    MUSCLE_UNKNOWN,
    NEEDLE_IMPLAUSIBLE,
    NEEDLE_LENGTH_UNKNOWN,
    NEEDLES_FIRST,
    NEEDLES_UNCHECKED,
    POST_NEEDLES,
    POST_NEEDLES_UNKNOWN,
    POST_SKIN,
    POST_SKIN_UNKNOWN,
    PRACTITIONER_UNKNOWN,
    PRACTITIONER_UNTRAINED,
    PRE_MISSING,
    PRE_UNKNOWN,
    SCREENING_NEEDS_REVIEW,
    SCREENING_NOT_ELIGIBLE,
    SCREENING_SITE_EXCLUDED,
    ProtocolTable,
    emit,
    emit_at,
    protocol_table,
)
from dryneedle.catalog import CONDITIONS, MUSCLES, Muscle
from dryneedle.findings import Decision, Finding
from dryneedle.model import Insertion, Manipulation, Patient, Session, Sex, Side, Technique
from dryneedle.policy import Policy
from dryneedle.screening import ScreeningResult, screen

__all__ = ["check_screened_session", "check_session_findings"]


_INF: Final = math.inf
# A plain dict (faster to read than the catalog's read-only view), also asked for None (an
# unreadable muscle in a partial record: not in the catalog).
_MUSCLES_BY_ID: Final[dict[str | None, Muscle]] = {m.id: m for m in MUSCLES.values()}
# Muscle.pleura_depth_for of every muscle with pleura depths, for each sex (None: unknown).
_PLEURA: Final[dict[tuple[str, Sex | None], float | None]] = {
    (m.id, sex): m.pleura_depth_for(sex)
    for m in MUSCLES.values() if m.pleura_depth_mm for sex in (*Sex, None)
}
# The message of protocol.lung.deep_technique for each muscle over the lung, made once.
_DEEP_OVER_LUNG: Final = {
    m.id: f"deep technique over the lung ({m.id}): superficial is preferred"
    for m in MUSCLES.values() if m.over_lung
}
_NOT_INDICATIONS: Final = frozenset(c.id for c in CONDITIONS.values() if not c.indication)
# The model converts enum values to members and refuses mistyped answers, so members are
# compared by identity. Anything that is not exactly superficial / pistoning / left / right is
# read the unsafe way (deep, static with a dwell to check, either side).
_SUPERFICIAL: Final = Technique.SUPERFICIAL
_PISTONING: Final = Manipulation.PISTONING
_LEFT: Final = Side.LEFT
_RIGHT: Final = Side.RIGHT


def _mm(value: float) -> str:
    return f"{value:g} mm"


# --- per-session checks --------------------------------------------------------------------------


def check_session_findings(
    session: Session,
    *,
    patient: Patient | None,
    screening: ScreeningResult | None,
    policy: Policy,
    on: date | None = None,
) -> list[Finding]:
    """Return every per-session protocol finding (no series checks) for one session.

    This is the function :class:`dryneedle.records.Validator` calls for each record; it makes
    one pass over the insertions, raises no exception on the valid path and builds path
    strings only for findings.

    Patient-dependent rules (bleeding risk, screening ``not_eligible`` / ``needs_review``,
    excluded sites, the treated conditions, the depth to the pleura by sex) need the patient.
    When ``patient`` is ``None`` (not given, or its part of the record was unreadable) every
    answer counts as unknown (fail closed, SPEC §4 1.1): the bleeding risk is unknown, the sex
    is unknown, and a needled session gets the ``needs_review`` warning. When a patient is
    given without a ``screening`` result, the patient is screened here (on the session's date,
    for its insertions).

    Args:
        session: The session.
        patient: The session's patient, or ``None`` when unknown.
        screening: The screening result for this record (from
            :func:`dryneedle.screening.screen_for_record`), or ``None``.
        policy: The policy.
        on: Evaluation date when the patient must be screened here (default: the session date).

    Returns:
        The findings, in order: insertions (in order), the set of insertions, screening,
        practitioner, pre-steps, post-steps, conditions.
    """
    if patient is not None and screening is None and session.insertions:
        screening = screen(patient, on=on or session.date, sites=session.insertions,
                           policy=policy)
    not_eligible = screening is not None and screening.decision is Decision.NOT_ELIGIBLE
    review = None
    if screening is not None and screening.decision is Decision.NEEDS_REVIEW:
        review = screening.missing
    excluded: frozenset[int] = frozenset()
    if screening is not None and session.insertions:
        excluded = screening.excluded_indices
    return check_screened_session(session, patient, not_eligible, excluded, protocol_table(policy),
                                  review)


def check_screened_session(
    session: Session,
    patient: Patient | None,
    not_eligible: bool,
    excluded: frozenset[int],
    t: ProtocolTable,
    review: Sequence[str] | None = None,
) -> list[Finding]:
    """Run the per-session checks, given the screening outcome (the record validator's path).

    :func:`check_session_findings` calls it after screening; :class:`dryneedle.records.Validator`
    calls it with the outcome of its own screen. Raises no exception on the valid path.

    Args:
        session: The session.
        patient: The session's patient, or ``None`` when unknown (every answer counts as
            unknown: fail closed).
        not_eligible: Whether screening decided ``not_eligible``.
        excluded: Indices of the insertions screening excluded.
        t: The policy's table (:func:`~dryneedle.protocol.protocol_table`).
        review: When screening decided ``needs_review``, the paths of the unknown answers
            (``ScreeningResult.missing``); ``None`` otherwise.

    Returns:
        The findings, in the order :func:`check_session_findings` gives.
    """
    out: list[Finding] = []
    # In a partial record (SPEC section 6, 1.1) an unreadable value is None, whatever the
    # model's annotation says: the wider annotations below say so to the type checker (a
    # cast would be a function call per value at run time).
    readable: tuple[Insertion, ...] | None = session.insertions
    unreadable = readable is None  # a record whose list of insertions could not be read
    insertions: tuple[Insertion, ...] = () if readable is None else readable
    if unreadable:
        emit(out, t, INSERTIONS_UNCHECKED, "session.insertions",
             "the insertions could not be read: none of them could be checked, and the "
             "session counts as needled")
    n = len(insertions)

    bleeding = False
    bleeding_unknown = True  # no patient: every answer is unknown (fail closed)
    sex: Sex | None = None
    if patient is not None:
        h = patient.history
        bleeding = h.bleeding_disorder is True or h.anticoagulant_therapy is True
        bleeding_unknown = not bleeding and (
            h.bleeding_disorder is None or h.anticoagulant_therapy is None
        )
        sex = patient.sex

    (sup_min, sup_max, deep_min, lung_max, margin, dwell_min, dwell_max, diam_min, diam_max,
     len_min, len_max) = t.limits
    muscles_get = _MUSCLES_BY_ID.get
    left = right = False
    midline = lung = 0
    maybe_left = maybe_right = False  # insertions possibly over the lung, and their sides
    maybe_lung = maybe_both = 0
    for i, ins in enumerate(insertions):
        name: str | None = ins.muscle
        muscle = muscles_get(name)  # None for an unknown (or unreadable: None) muscle
        technique: Technique | None = ins.technique
        deep = technique is not _SUPERFICIAL
        depth = ins.depth_mm
        side: Side | None = ins.side
        needle = ins.needle
        length = needle.length_mm
        lung_muscle: Muscle | None = None
        if muscle is not None and side is not None:  # the usual case: both known
            if muscle.over_lung:
                lung_muscle = muscle
                lung += 1
                if side is _LEFT:
                    left = True
                elif side is _RIGHT:
                    right = True
                else:
                    midline += 1
        else:
            if muscle is None:
                # Unknown (or, in a record, unreadable): the catalog's facts are unknown, so
                # the insertion counts as possibly over the lung (fail closed).
                if name is not None:
                    emit_at(out, t, MUSCLE_UNKNOWN, i, ".muscle",
                            "muscle is not in the anatomy catalog: lung and haemostasis facts "
                            "unknown")
                emit_at(out, t, LUNG_UNCHECKED, i, "",
                        "muscle unknown: counted as possibly over the lung"
                        + (" on either side" if side is None else ""))
            elif muscle.over_lung:  # and the side is unknown
                emit_at(out, t, LUNG_UNCHECKED, i, ".side",
                        f"{muscle.id} overlies the lung and the side is unknown: counted as "
                        "either side")
            if muscle is None or muscle.over_lung:
                maybe_lung += 1
                if side is _LEFT:
                    maybe_left = True
                elif side is _RIGHT:
                    maybe_right = True
                else:
                    maybe_both += 1
                if muscle is not None:
                    lung_muscle = muscle

        # Depth.
        if depth is None:
            emit_at(out, t, DEPTH_UNKNOWN, i, ".depth_mm",
                    "depth is not recorded: depth limits cannot be checked"
                    + (" (over the lung)" if lung_muscle is not None else ""))
        elif not 0.0 < depth < _INF:
            emit_at(out, t, DEPTH_NOT_POSITIVE, i, ".depth_mm",
                    "depth must be a positive finite number of millimetres")
        else:
            if technique is None:  # unreadable: only what holds for every technique is known
                if depth < sup_min or sup_max < depth <= deep_min:
                    emit_at(out, t, DEPTH_SUPERFICIAL, i, ".depth_mm",
                            f"technique unknown: {_mm(depth)} is outside the range of every "
                            "technique")
                else:
                    emit_at(out, t, DEPTH_UNKNOWN, i, ".depth_mm",
                            "technique unknown: the depth range of the technique cannot be "
                            "checked")
            elif not deep:
                if not sup_min <= depth <= sup_max:
                    emit_at(out, t, DEPTH_SUPERFICIAL, i, ".depth_mm",
                            f"superficial technique at {_mm(depth)} is outside "
                            f"{sup_min:g}-{sup_max:g} mm")
            elif not depth > deep_min:
                emit_at(out, t, DEPTH_DEEP, i, ".depth_mm",
                        f"deep technique at {_mm(depth)} is not deeper than {_mm(deep_min)}")
            if length is not None and not depth <= length:
                emit_at(out, t, DEPTH_BEYOND_NEEDLE, i, ".depth_mm",
                        f"depth {_mm(depth)} is beyond the needle's length {_mm(length)}")
            if depth > len_max:  # whatever length is recorded: no needle is that long
                emit_at(out, t, DEPTH_BEYOND_LONGEST, i, ".depth_mm",
                        f"depth {_mm(depth)} is beyond the longest plausible needle "
                        f"({_mm(len_max)})")
            if lung_muscle is not None and ins.ultrasound_guided is not True:
                pleura = None  # lung_muscle.pleura_depth_for(sex), read from a table
                if lung_muscle.pleura_depth_mm:
                    pleura = _PLEURA.get((lung_muscle.id, sex))
                    if pleura is None:  # a sex the table does not know: ask the catalog
                        pleura = lung_muscle.pleura_depth_for(sex)
                if (pleura is not None and ins.directed_away_from_lung is not True
                        and depth > pleura - margin):
                    emit(out, t, LUNG_PLEURA, f"session.insertions[{i}].depth_mm",
                          f"{lung_muscle.id}: {_mm(depth)} is deeper than the pleura "
                          f"({_mm(pleura - margin)}, {_sex_basis(sex)}) without ultrasound "
                          "guidance, and the needle is "
                          + ("not directed away from the lung"
                             if ins.directed_away_from_lung is False
                             else "not recorded as directed away from the lung"),
                          _pleura_sources(t, lung_muscle))
                limit = lung_muscle.depth_limit_mm
                if limit is not None:
                    if not depth <= limit:
                        emit_at(out, t, LUNG_DEPTH, i, ".depth_mm",
                                f"{lung_muscle.id} overlies the lung: {_mm(depth)} is beyond "
                                f"its {_mm(limit)} limit without ultrasound guidance")
                elif not depth < lung_max:
                    emit(out, t, LUNG_DEPTH, f"session.insertions[{i}].depth_mm",
                          f"{lung_muscle.id} overlies the lung: {_mm(depth)} reaches the "
                          f"{_mm(lung_max)} limit without ultrasound guidance",
                          t.lung_policy_sources)
        if muscle is None:  # possibly over the lung: its warnings hold, as assumptions
            if (depth is not None and 0.0 < depth < _INF and not depth < lung_max
                    and ins.ultrasound_guided is not True):
                emit_at(out, t, LUNG_UNCHECKED, i, ".depth_mm",
                        f"muscle unknown: {_mm(depth)} reaches the over-lung limit of "
                        f"{_mm(lung_max)} without ultrasound guidance, if it overlies the lung")
            if deep:
                emit_at(out, t, LUNG_DEEP, i, ".technique",
                        "muscle unknown: deep (or unknown) technique possibly over the lung")
        elif lung_muscle is not None and deep:
            emit_at(out, t, LUNG_DEEP, i, ".technique",
                    _DEEP_OVER_LUNG[lung_muscle.id] if technique is not None else
                    f"technique unknown over the lung ({lung_muscle.id}): counted as deep")

        # Dwell.
        dwell = ins.dwell_s
        if ins.manipulation is not _PISTONING:  # static: the dwell is checked
            if dwell is None:
                emit_at(out, t, DWELL_UNKNOWN, i, ".dwell_s",
                        "dwell time of a static insertion is not recorded")
            elif not dwell_min <= dwell <= dwell_max:
                emit_at(out, t, DWELL_RANGE, i, ".dwell_s",
                        f"static dwell {dwell:g} s is outside {dwell_min:g}-{dwell_max:g} s")
        elif dwell is not None and not 0.0 <= dwell <= dwell_max:  # recorded: still a dwell
            emit_at(out, t, DWELL_RANGE, i, ".dwell_s",
                    f"recorded dwell {dwell:g} s is outside 0-{dwell_max:g} s")

        # Needle plausibility.
        diameter = needle.diameter_mm
        if diameter is not None and not diam_min <= diameter <= diam_max:
            emit_at(out, t, NEEDLE_IMPLAUSIBLE, i, ".needle.diameter_mm",
                    f"needle diameter {_mm(diameter)} is outside {diam_min:g}-{diam_max:g} mm")
        if length is None:
            if deep:
                emit_at(out, t, NEEDLE_LENGTH_UNKNOWN, i, ".needle.length_mm",
                        "needle length of a deep insertion is not recorded: the depth cannot "
                        "be checked against it")
        elif not len_min <= length <= len_max:
            emit_at(out, t, NEEDLE_IMPLAUSIBLE, i, ".needle.length_mm",
                    f"needle length {_mm(length)} is outside {len_min:g}-{len_max:g} mm")
        if ins.guide_tube is False:
            emit_at(out, t, GUIDE_TUBE, i, ".guide_tube", "no guide tube was used")

        # Bleeding risk.
        if muscle is not None:
            if bleeding:
                if deep and not muscle.palpable_haemostasis:
                    emit_at(out, t, BLEEDING_NO_HAEMOSTASIS, i, "",
                            f"bleeding risk: deep needling of {muscle.id}, where haemostasis "
                            "by palpation is impossible")
                else:
                    emit_at(out, t, BLEEDING_PRECAUTION, i, "",
                            "bleeding risk: light technique and haemostasis by palpation")
            elif bleeding_unknown and deep and not muscle.palpable_haemostasis:
                emit_at(out, t, BLEEDING_UNKNOWN, i, "",
                        f"bleeding risk unknown: deep needling of {muscle.id}, where "
                        "haemostasis by palpation is impossible")
        elif bleeding and not deep:
            emit_at(out, t, BLEEDING_PRECAUTION, i, "",
                    "bleeding risk: light technique and haemostasis by palpation")
        elif (bleeding or bleeding_unknown) and deep:
            emit_at(out, t, BLEEDING_UNCHECKED, i, "",
                    ("bleeding risk" if bleeding else "bleeding risk unknown")
                    + ": muscle unknown, counted as where haemostasis by palpation is impossible")

        # Screening.
        if excluded and i in excluded:
            emit_at(out, t, SCREENING_SITE_EXCLUDED, i, "",
                    "this site was excluded by screening but was needled")

    # The set of insertions.
    if lung > 1 and ((left and right) or midline):
        emit(out, t, LUNG_BOTH_SIDES, "session.insertions",
              "over-lung insertions on both sides of the thorax in one session"
              + (" (a midline insertion counts as either side)" if midline else ""))
    # Could the insertions whose muscle or side is unknown be on both sides?
    if (maybe_lung and lung + maybe_lung > 1
            and not (lung > 1 and ((left and right) or midline))
            and (maybe_both or midline or (left or maybe_left) + (right or maybe_right) > 1)):
        emit(out, t, LUNG_BOTH_SIDES_UNCHECKED, "session.insertions",
             "insertions whose muscle or side is unknown may be over the lung on both "
             "sides of the thorax")
    number: int | None = session.number
    if number == 1 and n > t.first_max:
        emit(out, t, NEEDLES_FIRST, "session.insertions",
              f"{n} needles in the first session; at most {t.first_max}")
    elif number is None and n > t.first_max:
        emit(out, t, NEEDLES_UNCHECKED, "session.number",
             f"session number unknown: {n} needles would exceed the first session's "
             f"{t.first_max}")

    if n or unreadable:
        if not_eligible:
            emit(out, t, SCREENING_NOT_ELIGIBLE, "session",
                  "the patient was screened not_eligible but was needled")
        elif patient is None:
            emit(out, t, SCREENING_NEEDS_REVIEW, "session",
                  "the patient is unknown (every screening answer unknown) but was needled: "
                  "the record cannot show a clinician's review")
        elif review is not None:
            emit(out, t, SCREENING_NEEDS_REVIEW, "session",
                  "the patient was screened needs_review but was needled; unknown: "
                  + (", ".join(review) or "an answer screening needs"))
        trained = session.practitioner.dry_needling_trained
        if trained is not True:
            if trained is False:
                emit(out, t, PRACTITIONER_UNTRAINED,
                      "session.practitioner.dry_needling_trained",
                      "the practitioner is not trained in dry needling")
            else:
                emit(out, t, PRACTITIONER_UNKNOWN, "session.practitioner.dry_needling_trained",
                      "the practitioner's dry needling training is not recorded")
        pre = session.pre
        if not (pre.history_reviewed is True and pre.physical_exam is True
                and pre.consent is True and pre.skin_disinfected is True):
            _check_pre(out, t, pre.history_reviewed, "history_reviewed")
            _check_pre(out, t, pre.physical_exam, "physical_exam")
            _check_pre(out, t, pre.consent, "consent")
            _check_pre(out, t, pre.skin_disinfected, "skin_disinfected")

    post = session.post
    removed = post.needles_removed
    if unreadable:
        pass  # how many were inserted is unknown
    elif removed is None:
        if n:
            emit(out, t, POST_NEEDLES_UNKNOWN, "session.post.needles_removed",
                  f"the number of needles removed is not recorded ({n} inserted)")
    elif removed != n:
        emit(out, t, POST_NEEDLES, "session.post.needles_removed",
              f"{removed} needles removed but {n} inserted")
    skin_checked = post.skin_checked
    if (n or unreadable) and skin_checked is not True:
        if skin_checked is False:
            emit(out, t, POST_SKIN, "session.post.skin_checked",
                  "the skin was not checked after needling")
        else:
            emit(out, t, POST_SKIN_UNKNOWN, "session.post.skin_checked",
                  "the skin check after needling is not recorded")

    if patient is not None:
        conditions = patient.conditions
        if conditions and not _NOT_INDICATIONS.isdisjoint(conditions):
            for j, cid in enumerate(conditions):
                if cid in _NOT_INDICATIONS:  # an unreadable id (None) is not in it
                    emit(out, t, CONDITION_NOT_INDICATION, f"patient.conditions[{j}]",
                          f"{cid} is not an indication for dry needling")
    return out


def _sex_basis(sex: Sex | None) -> str:
    """Whose mean the pleura depth is (for the message)."""
    if sex is Sex.MALE:
        return "the male mean"
    if sex is Sex.FEMALE:
        return "the female mean"
    return "the smaller mean, as the sex is other or unknown"


def _pleura_sources(t: ProtocolTable, muscle: Muscle) -> tuple[str, ...]:
    """The muscle's own pleura sources, then the pleura rule's (and its policy's)."""
    return tuple(dict.fromkeys((*muscle.pleura_sources, *t.rules[LUNG_PLEURA.id][1])))


def _check_pre(out: list[Finding], t: ProtocolTable, value: bool | None, step: str) -> None:
    if value is False:
        emit(out, t, PRE_MISSING[step], f"session.pre.{step}",
              f"pre-treatment step {step} was not done")
    elif value is not True:  # unknown (never read as done)
        emit(out, t, PRE_UNKNOWN[step], f"session.pre.{step}",
              f"pre-treatment step {step} is not recorded")
