"""Adverse events: the vocabulary, the published rates and the observed rates of a stream.

Private module behind :mod:`dryneedle.aftercare` (import the public names from there). It holds
the adverse-event vocabulary (:data:`ADVERSE_EVENT_TERMS`, one term per
:class:`~dryneedle.model.AdverseEventKind`), the rates published by brady-2014 and boyce-2020
(:data:`PUBLISHED_RATES`) and :func:`adverse_event_rates`, which counts recorded events over a
stream of sessions. A new kind of event goes into the model's
:class:`~dryneedle.model.AdverseEventKind` and :data:`ADVERSE_EVENT_TERMS`; a new published
figure into :data:`PUBLISHED_RATES`.

May import: the model; no other aftercare module.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from dryneedle._version import __version__
from dryneedle.model import (
    AdverseEventGrade,
    AdverseEventKind,
    Session,
    SessionRecord,
)

__all__ = [
    "ADVERSE_EVENT_TERMS",
    "PUBLISHED_RATES",
    "AdverseEventRates",
    "AdverseEventTerm",
    "GradeRate",
    "KindRate",
    "PublishedRate",
    "RateBound",
    "RateUnit",
    "adverse_event_rates",
]


@attrs.frozen(kw_only=True)
class AdverseEventTerm:
    """A term of the adverse-event vocabulary with its display label and sources.

    Attributes:
        kind: The vocabulary value used in records (``adverse_events[].kind``).
        label: Human-readable label, as the papers name it.
        sources: Sources that name or report this kind of event.
    """

    kind: AdverseEventKind
    label: str
    sources: tuple[str, ...]


def _t(kind: AdverseEventKind, label: str, *sources: str) -> AdverseEventTerm:
    return AdverseEventTerm(kind=kind, label=label, sources=sources)


_K = AdverseEventKind
ADVERSE_EVENT_TERMS: Final[Mapping[AdverseEventKind, AdverseEventTerm]] = types.MappingProxyType({
    t.kind: t
    for t in (
        _t(_K.BRUISING, "Bruising", "brady-2014", "boyce-2020", "seed"),
        _t(_K.BLEEDING, "Bleeding", "brady-2014", "boyce-2020"),
        _t(_K.PAIN_DURING, "Pain during treatment", "brady-2014", "boyce-2020", "seed"),
        _t(_K.PAIN_AFTER, "Pain after treatment", "brady-2014", "seed"),
        _t(_K.AGGRAVATION, "Aggravation of symptoms", "brady-2014"),
        _t(_K.DROWSINESS, "Drowsiness", "brady-2014"),
        _t(_K.HEADACHE, "Headache", "brady-2014"),
        _t(_K.NAUSEA, "Nausea", "brady-2014"),
        # Named in the vocabulary; SOURCES.md gives no figure for it: no published rate.
        _t(_K.FATIGUE, "Fatigue", "policy"),
        _t(_K.FAINTING, "Fainting", "seed", "za-bn121"),
        _t(_K.INFECTION, "Infection", "seed"),
        _t(_K.PNEUMOTHORAX, "Pneumothorax", "za-bn121"),
        _t(_K.NERVE_IRRITATION, "Nerve irritation", "policy"),
        _t(_K.OTHER, "Other", "policy"),
    )
})
# Documented in dryneedle.aftercare, which exports it.


RateBound = Literal["exact", "at_most", "below"]
# Documented in dryneedle.aftercare, which exports it.

RateUnit = Literal["treatment", "session"]
# Documented in dryneedle.aftercare, which exports it.


@attrs.frozen(kw_only=True)
class PublishedRate:
    """A published adverse-event rate, for comparison.

    Attributes:
        source: Source id of the paper.
        kind: The kind of event; ``None`` for all kinds of a grade.
        grade: The grade; ``None`` when the paper's figure is not limited to one grade.
        percent: The figure as published, in percent (events per 100 treatments/sessions).
        bound: ``exact``, ``at_most`` (≤, an upper bound) or ``below`` (<).
        denominator: Number of treatments or sessions in the paper.
        unit: What the denominator counts.
    """

    source: str
    kind: AdverseEventKind | None
    grade: AdverseEventGrade | None
    percent: float
    bound: RateBound = "exact"
    denominator: int
    unit: RateUnit

    @property
    def rate(self) -> float:
        """The figure as a fraction (events per treatment or session)."""
        return self.percent / 100.0

    def display(self) -> str:
        """The figure as published, e.g. ``7.55 %`` or ``<= 0.04 %``."""
        prefix = {"exact": "", "at_most": "<= ", "below": "< "}[self.bound]
        return f"{prefix}{self.percent:g} %"

    def as_dict(self) -> dict[str, Any]:
        """Return the figure as JSON-ready data."""
        return {
            "source": self.source,
            "kind": None if self.kind is None else self.kind.value,
            "grade": None if self.grade is None else self.grade.value,
            "percent": self.percent,
            "bound": self.bound,
            "denominator": self.denominator,
            "unit": self.unit,
        }


_MILD = AdverseEventGrade.MILD
_SIGNIFICANT = AdverseEventGrade.SIGNIFICANT


def _brady(kind: AdverseEventKind | None, percent: float, grade: AdverseEventGrade = _MILD,
           bound: RateBound = "exact") -> PublishedRate:
    return PublishedRate(source="brady-2014", kind=kind, grade=grade, percent=percent,
                         bound=bound, denominator=7629, unit="treatment")


def _boyce(kind: AdverseEventKind | None, percent: float, grade: AdverseEventGrade = _MILD,
           bound: RateBound = "exact") -> PublishedRate:
    return PublishedRate(source="boyce-2020", kind=kind, grade=grade, percent=percent,
                         bound=bound, denominator=20464, unit="session")


PUBLISHED_RATES: Final[tuple[PublishedRate, ...]] = (
    _brady(None, 19.18),
    _brady(_K.BRUISING, 7.55),
    _brady(_K.BLEEDING, 4.65),
    _brady(_K.PAIN_DURING, 3.01),
    _brady(_K.PAIN_AFTER, 2.19),
    _brady(_K.AGGRAVATION, 0.88),
    _brady(_K.DROWSINESS, 0.26),
    _brady(_K.HEADACHE, 0.14),
    _brady(_K.NAUSEA, 0.13),
    _brady(None, 0.04, _SIGNIFICANT, "at_most"),
    _boyce(None, 36.7),
    _boyce(_K.BLEEDING, 16.0),
    _boyce(_K.BRUISING, 7.7),
    _boyce(_K.PAIN_DURING, 5.9),
    _boyce(None, 0.1, _SIGNIFICANT, "below"),
)
# Documented in dryneedle.aftercare, which exports it.


@attrs.frozen(kw_only=True)
class KindRate:
    """Observed counts and rate of one kind of adverse event.

    Attributes:
        kind: The kind of event.
        events: Events of this kind recorded.
        mild: Of which graded ``mild``.
        significant: Of which graded ``significant``.
        ungraded: Of which without a grade (counted as significant in :class:`GradeRate`).
        sessions_with: Sessions with at least one event of this kind.
        rate: Events per session (comparable to the published figures); ``None`` with no
            sessions.
        published: The published figures for this kind.
    """

    kind: AdverseEventKind
    events: int
    mild: int
    significant: int
    ungraded: int
    sessions_with: int
    rate: float | None
    published: tuple[PublishedRate, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {
            "kind": self.kind.value,
            "events": self.events,
            "mild": self.mild,
            "significant": self.significant,
            "ungraded": self.ungraded,
            "sessions_with": self.sessions_with,
            "rate": self.rate,
            "published": [p.as_dict() for p in self.published],
        }


@attrs.frozen(kw_only=True)
class GradeRate:
    """Observed count and rate of all events of one grade.

    Attributes:
        grade: ``mild`` or ``significant`` (significant includes ungraded events).
        events: Events of this grade.
        rate: Events per session; ``None`` with no sessions.
        published: The published figures for this grade.
    """

    grade: AdverseEventGrade
    events: int
    rate: float | None
    published: tuple[PublishedRate, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {
            "grade": self.grade.value,
            "events": self.events,
            "rate": self.rate,
            "published": [p.as_dict() for p in self.published],
        }


@attrs.frozen(kw_only=True)
class AdverseEventRates:
    """Adverse-event counts and rates over a stream of sessions, beside the published rates.

    Attributes:
        sessions: Sessions counted.
        events: Adverse events counted.
        kinds: One entry per :class:`~dryneedle.model.AdverseEventKind`, in vocabulary order.
        mild: All mild events.
        significant: All significant events (including ungraded ones).
        version: Library version.
    """

    sessions: int
    events: int
    kinds: tuple[KindRate, ...]
    mild: GradeRate
    significant: GradeRate
    version: str = __version__

    def kind(self, kind: AdverseEventKind) -> KindRate:
        """Return the entry of one kind."""
        for k in self.kinds:
            if k.kind is kind:
                return k
        raise KeyError(kind)  # pragma: no cover - every kind has an entry

    def as_dict(self) -> dict[str, Any]:
        """Return the rates as JSON-ready data."""
        return {
            "sessions": self.sessions,
            "events": self.events,
            "kinds": [k.as_dict() for k in self.kinds],
            "mild": self.mild.as_dict(),
            "significant": self.significant.as_dict(),
            "sources": sorted({p.source for p in PUBLISHED_RATES}),
            "version": self.version,
        }

    def to_text(self) -> str:
        """Render a table: observed events per 100 sessions beside the published figures."""
        papers = tuple(dict.fromkeys(p.source for p in PUBLISHED_RATES))
        header = ("kind", "events", "observed", *papers)
        rows: list[tuple[str, ...]] = [header]

        def published(figures: Sequence[PublishedRate]) -> tuple[str, ...]:
            by_source = {p.source: p.display() for p in figures}
            return tuple(by_source.get(s, "") for s in papers)

        rows.extend(
            (k.kind.value, str(k.events), _pct(k.rate), *published(k.published))
            for k in self.kinds
        )
        rows.extend(
            (name, str(g.events), _pct(g.rate), *published(g.published))
            for g, name in ((self.mild, "all mild"), (self.significant, "all significant"))
        )
        widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
        plural = "" if self.sessions == 1 else "s"
        lines = [f"Adverse events over {self.sessions} session{plural} "
                 "(events per 100 sessions; published figures per 100 treatments/sessions)"]
        for r in rows:
            cells = [r[0].ljust(widths[0]), *(r[c].rjust(widths[c]) for c in range(1, len(r)))]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines) + "\n"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f} %"


def _published_for(kind: AdverseEventKind | None,
                   grade: AdverseEventGrade | None) -> tuple[PublishedRate, ...]:
    return tuple(p for p in PUBLISHED_RATES if p.kind is kind and
                 (kind is not None or p.grade is grade))


def adverse_event_rates(items: Iterable[SessionRecord | Session]) -> AdverseEventRates:
    """Count adverse events per kind over a stream of records or sessions.

    The stream is read once and nothing is kept per session: memory is proportional to the
    number of kinds. Rates are events per session, the measure brady-2014 (per treatment) and
    boyce-2020 (per session) publish. An event whose kind is not in the vocabulary counts as
    ``other``; one without a (known) grade counts as significant.

    Args:
        items: :class:`~dryneedle.model.SessionRecord` or :class:`~dryneedle.model.Session`
            objects, in any mix.

    Returns:
        The counts, rates and published comparison figures.

    Raises:
        TypeError: For an item that is neither a record nor a session.

    >>> from datetime import date
    >>> from dryneedle.aftercare import adverse_event_rates
    >>> from dryneedle.model import (AdverseEvent, AdverseEventGrade, AdverseEventKind,
    ...     Practitioner, Session)
    >>> def s(*events):
    ...     return Session(session_id="s", date=date(2026, 1, 5), number=1,
    ...                    practitioner=Practitioner(practitioner_id="pt"),
    ...                    adverse_events=events)
    >>> bruise = AdverseEvent(kind=AdverseEventKind.BRUISING, grade=AdverseEventGrade.MILD)
    >>> rates = adverse_event_rates([s(bruise), s(), s(), s()])
    >>> rates.kind(AdverseEventKind.BRUISING).rate
    0.25
    >>> [p.display() for p in rates.kind(AdverseEventKind.BRUISING).published]
    ['7.55 %', '7.7 %']
    """
    kinds = tuple(AdverseEventKind)
    events = dict.fromkeys(kinds, 0)
    mild = dict.fromkeys(kinds, 0)
    significant = dict.fromkeys(kinds, 0)
    ungraded = dict.fromkeys(kinds, 0)
    sessions_with = dict.fromkeys(kinds, 0)
    sessions = 0
    for item in items:
        obj: object = item  # checked at run time: a wrong item is a programming error
        if isinstance(obj, SessionRecord):
            session = obj.session
        elif isinstance(obj, Session):
            session = obj
        else:
            msg = f"expected a SessionRecord or a Session, got {type(item).__name__}"
            raise TypeError(msg)
        sessions += 1
        seen: set[AdverseEventKind] = set()
        for event in session.adverse_events or ():
            try:
                kind = AdverseEventKind(str(getattr(event, "kind", None)))
            except ValueError:
                kind = AdverseEventKind.OTHER
            events[kind] += 1
            seen.add(kind)
            grade = getattr(event, "grade", None)
            if grade == AdverseEventGrade.MILD:
                mild[kind] += 1
            elif grade == AdverseEventGrade.SIGNIFICANT:
                significant[kind] += 1
            else:
                ungraded[kind] += 1
        for kind in seen:
            sessions_with[kind] += 1

    def rate(count: int) -> float | None:
        return count / sessions if sessions else None

    kind_rates = tuple(
        KindRate(kind=k, events=events[k], mild=mild[k], significant=significant[k],
                 ungraded=ungraded[k], sessions_with=sessions_with[k], rate=rate(events[k]),
                 published=_published_for(k, None))
        for k in kinds
    )
    total_mild = sum(mild.values())
    total_significant = sum(significant.values()) + sum(ungraded.values())
    return AdverseEventRates(
        sessions=sessions,
        events=sum(events.values()),
        kinds=kind_rates,
        mild=GradeRate(grade=_MILD, events=total_mild, rate=rate(total_mild),
                       published=_published_for(None, _MILD)),
        significant=GradeRate(grade=_SIGNIFICANT, events=total_significant,
                              rate=rate(total_significant),
                              published=_published_for(None, _SIGNIFICANT)),
    )
