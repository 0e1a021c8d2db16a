"""The JWT ``jti`` replay cache shared by every process of the service, in a SQLite file.

What it is for: :class:`SqliteReplayCache` remembers each ``(iss, jti)`` a
:class:`~._auth.JwtAuth` accepted until the token expires, in a table whose primary key is
``(iss, jti)``. Each check runs in one write transaction (``BEGIN IMMEDIATE``: SQLite serialises
them across processes; WAL, a busy timeout), so two processes given the same token at the same
moment cannot both accept it: the second one finds the key. An expired row of the same key is
taken over by the accepting ``INSERT``. Like the in-memory cache of one process
(:class:`~._auth.MemoryReplayCache`, whose answers it gives call by call) it is bounded: when it
holds ``size`` tokens, expired rows are purged, and if it is still full the call is refused
with **503** (never by forgetting a live token). A row counter kept by triggers makes the
bound check one read. Expired rows are also purged when the cache is opened. The file outlives
a restart, so a token cannot be replayed after one either.

Each process opens its own connection on first use (a SQLite connection must not cross a
``fork``; :func:`~._server.serve` forks before any thread or connection exists); threads of a
process share it under one lock.

May import: the standard library and :mod:`dryneedle.service._auth` (its ``AuthError``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Final

from dryneedle.service._auth import AuthError

__all__ = ["SqliteReplayCache"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS seen (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (iss, jti)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_until ON seen (until);
CREATE TABLE IF NOT EXISTS live (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO live (one, n) SELECT 1, COUNT(*) FROM seen;
CREATE TRIGGER IF NOT EXISTS seen_insert AFTER INSERT ON seen
    BEGIN UPDATE live SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS seen_delete AFTER DELETE ON seen
    BEGIN UPDATE live SET n = n - 1; END;
"""


class SqliteReplayCache:
    """A ``jti`` replay cache in a SQLite file, shared by the processes that open it.

    Args:
        path: The database file (created with its table when absent).
        size: Live tokens remembered at most (503 beyond, as the in-memory cache).
        busy_timeout: Seconds a process waits for another one's write.

    Raises:
        ValueError: With ``":memory:"`` (it would not be shared).
        sqlite3.Error: When the file cannot be opened or created.
    """

    def __init__(self, path: str | Path, *, size: int = 100_000,
                 busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        if self.path == ":memory:" or not self.path:
            msg = "the shared replay cache needs a file"
            raise ValueError(msg)
        self.size = size
        self.busy_timeout = busy_timeout
        self._pid = -1
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        db = self._connect()
        try:
            db.execute("DELETE FROM seen WHERE until <= ?", (time.time(),))
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def _connection(self) -> sqlite3.Connection:
        pid = os.getpid()
        if self._db is None or self._pid != pid:  # first use in this process (or after fork)
            self._db = self._connect()
            self._pid = pid
        return self._db

    def close(self) -> None:
        """Close this process's connection (the next call opens a new one)."""
        if self._db is not None and self._pid == os.getpid():
            self._db.close()
        self._db = None

    def once(self, iss: str, jti: str, until: float, now: float) -> None:
        """Accept ``(iss, jti)`` once until ``until`` (seconds since the epoch).

        Raises:
            AuthError: 401 when the token was already accepted and has not expired (a
                replay, whichever process accepted it); 503 when ``size`` live tokens are
                remembered.
        """
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                held = db.execute("SELECT until FROM seen WHERE iss = ? AND jti = ?",
                                  (iss, jti)).fetchone()
                if held is not None and held[0] > now:
                    raise AuthError("JWT jti already used (replay)")
                (live,) = db.execute("SELECT n FROM live").fetchone()
                if live >= self.size:
                    db.execute("DELETE FROM seen WHERE until <= ?", (now,))
                    (live,) = db.execute("SELECT n FROM live").fetchone()
                    if live >= self.size:
                        raise AuthError("too many live tokens; retry later", status=503)
                inserted = db.execute(
                    "INSERT INTO seen (iss, jti, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (iss, jti) DO UPDATE SET until = excluded.until "
                    "WHERE seen.until <= ?", (iss, jti, until, now)).rowcount
                if inserted != 1:
                    raise AuthError("JWT jti already used (replay)")
            except AuthError:
                db.execute("COMMIT")  # a purge is kept; nothing else was written
                raise
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def __len__(self) -> int:
        """Rows held (live and not yet purged expired tokens)."""
        with self._lock:
            return int(self._connection().execute("SELECT n FROM live").fetchone()[0])
