"""Series checks: a patient's sessions against each other, streamed through a small index.

Private module behind :mod:`dryneedle.protocol` (import the public names from there). It holds
:func:`series_summary` (what the checks need of a session), :class:`SeriesIndex` (the streaming
checks, one fixed-size summary per patient), :func:`validate_series` (one patient's sessions in
memory) and :func:`pair_checks` (one session against another, also used by
:func:`dryneedle.protocol.validate_session`). A new series check goes into
:meth:`SeriesIndex.add_summary` (and into :func:`series_summary` if it needs more of the
session), its rule into :mod:`dryneedle._protocol.rules`.

Memory is bounded: past ``MEMORY_BUDGET`` patients, the least recently seen half of the
summaries moves to a private on-disk SQLite database (deleted when the index goes), and comes
back when its patient reappears; the findings are the same either way.

May import: the standard library, the model, findings, policy and
:mod:`dryneedle._protocol.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from itertools import islice
from typing import TYPE_CHECKING, Any, Final

from dryneedle._protocol.rules import (
    SERIES_FIRST,
    SERIES_NEEDLES,
    SERIES_NUMBER_ORDER,
    SERIES_SAME_DAY,
    ProtocolTable,
    emit,
    poor_tolerance,
    protocol_table,
    tolerated,
)
from dryneedle.findings import Finding
from dryneedle.model import Session
from dryneedle.policy import DEFAULT_POLICY, Policy

if TYPE_CHECKING:
    import sqlite3

__all__ = ["MEMORY_BUDGET", "SeriesIndex", "pair_checks", "series_summary", "validate_series"]

MEMORY_BUDGET: Final = 100_000
"""Patients whose summaries a :class:`SeriesIndex` keeps in memory (about 20 MB); the rest
spill to disk."""


# --- series --------------------------------------------------------------------------------------

# The per-patient state kept by SeriesIndex: a fixed-size tuple, never the sessions.
# (latest date, latest number, latest needle count, latest tolerated, date of session 1 or None)
_State = tuple[date, int, int, bool | None, date | None]


def series_summary(session: Session) -> tuple[date, int, int, bool | None]:
    """Return the small, picklable summary of a session that the series checks need.

    The parallel pipeline validates records in worker processes and runs the series checks in
    one pass over these summaries (:meth:`SeriesIndex.add_summary`); the findings are the
    same as :meth:`SeriesIndex.add` on the session.

    Args:
        session: The session.

    Returns:
        ``(date, number, needle count, tolerated)``: tolerated is ``False`` when an adverse
        event was beyond mild or ungraded, ``None`` when the adverse events are unknown.

    >>> from datetime import date
    >>> from dryneedle.model import Practitioner, Session
    >>> from dryneedle.protocol import series_summary
    >>> series_summary(Session(session_id="s", date=date(2026, 1, 5), number=2,
    ...     practitioner=Practitioner(practitioner_id="pt-1")))
    (datetime.date(2026, 1, 5), 2, 0, True)
    """
    # None only in a partial record (its insertions unreadable): counted as 0.
    insertions: tuple[Any, ...] | None = session.insertions
    return (session.date, session.number, 0 if insertions is None else len(insertions),
            tolerated(session))


def pair_checks(
    out: list[Finding], t: ProtocolTable, other_date: date, other_number: int, d: date, number: int
) -> bool:
    """Check a session (date ``d``, ``number``) against another session of the same patient.

    Emits ``series.same_day`` and ``series.number_order`` findings about the session; returns
    ``True`` on an order error.
    """
    if d == other_date:
        emit(out, t, SERIES_SAME_DAY, "session.date",
              "another session of this patient is on the same day")
    if (
        number == other_number
        or (d > other_date and number < other_number)
        or (d < other_date and number > other_number)
    ):
        if number == other_number:
            msg = f"another session of this patient also has number {number}"
        else:
            msg = (f"session number {number} does not increase with dates (another session "
                   f"numbered {other_number} is {'earlier' if d > other_date else 'later'})")
        emit(out, t, SERIES_NUMBER_ORDER, "session.number", msg)
        return True
    return False


class _Store:
    """Per-patient summaries: the most recently seen in a dict, the others in SQLite.

    Both parts are disjoint: a summary read back from disk is deleted there. Insertion order
    of the dict is recency (a set moves the key to the end), so the eviction of the oldest
    half keeps the patients in treatment in memory.
    """

    __slots__ = ("_budget", "_db", "_mem", "_spilled")

    def __init__(self, budget: int) -> None:
        self._budget = max(2, budget)
        self._mem: dict[str, _State] = {}
        self._db: sqlite3.Connection | None = None
        self._spilled = 0

    def __len__(self) -> int:
        return len(self._mem) + self._spilled

    def get(self, key: str) -> _State | None:
        """Return the summary of a patient, or ``None``."""
        found = self._mem.get(key)
        if found is not None or self._db is None:
            return found
        import pickle  # noqa: PLC0415 - the spill is rare: imported only then (start-up)

        row = self._db.execute("SELECT s FROM state WHERE pid = ?", (key,)).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM state WHERE pid = ?", (key,))
        self._spilled -= 1
        value: _State = pickle.loads(row[0])  # noqa: S301 - our own private database
        self._mem[key] = value
        return value

    def __setitem__(self, key: str, value: _State) -> None:
        self.put(key, value, key in self._mem)

    def put(self, key: str, value: _State, known: bool) -> None:
        """Set the summary of a patient, ``known`` when the patient has one (now in memory).

        A plain method: faster to call than ``store[key] = value``.
        """
        mem = self._mem
        if known:
            del mem[key]  # re-inserted at the end: most recent
        mem[key] = value
        if len(mem) > self._budget:
            self._spill()

    def _spill(self) -> None:
        """Move the least recently seen half of the summaries to disk."""
        import pickle  # noqa: PLC0415 - the spill is rare: imported only then (start-up)

        if self._db is None:
            import sqlite3  # noqa: PLC0415

            # "": a private temporary database on disk, deleted when it is closed.
            self._db = sqlite3.connect("", check_same_thread=False)
            self._db.executescript(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
                "PRAGMA temp_store = FILE; PRAGMA cache_size = -4096; "
                "CREATE TABLE state (pid TEXT PRIMARY KEY, s BLOB) WITHOUT ROWID;"
            )
        half = len(self._mem) // 2
        dumps = pickle.dumps
        self._db.executemany("INSERT INTO state VALUES (?, ?)",
                             ((k, dumps(v)) for k, v in islice(self._mem.items(), half)))
        self._spilled += half
        self._mem = dict(islice(self._mem.items(), half, None))

    def values(self) -> Iterator[_State]:
        """Every summary (in memory, then on disk)."""
        yield from self._mem.values()
        if self._db is not None:
            import pickle  # noqa: PLC0415

            for (blob,) in self._db.execute("SELECT s FROM state"):
                yield pickle.loads(blob)  # noqa: S301 - our own private database


class SeriesIndex:
    """Streaming series checks, keyed by patient id.

    Holds one small fixed-size summary per patient (latest date, number, needle count and
    tolerance, and the date of session 1) and never the sessions themselves, so memory grows
    with the number of patients, not records. Each added session is compared with the latest
    session seen for its patient: the checks are exact when each patient's records arrive in
    chronological order (the usual export order); otherwise each session is compared with the
    latest one seen so far.

    Memory stays bounded however many patients there are: past ``memory_budget`` patients,
    the least recently seen half of the summaries spills to a private on-disk SQLite
    database, and a patient's summary comes back to memory when the patient reappears.

    Args:
        policy: The policy (severities of the ``series.*`` rules).
        memory_budget: Patients kept in memory (default ``MEMORY_BUDGET``, 100 000).

    >>> from datetime import date
    >>> from dryneedle.model import Practitioner, Session
    >>> from dryneedle.protocol import SeriesIndex
    >>> pt = Practitioner(practitioner_id="pt-1", dry_needling_trained=True)
    >>> index = SeriesIndex()
    >>> index.add("p-1", Session(session_id="a", date=date(2026, 1, 5), number=1,
    ...                          practitioner=pt))
    []
    >>> [f.code for f in index.add("p-1", Session(session_id="b", date=date(2026, 1, 5),
    ...                                          number=1, practitioner=pt))]
    ['series.same_day', 'series.number_order']
    >>> len(index)
    1
    """

    __slots__ = ("_state", "_table")

    def __init__(self, *, policy: Policy = DEFAULT_POLICY,
                 memory_budget: int = MEMORY_BUDGET) -> None:
        self._table = protocol_table(policy)
        self._state = _Store(memory_budget)

    def __len__(self) -> int:
        """Return the number of patients seen."""
        return len(self._state)

    def add(self, patient_id: str, session: Session) -> list[Finding]:
        """Add one session of a patient and return the series findings about it.

        Args:
            patient_id: The patient's pseudonymous id (never put into messages).
            session: The session.

        Returns:
            Findings at ``session.number``, ``session.date`` or ``session.insertions``.
        """
        return self.add_summary(patient_id, series_summary(session))

    def add_summary(
        self, patient_id: str, summary: tuple[date, int, int, bool | None]
    ) -> list[Finding]:
        """Add one session of a patient by its :func:`series_summary`; return its findings.

        Args:
            patient_id: The patient's pseudonymous id (never put into messages).
            summary: The session's :func:`series_summary`.

        Returns:
            The same findings as :meth:`add` on the session.
        """
        t = self._table
        out: list[Finding] = []
        d, number, count, tolerated = summary
        state = self._state
        prev = state.get(patient_id)
        if prev is None:
            if number != 1:
                emit(out, t, SERIES_FIRST, "session.number",
                      f"the first session seen for this patient is number {number}, not 1")
            state.put(patient_id, (d, number, count, tolerated, d if number == 1 else None),
                      False)
            return out
        p_date, p_number, p_count, p_tolerated, first = prev
        if d > p_date and number > p_number:  # the usual order: pair_checks finds nothing
            order_error = False
        else:
            order_error = pair_checks(out, t, p_date, p_number, d, number)
        if number == 1:
            if first is not None and not order_error:
                emit(out, t, SERIES_FIRST, "session.number",
                      "a second session is numbered 1")
            if first is None or d < first:
                first = d
        elif first is not None and d < first and not order_error:
            emit(out, t, SERIES_FIRST, "session.number",
                  f"session {number} is dated before session 1")
        if d > p_date or (d == p_date and number > p_number):  # (d, number) is later
            if count > p_count and not p_tolerated:
                emit(out, t, SERIES_NEEDLES, "session.insertions",
                      f"{count} needles after a previous session of {p_count} "
                      + poor_tolerance(p_tolerated))
            state.put(patient_id, (d, number, count, tolerated, first), True)
        else:
            state.put(patient_id, (p_date, p_number, p_count, p_tolerated, first), True)
        return out


def validate_series(
    sessions: Iterable[Session], *, policy: Policy = DEFAULT_POLICY
) -> tuple[tuple[int, Finding], ...]:
    """Run the series checks over one patient's sessions.

    The sessions are checked in chronological order (by date, then number, then input
    position), exactly as a :class:`SeriesIndex` checks a stream in that order.

    Args:
        sessions: One patient's sessions, in any order.
        policy: The policy.

    Returns:
        ``(i, finding)`` pairs, where ``i`` is the position of the session in ``sessions``
        and ``finding.path`` is record-rooted (``session.number``, ``session.date``,
        ``session.insertions``), ordered by chronological position.

    >>> from datetime import date
    >>> from dryneedle.model import Practitioner, Session
    >>> from dryneedle.protocol import validate_series
    >>> pt = Practitioner(practitioner_id="pt-1", dry_needling_trained=True)
    >>> s = [Session(session_id="b", date=date(2026, 2, 1), number=1, practitioner=pt),
    ...      Session(session_id="a", date=date(2026, 1, 1), number=2, practitioner=pt)]
    >>> [(i, f.code, f.path) for i, f in validate_series(s)]  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'series.first_session_number', 'session.number'),
     (0, 'series.number_order', 'session.number')]
    """
    items = list(sessions)
    order = sorted(range(len(items)), key=lambda k: (items[k].date, items[k].number, k))
    index = SeriesIndex(policy=policy)
    out: list[tuple[int, Finding]] = []
    for k in order:
        out.extend((k, f) for f in index.add("", items[k]))
    return tuple(out)
