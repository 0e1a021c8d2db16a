"""Connections spread over the server processes (:mod:`dryneedle.service._balance`).

The acceptors here run on one event loop, each on its own descriptor of one listening socket
(as the worker processes hold theirs), with a :class:`Counts` map; then through ``dryneedle
serve --processes 2`` over real HTTP on 127.0.0.1 (both HTTP protocols). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dryneedle.service import _balance
from dryneedle.service._balance import (
    GONE,
    MAX_DEFER_SECONDS,
    STALE_SECONDS,
    Acceptor,
    Counts,
    behind,
    defers,
)

TIMEOUT = 10.0


class _Held(asyncio.Protocol):
    """A connection that stays open; it is in ``held`` while connected."""

    def __init__(self, held: set[Any], release: Any) -> None:
        self.held = held
        self.release = release

    def connection_made(self, transport: Any) -> None:
        self.held.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.held.discard(self)
        self.release()


class _Recorded(Acceptor):
    """An acceptor that records each time it leaves a connection to the others."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deferred_at: list[float] = []

    def _later(self, delay: float) -> None:
        self.deferred_at.append(time.monotonic())
        super()._later(delay)


def _acceptor(loop: Any, sock: socket.socket, counts: Counts, slot: int,
              held: set[Any]) -> _Recorded:
    return _Recorded(loop, sock, lambda release: _Held(held, release), counts, slot)


async def _until(check: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)


@contextmanager
def _listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    try:
        yield sock
    finally:
        sock.close()


def _connect(sock: socket.socket, n: int) -> list[socket.socket]:
    return [socket.create_connection(sock.getsockname(), timeout=TIMEOUT) for _ in range(n)]


def _beating(counts: Counts, slot: int) -> asyncio.Task[None]:
    """Keep ``slot``'s heartbeat fresh, as a live process that never accepts would."""

    async def beat() -> None:
        while True:
            counts.beats[slot] = time.monotonic_ns()
            await asyncio.sleep(0.005)

    return asyncio.get_running_loop().create_task(beat())


def test_a_process_defers_while_it_holds_more_than_the_emptiest_live_one() -> None:
    assert defers([3, 2], 0)
    assert not defers([2, 2], 0)
    assert not defers([2, 3], 0)
    assert not defers([0, GONE], 0)  # a process that is not serving is never the emptiest
    assert defers([1, GONE, 0], 0)
    assert not defers([3, 0], 0, live=[True, False])  # the emptier one is not beating
    assert behind([1, 2, 3], 0)
    assert not behind([2, 2], 0)
    assert behind([5, 0], 0, live=[True, False])


def test_counts_are_shared_with_a_forked_process() -> None:
    counts = Counts(2)
    assert list(counts.slots) == [GONE, GONE]
    assert list(counts.beats) == [0, 0]
    assert len(counts) == 2
    pid = os.fork()
    if pid == 0:  # pragma: no cover - in the child
        counts.slots[1] = 7
        counts.beats[1] = 11
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert (counts.slots[1], counts.beats[1]) == (7, 11)


@pytest.mark.parametrize("acceptors", [2, 3])
def test_a_burst_of_connections_is_spread_evenly(acceptors: int) -> None:
    """All queued before any acceptor runs: one acceptor alone would take up to 64 at once."""

    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        counts = Counts(acceptors)
        with _listener() as listener:
            socks = [listener] + [listener.dup() for _ in range(acceptors - 1)]
            held: list[set[Any]] = [set() for _ in socks]
            running = [_acceptor(loop, s, counts, i, h)
                       for i, (s, h) in enumerate(zip(socks, held, strict=True))]
            clients = _connect(listener, 24)
            for a in running:
                a.start()
            await _until(lambda: sum(len(h) for h in held) == 24)
            assert [a.held for a in running] == [len(h) for h in held]
            for a in running:
                a.stop()
            assert list(counts.slots) == [GONE] * acceptors  # stopped: never chosen
            for c in clients:
                c.close()
            for s in socks[1:]:
                s.close()
            return [len(h) for h in held]

    held = asyncio.run(run())
    assert sum(held) == 24
    assert max(held) - min(held) <= 1, held


def test_a_fuller_process_leaves_new_connections_to_an_emptier_one() -> None:
    """A holds 4; B starts accepting 5 ms after 4 more arrive: A must have left them to B."""

    async def run() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        counts = Counts(2)
        with _listener() as listener:
            other = listener.dup()
            held_a: set[Any] = set()
            held_b: set[Any] = set()
            a = _acceptor(loop, listener, counts, 0, held_a)
            b = _acceptor(loop, other, counts, 1, held_b)
            clients = _connect(listener, 4)
            a.start()  # alone (B's slot is GONE and not beating): A takes the first 4
            await _until(lambda: len(held_a) == 4)
            counts.slots[1] = 0
            beat = _beating(counts, 1)  # B is up, not accepting yet
            clients += _connect(listener, 4)
            await asyncio.sleep(0.005)
            beat.cancel()
            b.start()
            await _until(lambda: len(held_a) + len(held_b) == 8)
            a.stop()
            b.stop()
            for c in clients:
                c.close()
            other.close()
            return len(held_a), len(held_b), len(a.deferred_at)

    held_a, held_b, deferred = asyncio.run(run())
    assert (held_a, held_b) == (4, 4)
    assert deferred >= 1


async def _alone_with_three(loop: Any, listener: socket.socket, counts: Counts,
                            held: set[Any]) -> tuple[_Recorded, list[socket.socket]]:
    """Slot 0's acceptor, started alone (its peers GONE): it has taken 3 connections."""
    a = _acceptor(loop, listener, counts, 0, held)
    clients = _connect(listener, 3)
    a.start()
    await _until(lambda: len(held) == 3)
    return a, clients


def test_a_live_peer_that_never_accepts_delays_a_connection_by_at_most_the_bound() -> None:
    """The peer looks emptier and beats, but never accepts: deferral ends after 20 ms."""

    async def run() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        counts = Counts(2)
        with _listener() as listener:
            held: set[Any] = set()
            a, clients = await _alone_with_three(loop, listener, counts, held)
            counts.slots[1] = 0
            beat = _beating(counts, 1)
            await asyncio.sleep(0.01)
            clients += _connect(listener, 1)
            await _until(lambda: len(held) == 4)
            beat.cancel()
            a.stop()
            for c in clients:
                c.close()
            spread = a.deferred_at[-1] - a.deferred_at[0] if a.deferred_at else -1.0
            return len(held), spread

    held, spread = asyncio.run(run())
    assert held == 4
    # it deferred for (about) the whole bound: the last deferral was at least 15 ms after
    # the first one; the bound is measured by the loop's clock, not by counting deferrals
    assert spread >= MAX_DEFER_SECONDS * 0.75


def test_a_peer_that_stopped_beating_is_not_deferred_to() -> None:
    """A hung or killed process keeps its last (low) count: its stale heartbeat discounts it."""

    async def run() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        counts = Counts(2)
        with _listener() as listener:
            held: set[Any] = set()
            a, clients = await _alone_with_three(loop, listener, counts, held)
            counts.slots[1] = 0
            counts.beats[1] = time.monotonic_ns() - int(2 * STALE_SECONDS * 1e9)
            clients += _connect(listener, 2)
            await _until(lambda: len(held) == 5)
            a.stop()
            for c in clients:
                c.close()
            return len(held), len(a.deferred_at)

    assert asyncio.run(run()) == (5, 0)


def test_closed_connections_are_no_longer_counted() -> None:
    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        counts = Counts(1)
        with _listener() as listener:
            held: set[Any] = set()
            a = _acceptor(loop, listener, counts, 0, held)
            clients = _connect(listener, 4)
            a.start()
            await _until(lambda: len(held) == 4)
            seen = [counts.slots[0]]
            for c in clients[:3]:
                c.close()
            await _until(lambda: len(held) == 1)
            seen.append(counts.slots[0])
            a.stop()
            clients[3].close()
            return seen

    assert asyncio.run(run()) == [4, 1]


def test_a_connection_whose_setup_fails_is_released_and_closed(caplog: Any) -> None:
    async def run() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        counts = Counts(1)
        with _listener() as listener:
            calls: list[int] = []

            def broken(release: Any) -> asyncio.Protocol:
                calls.append(1)
                raise RuntimeError("a protocol that cannot be made")

            a = Acceptor(loop, listener, broken, counts, 0)
            clients = _connect(listener, 1)
            a.start()
            await _until(lambda: calls and a.held == 0)
            clients[0].settimeout(TIMEOUT)
            closed = clients[0].recv(1) == b""  # the server closed it
            a.stop()
            clients[0].close()
            return a.held, int(closed)

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(run()) == (0, 1)


class _Failing:
    """A listening socket whose ``accept()`` fails with ``errors`` first."""

    def __init__(self, sock: socket.socket, errors: list[int]) -> None:
        self.sock = sock
        self.errors = errors

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def accept(self) -> tuple[socket.socket, Any]:
        if self.errors:
            raise OSError(self.errors.pop(0), os.strerror(errno.EMFILE))
        return self.sock.accept()


def test_accept_errors_retry_the_connection_or_pause_with_one_log_line(
        caplog: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(_balance, "_RESOURCE_PAUSE", 0.01)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        counts = Counts(1)
        with _listener() as listener:
            held: set[Any] = set()
            errors = [errno.ECONNABORTED, errno.EMFILE, errno.EMFILE, errno.EMFILE]
            a = Acceptor(loop, _Failing(listener, errors),  # type: ignore[arg-type]
                         lambda r: _Held(held, r), counts, 0)
            clients = _connect(listener, 2)
            a.start()
            await _until(lambda: len(held) == 2)
            a.stop()
            for c in clients:
                c.close()
            return len(held)

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        assert asyncio.run(run()) == 2
    lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(lines) == 1  # three EMFILE in a row: one episode, one line


# --- dryneedle serve --processes 2 over HTTP -------------------------------------------------


class _Served:
    """``dryneedle serve --processes 2`` from this tree, started and stopped."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.psutil = pytest.importorskip("psutil")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        src = str(Path(__file__).resolve().parents[1] / "src")
        env = os.environ | {"PYTHONPATH": src}
        self.log_path = tmp / "serve.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dryneedle", "serve", "--insecure-no-auth", "--port",
             str(self.port), "--processes", "2", "--audit-db", str(tmp / "audit.sqlite"),
             *args], env=env, stdout=subprocess.DEVNULL, stderr=self.log,
            start_new_session=True)
        self.workers: list[Any] = []

    def __enter__(self) -> _Served:
        deadline = time.monotonic() + 30
        parent = self.psutil.Process(self.proc.pid)
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text(encoding="utf-8")
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            if all(f"Accepting connections (process {i} of 2)" in text for i in (1, 2)):
                self.workers = parent.children()
                return self
            time.sleep(0.1)
        self.__exit__()
        pytest.fail("the server did not start")

    def split(self, clients: list[socket.socket]) -> list[int]:
        """How many of ``clients`` each worker holds, once all are accepted."""
        ours = {c.getsockname()[1] for c in clients}
        deadline = time.monotonic() + TIMEOUT
        counts: list[int] = []
        while time.monotonic() < deadline:
            counts = [sum(1 for c in w.net_connections("tcp") if c.raddr and c.raddr.port in ours)
                      for w in self.workers]
            if sum(counts) == len(ours):
                break
            time.sleep(0.05)
        return counts

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - the supervisor hung
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_serve_spreads_connections_and_counts_the_closed_ones(tmp_path: Path, http: str) -> None:
    """Left to the kernel, 32 connections opened one after the other went 0 / 32, 11 / 21."""
    if http == "httptools":
        pytest.importorskip("httptools")
    with _Served(tmp_path, "--http", http) as served:
        clients = [socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT)
                   for _ in range(32)]
        try:
            split = served.split(clients)
            assert sum(split) == 32
            assert max(split) - min(split) <= 2, split
            # close 8 of the first worker's: the next 8 connections go to it
            first = served.workers[0]
            theirs = {c.raddr.port for c in first.net_connections("tcp") if c.raddr}
            closing = [c for c in clients if c.getsockname()[1] in theirs][:8]
            for c in closing:
                clients.remove(c)
                c.close()
            time.sleep(0.3)
            fresh = [socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT)
                     for _ in range(8)]
            clients += fresh
            assert served.split(fresh)[0] >= 6, served.split(fresh)
            answer = _get(served.port)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        finally:
            for c in clients:
                c.close()


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /cds-services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data
