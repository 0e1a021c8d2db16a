"""Aftercare: patient instructions, the expected course, symptom triage and adverse-event rates.

Three things happen after a dry-needling session, and this module covers each of them:

* **Instructions.** :func:`aftercare_plan` returns the ordered, cited instructions a patient takes
  home: stand up slowly and sit if light-headed, drink plenty of water, stay active, expect
  soreness for 24-36 hours and bruising for up to a week (seed, pns-review), and when to get
  help. Every plan says when to get emergency care (fainting after leaving; severe chest pain
  or breathlessness). Extra lines are added when the session needled near the lung (over it,
  or in the neck or shoulder: any shortness of breath or chest pain means emergency care,
  za-bn121) and when the patient has a bleeding risk (apta-2013, munoz-2022, za-bn121). An
  *unknown* bleeding risk or an insertion into a muscle the anatomy catalog does not know
  counts as a risk: the extra lines are included (fail closed). When the session or patient
  could not be read (``unreadable``), every conditional line is included, with an
  ``aftercare.input.unreadable`` finding naming what could not be read.
* **Triage.** :func:`triage` sorts what a patient reports after leaving the clinic into
  ``expected``, ``contact_clinic`` or ``urgent``, with one cited reason per finding. Every triage
  rule is registered in :mod:`dryneedle.findings` (category ``aftercare``) and its severity goes
  through the :class:`~dryneedle.policy.Policy`, so a clinic can override it with a recorded
  justification. The level is the most serious reason's: ``info`` is expected, ``warning`` is
  contact the clinic, ``error`` is urgent. Adding a symptom never lowers the level, and the
  emergency rules are safety floors no policy can lower.
* **Rates.** :func:`adverse_event_rates` streams session records and counts the recorded
  adverse events per kind (vocabulary :class:`~dryneedle.model.AdverseEventKind`, grade
  :class:`~dryneedle.model.AdverseEventGrade`), reported beside the rates published by
  brady-2014 and boyce-2020 (:data:`PUBLISHED_RATES`).

The expected course is cited data, not magic numbers: the policy limits
``soreness_expected_max_h`` (36 h, seed and pns-review) and ``bruising_expected_max_days``
(7 days, seed) of :class:`~dryneedle.policy.Policy`, which both the plan's wording and the
triage read, so a clinic that overrides one sees it everywhere. Advising the
patient to contact the clinic beyond them is a clinic-policy default (source id ``policy``), and
so is every fail-closed rule (unknown timing, an unlisted or severe symptom).

This module is the public face of the aftercare rules; the code lives in private modules, which
it imports (so importing it registers every aftercare rule): :mod:`!dryneedle._aftercare.plan`
(the expected course and the instructions), :mod:`!dryneedle._aftercare.report` (the symptom
report and its JSON form), :mod:`!dryneedle._aftercare.triage` (the triage rules) and
:mod:`!dryneedle._aftercare.events` (the adverse-event vocabulary and rates). Import from here.
This module may import the model, findings and policy, and those private modules.

>>> from datetime import date
>>> from dryneedle.aftercare import (
...     ReportedSymptom, SymptomKind, SymptomReport, aftercare_plan, triage)
>>> from dryneedle.model import (
...     Insertion, Manipulation, Practitioner, Session, Side, Technique)
>>> calf = Session(
...     session_id="s-1", date=date(2026, 3, 2), number=1,
...     practitioner=Practitioner(practitioner_id="pt-1"),
...     insertions=(Insertion(muscle="gastrocnemius", side=Side.LEFT,
...                           technique=Technique.DEEP, manipulation=Manipulation.PISTONING),))
>>> plan = aftercare_plan(calf)
>>> plan.over_lung, plan.bleeding_risk  # no patient given: bleeding risk unknown
(False, None)
>>> print(plan.to_text().splitlines()[3])
- Stand up slowly. If you feel light-headed, sit down.
>>> sore = ReportedSymptom(kind=SymptomKind.SORENESS)
>>> triage(SymptomReport(hours_since_session=35, symptoms=(sore,)), session=calf).level
<TriageLevel.EXPECTED: 'expected'>
>>> follow_up = triage(SymptomReport(hours_since_session=37, symptoms=(sore,)), session=calf)
>>> follow_up.level, [r.code for r in follow_up.reasons]
(<TriageLevel.CONTACT_CLINIC: 'contact_clinic'>, ['aftercare.triage.soreness_prolonged'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from dryneedle._aftercare import events as _events
from dryneedle._aftercare import plan as _plan
from dryneedle._aftercare import triage as _triage
from dryneedle._aftercare.events import (
    AdverseEventRates,
    AdverseEventTerm,
    GradeRate,
    KindRate,
    PublishedRate,
    adverse_event_rates,
)
from dryneedle._aftercare.plan import (
    AftercarePlan,
    Instruction,
    Section,
    aftercare_plan,
    bleeding_risk,
    needled_near_lung,
    needled_over_lung,
    unreadable_findings,
)
from dryneedle._aftercare.report import (
    ReportedSymptom,
    ReportError,
    SymptomKind,
    SymptomReport,
    SymptomSeverity,
    structure_report,
    unstructure_report,
)
from dryneedle._aftercare.triage import FollowUp, TriageLevel, triage
from dryneedle.exports import present_here
from dryneedle.findings import Rule
from dryneedle.model import AdverseEventKind

__all__ = [
    "ADVERSE_EVENT_TERMS",
    "INSTRUCTIONS",
    "PUBLISHED_RATES",
    "SORENESS_USUAL_MIN_H",
    "TRIAGE_ORDER",
    "TRIAGE_RULES",
    "AdverseEventRates",
    "AdverseEventTerm",
    "AftercarePlan",
    "FollowUp",
    "GradeRate",
    "Instruction",
    "KindRate",
    "PublishedRate",
    "RateBound",
    "RateUnit",
    "ReportError",
    "ReportedSymptom",
    "Section",
    "SymptomKind",
    "SymptomReport",
    "SymptomSeverity",
    "TriageLevel",
    "adverse_event_rates",
    "aftercare_plan",
    "bleeding_risk",
    "needled_near_lung",
    "needled_over_lung",
    "structure_report",
    "triage",
    "unreadable_findings",
    "unstructure_report",
]


SORENESS_USUAL_MIN_H: Final = _plan.SORENESS_USUAL_MIN_H
"""Soreness usually lasts at least this many hours: the lower end of the 24-36 h course shown to
the patient (seed, pns-review). The upper end is the policy limit
``soreness_expected_max_h``."""

INSTRUCTIONS: Final[Mapping[str, Instruction]] = _plan.INSTRUCTIONS
"""Every instruction a plan can contain, by id, in plan order, as worded under the default
policy (read-only). A policy that overrides an expected-course limit changes the wording of the
lines that quote it, and adds ``policy`` to their sources."""

TRIAGE_ORDER: Final[Mapping[TriageLevel, int]] = _triage.TRIAGE_ORDER
"""Triage levels from least to most urgent."""

TRIAGE_RULES: Final[tuple[Rule, ...]] = _triage.TRIAGE_RULES
"""Every triage rule (category ``aftercare``), as registered in :mod:`dryneedle.findings`."""

ADVERSE_EVENT_TERMS: Final[Mapping[AdverseEventKind, AdverseEventTerm]] = (
    _events.ADVERSE_EVENT_TERMS)
"""The adverse-event vocabulary: every :class:`~dryneedle.model.AdverseEventKind` with a label.

Grades: ``mild`` is brady-2014's *mild* and boyce-2020's *minor*; ``significant`` is
brady-2014's *significant* and boyce-2020's *major*. An event without a grade counts as
significant.
"""

RateBound = _events.RateBound
"""How a published figure bounds the rate: ``exact``, ``at_most`` (≤) or ``below`` (<)."""

RateUnit = _events.RateUnit
"""What a published denominator counts."""

PUBLISHED_RATES: Final[tuple[PublishedRate, ...]] = _events.PUBLISHED_RATES
"""Adverse-event rates published by brady-2014 (7 629 treatments) and boyce-2020 (20 464
sessions), as events per 100 treatments/sessions. Per-kind figures are of mild (minor) events."""


present_here(globals(), __all__, "dryneedle._aftercare")
