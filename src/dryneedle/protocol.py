"""Protocol validation: what was done in a session, checked against cited protocol limits.

:func:`validate_session` checks one session (and, with ``previous``, the patient's earlier
sessions) and returns a :class:`ProtocolReport` with *every* finding; it never raises on
clinical data. Every limit is read from the :class:`~dryneedle.policy.Policy` (or, for a
muscle's own depth limit, from the anatomy catalog), and every rule is registered with its
sources (see :func:`dryneedle.findings.all_rules`, category ``protocol`` and ``series``).

What is checked (SPEC section 4, default policy):

* depth: superficial technique 5-10 mm inclusive (seed, baldry-2002); deep technique deeper
  than 10 mm (seed); never deeper than the needle is long; a depth must be a positive finite
  number; an unrecorded depth is a warning;
* lung: over a muscle that overlies the lung, a depth beyond the muscle's catalog limit
  (rhomboids: 19 mm, valera-calero-rhomboid) or, where none is given, at or beyond 31 mm
  (za-bn121) without ultrasound guidance is an error; deep technique there is a warning
  (kalichman-2010); over-lung needling of both sides of the thorax in one session is an error
  (za-bn121);
* dwell: a static insertion stays 2 s to 20 min inclusive (seed); pistoning needs no dwell,
  but a recorded dwell must be 0 s to the static maximum whatever the manipulation;
* pleura: over a muscle whose depth to the pleura the catalog gives (upper trapezius: 14.6 mm
  female, other or unknown sex, 17.4 mm male, chen-2018, means), deeper without ultrasound and
  without the needle directed away from the lung (unknown counts as not) is an error;
* physical checks: deeper than the policy's longest plausible needle (150 mm) is an error
  whatever length is recorded; a deep insertion with no needle length is a warning;
* needle count: session 1 uses at most 2 needles (seed, za-bn121); a later session adds
  needles only after a tolerated previous session (warning otherwise, seed);
* bleeding risk (bleeding disorder or antithrombotics): deep needling of a muscle without
  palpable haemostasis is an error, every other site carries a precaution (za-bn121,
  apta-2013, munoz-2022);
* screening: needling a patient screened ``not_eligible``, or a site screening excluded, is an
  error; needling a patient screened ``needs_review`` is a warning naming the unknown answers;
  without a patient every answer counts as unknown (fail closed);
* practitioner and steps: an untrained practitioner, a missing pre-step (history reviewed,
  physical exam, consent, skin disinfected), a needle count removed different from inserted
  or an unchecked skin are errors, unknown ones warnings; no guide tube is informational;
* plausibility: a needle diameter or length outside the policy's ranges is a warning; a
  condition that is not an indication (e.g. inflammation as the target) is a warning.

Series checks (:class:`SeriesIndex`, :func:`validate_series`) keep one small fixed-size
summary per patient and check that session numbers strictly increase with dates, that session 1
comes first, that no two sessions fall on one day, and that needles are not added after a
poorly tolerated session. :func:`series_summary` reduces a session to what they need, so that
worker processes can validate records and one pass runs the series checks
(:meth:`SeriesIndex.add_summary`).

This module is the public face of the protocol rules; the code lives in private modules, which
it imports (so importing it registers every protocol and series rule):
:mod:`!dryneedle._protocol.rules` (the rule declarations and the per-policy table),
:mod:`!dryneedle._protocol.session` (the per-session checks) and
:mod:`!dryneedle._protocol.series` (the series checks). Import from here. This module may
import the model, reference data, findings, policy, screening and those private modules.

>>> from datetime import date
>>> from dryneedle.model import (Insertion, Manipulation, Needle, PostSteps, Practitioner,
...     PreSteps, Session, Side, Technique)
>>> from dryneedle.protocol import validate_session
>>> needle = Needle(diameter_mm=0.3, length_mm=30.0)
>>> session = Session(
...     session_id="s-1", date=date(2026, 11, 20), number=1,
...     practitioner=Practitioner(practitioner_id="pt-1", dry_needling_trained=True),
...     pre=PreSteps(history_reviewed=True, physical_exam=True, consent=True,
...                  skin_disinfected=True),
...     insertions=(
...         Insertion(muscle="rhomboid_major", side=Side.LEFT, technique=Technique.DEEP,
...                   depth_mm=22.0, manipulation=Manipulation.PISTONING, needle=needle,
...                   guide_tube=True),
...         Insertion(muscle="gluteus_medius", side=Side.RIGHT,
...                   technique=Technique.SUPERFICIAL, depth_mm=8.0,
...                   manipulation=Manipulation.STATIC, dwell_s=1.0, needle=needle,
...                   guide_tube=True),
...     ),
...     post=PostSteps(needles_removed=2, skin_checked=True))
>>> report = validate_session(session)
>>> report.valid
False
>>> [(f.code, f.severity.value, f.path) for f in report.findings]  # doctest: +NORMALIZE_WHITESPACE
[('protocol.lung.depth_limit', 'error', 'session.insertions[0].depth_mm'),
 ('protocol.lung.deep_technique', 'warning', 'session.insertions[0].technique'),
 ('protocol.dwell.range', 'error', 'session.insertions[1].dwell_s'),
 ('protocol.screening.needs_review', 'warning', 'session')]
"""


from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import attrs

from dryneedle._protocol.rules import (  # the rules, importable from here as before
    BLEEDING_NO_HAEMOSTASIS,  # noqa: F401
    BLEEDING_PRECAUTION,  # noqa: F401
    BLEEDING_UNCHECKED,  # noqa: F401
    BLEEDING_UNKNOWN,  # noqa: F401
    CONDITION_NOT_INDICATION,  # noqa: F401
    DEPTH_BEYOND_NEEDLE,  # noqa: F401
    DEPTH_DEEP,  # noqa: F401
    DEPTH_NOT_POSITIVE,  # noqa: F401
    DEPTH_SUPERFICIAL,  # noqa: F401
    DEPTH_UNKNOWN,  # noqa: F401
    DWELL_RANGE,  # noqa: F401
    DWELL_UNKNOWN,  # noqa: F401
    GUIDE_TUBE,  # noqa: F401
    INSERTIONS_UNCHECKED,  # noqa: F401
    LUNG_BOTH_SIDES,  # noqa: F401
    LUNG_BOTH_SIDES_UNCHECKED,  # noqa: F401
    LUNG_DEEP,  # noqa: F401
    LUNG_DEPTH,  # noqa: F401
    LUNG_UNCHECKED,  # noqa: F401
    MUSCLE_UNKNOWN,  # noqa: F401
    NEEDLE_IMPLAUSIBLE,  # noqa: F401
    NEEDLES_FIRST,  # noqa: F401
    NEEDLES_INCREASE,
    NEEDLES_UNCHECKED,  # noqa: F401
    POST_NEEDLES,  # noqa: F401
    POST_NEEDLES_UNKNOWN,  # noqa: F401
    POST_SKIN,  # noqa: F401
    POST_SKIN_UNKNOWN,  # noqa: F401
    PRACTITIONER_UNKNOWN,  # noqa: F401
    PRACTITIONER_UNTRAINED,  # noqa: F401
    PRE_MISSING,  # noqa: F401
    PRE_UNKNOWN,  # noqa: F401
    SCREENING_NOT_ELIGIBLE,  # noqa: F401
    SCREENING_SITE_EXCLUDED,  # noqa: F401
    SERIES_FIRST,
    SERIES_NEEDLES,  # noqa: F401
    SERIES_NUMBER_ORDER,  # noqa: F401
    SERIES_SAME_DAY,  # noqa: F401
    ProtocolTable,
    emit,
    poor_tolerance,
    protocol_table,
    rule_ids,
    tolerated,
)
from dryneedle._protocol.series import (
    SeriesIndex,
    pair_checks,
    series_summary,
    validate_series,
)
from dryneedle._protocol.session import check_screened_session, check_session_findings
from dryneedle._version import __version__
from dryneedle.exports import present_here
from dryneedle.findings import Decision, Finding, Severity
from dryneedle.model import Patient, Session
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.screening import ScreeningResult, screen

__all__ = [
    "ProtocolReport",
    "ProtocolTable",
    "SeriesIndex",
    "check_screened_session",
    "check_session_findings",
    "protocol_table",
    "rule_ids",
    "series_summary",
    "tolerated",
    "validate_series",
    "validate_session",
]


# --- the report ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProtocolReport:
    """The outcome of :func:`validate_session`.

    Attributes:
        findings: Every protocol (``protocol.*``) and series (``series.*``) finding, with
            record-rooted paths.
        valid: ``True`` when no finding has severity ``error``.
        decision: The screening decision when a patient was given, else ``None``.
        screening: The screening result the protocol rules used (its own findings are not
            repeated in :attr:`findings`).
        policy: Fingerprint of the policy used.
        policy_name: Name of the policy used.
        version: Library version.
    """

    findings: tuple[Finding, ...]
    valid: bool
    decision: Decision | None = None
    screening: ScreeningResult | None = attrs.field(default=None, eq=False, repr=False)
    policy: str
    policy_name: str
    version: str = __version__

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "valid": self.valid,
            "decision": None if self.decision is None else self.decision.value,
            "findings": [f.as_dict() for f in self.findings],
            "policy": {"name": self.policy_name, "fingerprint": self.policy},
            "version": self.version,
        }


def validate_session(
    session: Session,
    *,
    patient: Patient | None = None,
    previous: Sequence[Session] = (),
    policy: Policy = DEFAULT_POLICY,
    on: date | None = None,
) -> ProtocolReport:
    """Validate one session against the protocol and return every finding.

    Args:
        session: The session.
        patient: Its patient; enables the screening-dependent and bleeding-risk rules (the
            patient is screened on ``on`` or the session's date, for its insertions).
        previous: The patient's earlier sessions. The latest one before ``session`` (by date,
            then number) decides whether needles may be added; series checks compare
            ``session`` with each of them (none run when ``previous`` is empty).
        policy: The policy.
        on: Evaluation date of the screening (default: the session's date).

    Returns:
        The :class:`ProtocolReport`; never raises on clinical data.
    """
    t = protocol_table(policy)
    screening = None
    if patient is not None:
        screening = screen(patient, on=session.date if on is None else on,
                           sites=session.insertions, policy=policy)
    out = check_session_findings(session, patient=patient, screening=screening, policy=policy)
    others = [p for p in previous if p is not session]
    if others:
        key = (session.date, session.number)
        latest: Session | None = None
        latest_key = key
        series: list[Finding] = []
        order_error = False
        for p in others:
            p_key = (p.date, p.number)
            order_error |= pair_checks(series, t, p_key[0], p_key[1], key[0], key[1])
            if p_key < key and (latest is None or p_key > latest_key):
                latest, latest_key = p, p_key
        if latest is None and session.number != 1 and not order_error:
            emit(series, t, SERIES_FIRST, "session.number",
                  f"this is the earliest session given but is number {session.number}, not 1")
        seen: set[tuple[str, str]] = set()
        for f in series:  # one finding per code and path, however many sessions conflict
            if (f.code, f.path) not in seen:
                seen.add((f.code, f.path))
                out.append(f)
        n, m = len(session.insertions), 0 if latest is None else len(latest.insertions)
        was_tolerated = None if latest is None else tolerated(latest)
        if latest is not None and n > m and not was_tolerated:
            emit(out, t, NEEDLES_INCREASE, "session.insertions",
                  f"{n} needles after a previous session of {m} "
                  + poor_tolerance(was_tolerated))
    valid = all(f.severity is not Severity.ERROR for f in out)
    return ProtocolReport(
        findings=tuple(out),
        valid=valid,
        decision=None if screening is None else screening.decision,
        screening=screening,
        policy=policy.fingerprint,
        policy_name=policy.name,
    )



present_here(globals(), __all__, "dryneedle._protocol")
