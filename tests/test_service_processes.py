"""``dryneedle serve --processes N``: the shared JWT replay cache and audit log, over real HTTP.

The replay cache (:class:`~dryneedle.service.SqliteReplayCache`) is checked against the
in-memory one (same outcomes on any sequence of calls), raced by four processes (each token
accepted exactly once), and through ``dryneedle serve --processes 2`` on 127.0.0.1: a token
accepted by one worker process is refused by the other, cards and feedback from both land in
the one audit log, and the server stops cleanly (each test kills its process group at the end,
whatever happened). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("uvicorn")
jwt = pytest.importorskip("jwt")
psutil = pytest.importorskip("psutil")
pytest.importorskip("cryptography")

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from dryneedle.cli import main  # noqa: E402
from dryneedle.service import (  # noqa: E402
    PREFETCH,
    AuditLog,
    AuthError,
    MemoryReplayCache,
    SqliteReplayCache,
)

ROOT = Path(__file__).parents[1]
ENV = os.environ | {"PYTHONPATH": str(ROOT / "src")}
ISS = "https://ehr.example.org/"
TIMEOUT = 30.0
SERVICE = "dryneedle-screening"

# --- the cache itself ---------------------------------------------------------------------------


def _outcome(cache: Any, iss: str, jti: str, until: float, now: float) -> int:
    try:
        cache.once(iss, jti, until, now)
    except AuthError as exc:
        return exc.status
    return 200


_calls = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from("uvwxyz"),
                            st.integers(0, 20), st.integers(0, 20)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(calls=_calls, size=st.integers(1, 4))
def test_sqlite_cache_answers_as_the_memory_cache(calls: list[Any], size: int) -> None:
    """Same outcome (accepted, 401 replay, 503 full) as the in-memory cache, call by call."""
    with tempfile.TemporaryDirectory() as tmp:
        shared = SqliteReplayCache(Path(tmp) / "replay.sqlite", size=size)
        memory = MemoryReplayCache(size)
        for iss, jti, now, life in calls:
            assert _outcome(shared, iss, jti, now + life, now) == _outcome(
                memory, iss, jti, now + life, now), (iss, jti, now, life)
            assert len(shared) == len(memory)
        shared.close()


def test_sqlite_cache_outlives_a_restart_and_purges_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite"
    now = time.time()
    first = SqliteReplayCache(path, size=2)
    first.once(ISS, "live", now + 300, now)
    first.once(ISS, "gone", now + 0.01, now)
    first.close()
    time.sleep(0.05)
    again = SqliteReplayCache(path, size=2)  # opening purges the expired row
    assert len(again) == 1
    with pytest.raises(AuthError, match="replay") as replay:
        again.once(ISS, "live", now + 300, time.time())
    assert replay.value.status == 401
    again.once(ISS, "gone", now + 300, time.time())  # expired, so accepted again
    with pytest.raises(AuthError, match="too many") as full:
        again.once(ISS, "third", now + 300, time.time())
    assert full.value.status == 503
    again.once("https://other.example/", "x", now + 300, now + 301)  # 'live' ones expired
    assert len(again) == 1
    again.close()
    with pytest.raises(ValueError, match="file"):
        SqliteReplayCache(":memory:")


RACER = """
import json, sys, time
from dryneedle.service import AuthError, SqliteReplayCache
cache = SqliteReplayCache(sys.argv[1])
sys.stdin.readline()
won, now = [], time.time()
for i in range(int(sys.argv[2])):
    try:
        cache.once("iss", f"jti-{i}", now + 300, now)
        won.append(i)
    except AuthError as exc:
        assert exc.status == 401, exc
print(json.dumps(won))
"""


def test_racing_processes_accept_each_token_once(tmp_path: Path) -> None:
    """Four processes offered the same 300 tokens at once: each accepted by exactly one."""
    n = 300
    path = str(tmp_path / "replay.sqlite")
    SqliteReplayCache(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", RACER, path, str(n)], env=ENV,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(4)]
    try:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.flush()
        won = [json.loads(p.communicate(timeout=TIMEOUT)[0]) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=TIMEOUT)
    assert all(p.returncode == 0 for p in procs)
    assert sorted(i for w in won for i in w) == list(range(n))


# --- dryneedle serve --processes 2 --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``dryneedle serve`` in a subprocess of its own session (its process group is killed)."""

    def __init__(self, tmp: Path, *args: str, processes: int = 2) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes = processes
        self.audit = tmp / "audit.sqlite"
        self.log = (tmp / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dryneedle", "serve", "--port", str(self.port),
             "--processes", str(processes), "--audit-db", str(self.audit), *args],
            env=ENV, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        self.workers: list[Any] = []

    def __enter__(self) -> Served:
        deadline = time.monotonic() + TIMEOUT
        parent = psutil.Process(self.proc.pid)
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text(encoding="utf-8")
            self.workers = parent.children()
            log = Path(self.log.name).read_text(encoding="utf-8", errors="replace")
            if len(self.workers) == self.processes and all(
                    f"Started server process [{w.pid}]" in log for w in self.workers):
                return self
            time.sleep(0.1)
        self.__exit__()
        pytest.fail("the server did not start")

    def owned(self) -> dict[int, set[int]]:
        """Worker pid -> the local ports of its established connections (and its listener)."""
        out: dict[int, set[int]] = {}
        for w in self.workers:
            with contextlib.suppress(psutil.Error):
                out[w.pid] = {c.raddr.port for c in w.net_connections(kind="tcp") if c.raddr}
        return out

    def stop(self) -> int:
        """SIGTERM the supervisor; return its exit status (bounded wait)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=TIMEOUT)
        self.log.close()


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _pinned(served: Served) -> dict[int, http.client.HTTPConnection]:
    """One open keep-alive connection to each worker process (found by who accepted it)."""
    conns: dict[int, http.client.HTTPConnection] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(conns) < served.processes and time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=TIMEOUT)
        conn.connect()
        local = conn.sock.getsockname()[1]
        owner = None
        for _ in range(200):
            owner = next((pid for pid, ports in served.owned().items() if local in ports), None)
            if owner is not None:
                break
            time.sleep(0.01)
        if owner is not None and owner not in conns:
            conns[owner] = conn
        else:
            conn.close()
    assert len(conns) == served.processes, "the connections all went to one worker"
    return conns


def _call(conn: http.client.HTTPConnection, path: str, body: Any,
          bearer: str | None) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    private = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    path = tmp_path_factory.mktemp("keys") / "jwks.json"
    path.write_text(json.dumps({"keys": [public | {"kid": "ehr-1", "use": "sig",
                                                   "alg": "ES384"}]}), encoding="utf-8")
    return {"private": private, "path": str(path)}


def _token(keys: dict[str, Any], aud: str) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    return str(jwt.encode(claims, keys["private"], algorithm="ES384",
                          headers={"kid": "ehr-1", "typ": "JWT"}))


def _hook() -> dict[str, Any]:
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-1", "gender": "female",
                           "birthDate": "1980-05-05"}
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/1", "patientId": "p-1"}, "prefetch": prefetch}


@pytest.fixture
def secured(keys: dict[str, Any], tmp_path: Path) -> Iterator[Served]:
    with Served(tmp_path, "--jwks", keys["path"], "--issuer", ISS) as served:
        yield served


def test_a_token_replayed_to_the_other_process_is_refused(secured: Served, keys: Any) -> None:
    path = f"/cds-services/{SERVICE}"
    aud = secured.url + path
    (a, conn_a), (b, conn_b) = _pinned(secured).items()
    assert a != b
    cards = []
    for first, second in ((conn_a, conn_b), (conn_b, conn_a)):
        bearer = _token(keys, aud)
        status, body = _call(first, path, _hook(), bearer)
        assert status == 200, body
        cards.append(body["cards"][0])
        status, body = _call(second, path, _hook(), bearer)
        assert status == 401, body
        assert "replay" in body["issue"][0]["diagnostics"]
    # Feedback on the card process a issued, sent to process b: found in the shared log.
    feedback = {"feedback": [{"card": cards[0]["uuid"], "outcome": "accepted",
                              "outcomeTimestamp": "2026-12-01T10:00:00Z"}]}
    status, body = _call(conn_b, f"{path}/feedback", feedback, _token(keys, aud))
    assert (status, body) == (200, {"stored": 1})
    for conn in (conn_a, conn_b):
        conn.close()
    workers = [w.pid for w in secured.workers]
    assert secured.stop() == 0
    assert all(_gone(pid) for pid in workers)
    log = AuditLog(secured.audit)
    assert [r["uuid"] for r in log.rows("cards")] == [c["uuid"] for c in cards]
    assert [r["card"] for r in log.rows("feedback")] == [cards[0]["uuid"]]
    log.close()
    replay = sqlite3.connect(f"{secured.audit}.replay")
    assert replay.execute("SELECT COUNT(*) FROM seen").fetchone() == (3,)
    replay.close()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """No orphan keeps the port: a worker whose supervisor died (SIGKILL) stops by itself."""
    with Served(tmp_path, "--insecure-no-auth") as served:
        path = f"/cds-services/{SERVICE}"
        for conn in _pinned(served).values():  # insecure mode, loopback client: answered
            status, body = _call(conn, path, _hook(), None)
            assert status == 200, body
            conn.close()
        workers = [w.pid for w in served.workers]
        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in workers)
    assert len(list(AuditLog(served.audit).rows("cards"))) == 2


def test_processes_options_are_checked(capsys: Any) -> None:
    assert main(["serve", "--processes", "0", "--insecure-no-auth"]) == 2
    assert "--processes" in capsys.readouterr().err
    assert main(["serve", "--processes", "2", "--audit-db", ":memory:",
                 "--insecure-no-auth"]) == 2
    assert "audit-db" in capsys.readouterr().err
    assert main(["serve", "--processes", "2", "--insecure-no-auth", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
