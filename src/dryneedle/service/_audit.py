"""The service's audit trail: cards issued and clinicians' feedback, in an append-only SQLite file.

What it is for: :class:`AuditLog` records every card the service issues (uuid, service, hook,
decision, finding codes, policy fingerprint, library version, time) and every feedback entry
(``POST .../feedback``: card uuid, outcome, override reason, the clinician's comment,
``outcomeTimestamp``, with the card's finding codes and fingerprint looked up from the card).
The tables are **append-only**: triggers abort every ``UPDATE`` and ``DELETE``. No patient
identifier is stored in clear: with a key (``hash_key``) the patient id is stored as an
HMAC-SHA256 (so one patient's cards can be linked by who holds the key), without one not at
all. :meth:`AuditLog.rows` and :meth:`AuditLog.stats` serve ``dryneedle audit``.

May import: the standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Final

__all__ = ["AuditLog", "UnknownCardError"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    uuid TEXT NOT NULL,
    service TEXT NOT NULL,
    hook TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    patient_hash TEXT,
    decision TEXT NOT NULL,
    indicator TEXT NOT NULL,
    codes TEXT NOT NULL,
    policy TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    version TEXT NOT NULL,
    client TEXT
);
CREATE INDEX IF NOT EXISTS cards_uuid ON cards (uuid);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    card TEXT NOT NULL,
    service TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    reason_system TEXT,
    reason_code TEXT,
    user_comment TEXT,
    accepted_suggestions TEXT NOT NULL,
    outcome_timestamp TEXT NOT NULL,
    decision TEXT NOT NULL,
    codes TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    version TEXT NOT NULL,
    client TEXT
);
CREATE TRIGGER IF NOT EXISTS cards_no_update BEFORE UPDATE ON cards
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cards_no_delete BEFORE DELETE ON cards
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_update BEFORE UPDATE ON feedback
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS feedback_no_delete BEFORE DELETE ON feedback
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
_TABLES: Final = ("cards", "feedback")
_JSON_COLUMNS: Final = frozenset({"codes", "accepted_suggestions"})


class UnknownCardError(LookupError):
    """Feedback names a card uuid this service never issued (nothing is stored)."""


_INSERT_CARD: Final = (
    "INSERT INTO cards (time, uuid, service, hook, hook_instance, patient_hash, decision, "
    "indicator, codes, policy, fingerprint, version, client) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _json_list(value: Any) -> str:
    """``json.dumps(value)``; a list of strings (the codes) without a new encoder per call."""
    if type(value) is list and all(type(v) is str for v in value):
        return "[" + ", ".join(map(encode_basestring_ascii, value)) + "]"
    return json.dumps(value)


_second: tuple[int, str] = (-1, "")
"""The last second written (seconds since the epoch, its text): one tuple, swapped at once."""


def _stamp(ns: int) -> str:
    """The UTC time ``ns`` (nanoseconds since the epoch) to the millisecond, ``...T...Z``.

    What ``isoformat(timespec="milliseconds")`` of its UTC datetime writes (``+00:00`` as
    ``Z``), the date and time of its second formatted once per second.
    """
    global _second  # noqa: PLW0603 - a one-entry cache
    sec, rem = divmod(ns, 1_000_000_000)
    last = _second
    if last[0] != sec:
        last = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _second = last
    return f"{last[1]}.{rem // 1_000_000:03d}Z"


def _now() -> str:
    return _stamp(time.time_ns())


class AuditLog:
    """An append-only SQLite audit log (thread-safe; one connection, serialised writes).

    Several processes may write one file (``dryneedle serve --processes N``): each opens its
    own ``AuditLog``; the file is in WAL mode, each write is one transaction, and a process
    waits up to ``busy_timeout`` seconds for another one's write. The append-only triggers are
    in the file, so they hold for every writer.

    Args:
        path: The database file (created with its tables when absent), or ``":memory:"``.
        hash_key: Key of the HMAC-SHA256 stored for the patient id; ``None`` stores none.
        busy_timeout: Seconds to wait for another connection's write.
    """

    def __init__(self, path: str | Path, *, hash_key: bytes | None = None,
                 busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self._key = hash_key
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=busy_timeout)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def patient_hash(self, patient_id: str) -> str | None:
        """Return the keyed hash stored for a patient id (``None`` without a key)."""
        if self._key is None:
            return None
        return hmac.new(self._key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def record_cards(
        self,
        cards: Sequence[Mapping[str, Any]],
        *,
        service: str,
        hook: str,
        hook_instance: str,
        patient_id: str,
        version: str,
        client: str | None = None,
    ) -> None:
        """Append one row per card issued (the card's dryneedle extension gives the codes)."""
        if not cards:
            return
        now = _now()
        rows = []
        for card in cards:
            ext = card.get("extension", {}).get("io.readthedocs.dryneedle", {})
            policy = ext.get("policy", {})
            rows.append((now, card["uuid"], service, hook, hook_instance,
                         self.patient_hash(patient_id), ext.get("decision", ""),
                         card["indicator"], _json_list(ext.get("codes", [])),
                         policy.get("name", ""), policy.get("fingerprint", ""), version, client))
        with self._lock:
            if len(rows) == 1:  # a hook call's one card: the same INSERT, one transaction
                self._db.execute(_INSERT_CARD, rows[0])
            else:
                self._db.executemany(_INSERT_CARD, rows)

    def record_feedback(
        self, entries: Sequence[Mapping[str, Any]], *, service: str, client: str | None = None,
    ) -> int:
        """Append the feedback entries (already validated); return how many were stored.

        Raises:
            UnknownCardError: When an entry names a card this service did not issue (then no
                entry is stored).
        """
        now = _now()
        with self._lock:
            rows = []
            for e in entries:
                card = self._db.execute(
                    "SELECT decision, codes, fingerprint, version FROM cards "
                    "WHERE uuid = ? AND service = ? ORDER BY id DESC LIMIT 1",
                    (e["card"], service)).fetchone()
                if card is None:
                    msg = f"card {e['card']!r} was not issued by {service!r}"
                    raise UnknownCardError(msg)
                reason = e.get("overrideReason") or {}
                coding = reason.get("reason") or {}
                rows.append((now, e["card"], service, e["outcome"], coding.get("system"),
                             coding.get("code"), reason.get("userComment"),
                             json.dumps([s["id"] for s in e.get("acceptedSuggestions", [])]),
                             e["outcomeTimestamp"], card["decision"], card["codes"],
                             card["fingerprint"], card["version"], client))
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO feedback (time, card, service, outcome, reason_system, "
                    "reason_code, user_comment, accepted_suggestions, outcome_timestamp, "
                    "decision, codes, fingerprint, version, client) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(rows)

    def rows(self, table: str, *, card: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield the rows of ``cards`` or ``feedback`` in insertion order (JSON decoded).

        Args:
            table: ``"cards"`` or ``"feedback"``.
            card: Only the rows of this card uuid.
        """
        if table not in _TABLES:
            msg = f"no audit table {table!r}"
            raise ValueError(msg)
        column = "uuid" if table == "cards" else "card"
        sql = f"SELECT * FROM {table}"  # noqa: S608 - table is one of two literals
        args: tuple[str, ...] = ()
        if card is not None:
            sql += f" WHERE {column} = ?"
            args = (card,)
        with self._lock:
            fetched = self._db.execute(sql + " ORDER BY id", args).fetchall()
        for row in fetched:
            yield {k: json.loads(row[k]) if k in _JSON_COLUMNS else row[k]
                   for k in row.keys()}  # noqa: SIM118 - sqlite3.Row iterates values

    def stats(self) -> dict[str, Any]:
        """Return counts of cards by decision and of feedback by outcome and reason.

        ``overridden_by_code`` counts the overridden cards by finding code (how often the card
        of a rule was overridden).
        """
        with self._lock:
            cards = dict(self._db.execute(
                "SELECT decision, COUNT(*) FROM cards GROUP BY decision ORDER BY decision"))
            outcomes = dict(self._db.execute(
                "SELECT outcome, COUNT(*) FROM feedback GROUP BY outcome ORDER BY outcome"))
            reasons = dict(self._db.execute(
                "SELECT COALESCE(reason_code, '(none)'), COUNT(*) FROM feedback "
                "WHERE outcome = 'overridden' GROUP BY 1 ORDER BY 1"))
            overridden = [r[0] for r in self._db.execute(
                "SELECT codes FROM feedback WHERE outcome = 'overridden'")]
        by_code: dict[str, int] = {}
        for codes in overridden:
            for code in json.loads(codes):
                by_code[code] = by_code.get(code, 0) + 1
        return {"cards": cards, "feedback": outcomes, "override_reasons": reasons,
                "overridden_by_code": dict(sorted(by_code.items()))}
