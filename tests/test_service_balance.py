"""Connections spread over the server processes (:mod:`dryneedle.service._balance`).

The acceptors here run on one event loop, each on its own descriptor of one listening socket
(as the worker processes hold theirs), with counts in a :class:`Counts` map; then through
``dryneedle serve --processes 2`` over real HTTP on 127.0.0.1. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dryneedle.service._balance import GONE, MAX_DEFERRALS, Acceptor, Counts, defers

TIMEOUT = 10.0


class _Held(asyncio.Protocol):
    """A connection that stays open; it is in ``held`` while connected."""

    def __init__(self, held: set[Any]) -> None:
        self.held = held

    def connection_made(self, transport: Any) -> None:
        self.held.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.held.discard(self)


def test_a_process_defers_while_it_holds_more_than_the_emptiest() -> None:
    assert defers([3, 2], 0)
    assert not defers([2, 2], 0)
    assert not defers([2, 3], 0)
    assert not defers([0, GONE], 0)  # a process that is not serving is never the emptiest
    assert defers([1, GONE, 0], 0)


def test_counts_are_shared_with_a_forked_process() -> None:
    counts = Counts(2)
    assert list(counts.slots) == [GONE, GONE]
    assert len(counts) == 2
    pid = os.fork()
    if pid == 0:  # pragma: no cover - in the child
        counts.slots[1] = 7
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert counts.slots[1] == 7


async def _burst(n: int, acceptors: int) -> list[int]:
    """Open ``n`` connections at once to ``acceptors`` acceptors; return what each holds."""
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    port = listener.getsockname()[1]
    counts = Counts(acceptors)
    held: list[set[Any]] = [set() for _ in range(acceptors)]
    socks = [listener] + [listener.dup() for _ in range(acceptors - 1)]
    running = [Acceptor(loop, s, lambda h=h: _Held(h), counts.slots, i)  # type: ignore[misc]
               for i, (s, h) in enumerate(zip(socks, held, strict=True))]
    clients = [socket.socket() for _ in range(n)]
    try:
        for c in clients:  # all queued in the backlog before any acceptor runs
            c.connect(("127.0.0.1", port))
        for a in running:
            a.start()
        deadline = time.monotonic() + TIMEOUT
        while sum(len(h) for h in held) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return [len(h) for h in held]
    finally:
        for a in running:
            a.stop()
        assert all(counts.slots[i] == GONE for i in range(acceptors))  # stopped: never chosen
        for c in clients:
            c.close()
        for s in socks:
            s.close()


@pytest.mark.parametrize("acceptors", [2, 3])
def test_a_burst_of_connections_is_spread_evenly(acceptors: int) -> None:
    """Without balancing, the first acceptor called takes the whole backlog (up to 64)."""
    held = asyncio.run(_burst(24, acceptors))
    assert sum(held) == 24
    assert max(held) - min(held) <= 1, held


def test_a_process_that_holds_more_still_accepts_when_no_one_else_does() -> None:
    """Its peer's slot says 0 but the peer never accepts: after MAX_DEFERRALS it takes it."""

    async def run() -> int:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        counts = Counts(2)  # the peer's slot: GONE (not serving) at first
        held: set[Any] = set()
        pauses: list[int] = []

        class Counted(Acceptor):
            def _pause(self) -> None:
                pauses.append(self._deferred)
                super()._pause()

        acceptor = Counted(loop, listener, lambda: _Held(held), counts.slots, 0)
        clients = [socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
                   for _ in range(3)]
        acceptor.start()
        try:
            deadline = time.monotonic() + TIMEOUT
            while len(held) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            assert len(held) == 3  # alone: it takes them all
            counts.slots[1] = 0  # a peer that looks empty and is stuck
            clients.append(socket.create_connection(listener.getsockname(), timeout=TIMEOUT))
            while len(held) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            assert pauses == list(range(1, MAX_DEFERRALS + 1))  # it deferred, then accepted
            return len(held)
        finally:
            acceptor.stop()
            for c in clients:
                c.close()
            listener.close()

    assert asyncio.run(run()) == 4


def test_closed_connections_are_no_longer_counted() -> None:
    async def run() -> list[int]:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        counts = Counts(1)
        held: set[Any] = set()
        acceptor = Acceptor(loop, listener, lambda: _Held(held), counts.slots, 0)
        clients = [socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
                   for _ in range(4)]
        acceptor.start()
        seen = []
        try:
            deadline = time.monotonic() + TIMEOUT
            while len(held) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
            seen.append(counts.slots[0])
            for c in clients[:3]:
                c.close()
            while len(held) > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)  # published every 10 ms
            seen.append(counts.slots[0])
            return seen
        finally:
            acceptor.stop()
            clients[3].close()
            listener.close()

    assert asyncio.run(run()) == [4, 1]


def _served_split(tmp: Path, src: str, n: int) -> list[int]:
    """``dryneedle serve --processes 2`` from ``src``: ``n`` connections opened in a burst."""
    psutil = pytest.importorskip("psutil")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"PYTHONPATH": src}
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dryneedle", "serve", "--insecure-no-auth", "--port", str(port),
         "--processes", "2", "--audit-db", str(tmp / "audit.sqlite")],
        env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    clients: list[socket.socket] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        workers: list[Any] = []
        while time.monotonic() < deadline:
            workers = parent.children()
            text = (tmp / "serve.log").read_text(encoding="utf-8", errors="replace")
            if len(workers) == 2 and all(f"Started server process [{w.pid}]" in text
                                         for w in workers):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the server did not start")
        time.sleep(1.0)  # each process starts accepting right after it logs its start
        for _ in range(n):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        ours = {c.getsockname()[1] for c in clients}
        split: list[int] = []
        while time.monotonic() < deadline:
            split = sorted(sum(1 for c in w.net_connections("tcp")
                               if c.raddr and c.raddr.port in ours) for w in workers)
            if sum(split) == n:
                break
            time.sleep(0.05)
        return split
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - the supervisor hung
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        log.close()


def test_serve_spreads_a_burst_of_connections_over_its_processes(tmp_path: Path) -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    split = _served_split(tmp_path, src, 32)
    assert sum(split) == 32
    assert split[1] - split[0] <= 2, split
