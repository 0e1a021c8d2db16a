"""Connections spread evenly over the server processes (``dryneedle serve --processes N``).

What it is for: the worker processes share one listening socket, and the kernel hands each new
connection to whichever process accepts first. A process busy screening accepts later than an
idle one, so a burst of connections (an EHR opening its keep-alive pool) lands mostly on one
process: 21 / 11 and 27 / 5 of 32 were seen under the load benchmark. Each process computes on
one core at most (one interpreter lock), so the clients of the fuller process queue longer on
the same share of the CPU, and while its queue is long the other process may even idle.

Here each worker process accepts for itself (:class:`Acceptor`, in place of uvicorn's own
listener) and leaves a waiting connection to the others while it holds more connections than
the emptiest live one, as Envoy's "exact balance" connection balancer does across its worker
threads. The balance is by open connections, which for keep-alive clients in a closed loop is
their load; a process with fewer connections but long requests still gets the next one.

The counts live in :class:`Counts`, an anonymous memory map that the supervisor makes before
it forks: per process, its open connections (counted on accept and on ``connection_lost``: no
polling) and a heartbeat (:func:`time.monotonic` in nanoseconds, written every
:data:`BEAT_SECONDS`). A process whose heartbeat is older than :data:`STALE_SECONDS` (stopped,
hung, gone) is not deferred to. A process defers for at most :data:`MAX_DEFER_SECONDS` in all
per waiting connection (looking again every :data:`DEFER_SECONDS`), then accepts anyway: no
connection waits for a peer that does not take it. The connections it accepts are served by the
same uvicorn protocol class, with every limit of :func:`~._server.server_config`.

May import: the standard library and uvicorn (the ``service`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import select
import socket
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["BEAT_SECONDS", "DEFER_SECONDS", "GONE", "MAX_DEFER_SECONDS", "STALE_SECONDS",
           "Acceptor", "Counts", "balanced_server", "behind", "defers"]

DEFER_SECONDS: Final = 0.001
"""How long a process leaves a waiting connection to the others before it looks again."""

MAX_DEFER_SECONDS: Final = 0.02
"""How long in all a process leaves one waiting connection to the others, then accepts it."""

BEAT_SECONDS: Final = 0.02
"""How often a serving process writes its heartbeat."""

STALE_SECONDS: Final = 0.1
"""A process whose heartbeat is older than this is not deferred to (stopped, hung or gone)."""

GONE: Final = 2**62
"""The count of a slot whose process is not serving (never the emptiest)."""

_BATCH: Final = 64
"""Connections accepted at most per readiness callback."""

_RETRY: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT,
                           errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP,
                           errno.ENETUNREACH, errno.EPERM})
"""``accept()`` errors of the connection, not of the listener (Linux's accept(2) says to retry)."""

_RESOURCE_PAUSE: Final = 1.0
"""Seconds without accepting after the process ran out of descriptors or memory (as asyncio)."""

logger = logging.getLogger("uvicorn.error")  # configured by uvicorn: shown with its messages


class Counts:
    """Per server process: its open connections and its heartbeat, shared across ``fork``.

    Args:
        processes: The number of slots; every slot starts as :data:`GONE`, without a beat.
    """

    def __init__(self, processes: int) -> None:
        self._map = mmap.mmap(-1, 16 * processes)  # anonymous and shared: children see it
        self.slots = memoryview(self._map)[:8 * processes].cast("q")
        self.beats = memoryview(self._map)[8 * processes:].cast("q")
        for i in range(processes):
            self.slots[i] = GONE
            self.beats[i] = 0

    def __len__(self) -> int:
        """The number of slots."""
        return len(self.slots)


def defers(slots: Any, slot: int, live: Any = None) -> bool:
    """Whether the process of ``slot`` should leave the next connection to another one.

    It defers while it holds more connections than the emptiest live process (``live``: which
    slots may be deferred to; default all).

    >>> defers([3, 2], 0), defers([2, 2], 0), defers([2, 3], 0), defers([5, GONE], 0)
    (True, False, False, False)
    >>> defers([3, 2], 0, live=[True, False])  # the emptier one is not beating
    False
    """
    mine = slots[slot]
    return any(n < mine for i, n in enumerate(slots)
               if i != slot and (live is None or live[i]))


def behind(slots: Any, slot: int, live: Any = None) -> bool:
    """Whether the process of ``slot`` holds fewer connections than every other live one.

    After each connection it accepts, a process goes on accepting only while it is behind.

    >>> behind([1, 2], 0), behind([2, 2], 0), behind([0, GONE], 0)
    (True, False, True)
    """
    mine = slots[slot]
    return all(mine < n for i, n in enumerate(slots)
               if i != slot and (live is None or live[i]))


class Acceptor:
    """Accepts connections on a shared listening socket, deferring to emptier processes.

    Args:
        loop: The running event loop.
        sock: The listening socket (shared with the other processes).
        protocol: Makes the protocol of an accepted connection; it is given a callable that
            the protocol must call once when its connection is lost (``connection_lost``).
        counts: The shared counts.
        slot: This process's slot.
        ssl: Passed to :meth:`asyncio.loop.connect_accepted_socket`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: Callable[[Callable[[], None]], asyncio.Protocol], counts: Counts,
                 slot: int, ssl: Any = None) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._counts = counts
        self._slot = slot
        self._ssl = ssl
        self.held = 0
        """This process's open connections (from the accept to ``connection_lost``)."""
        self._reading = False
        self._stopped = False
        self._defer_until: float | None = None
        self._short_of_resources = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._beat: asyncio.TimerHandle | None = None
        self._resume: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start accepting (and beating)."""
        self._sock.setblocking(False)
        self._publish()
        self._heartbeat()
        self._read()
        logger.info("Accepting connections (process %d of %d)", self._slot + 1,
                    len(self._counts))

    def stop(self) -> None:
        """Stop accepting; the slot reads :data:`GONE` so that the others take every connection."""
        self._stopped = True
        self._pause()
        for handle in (self._beat, self._resume):
            if handle is not None:
                handle.cancel()
        self._counts.slots[self._slot] = GONE

    def _publish(self) -> None:
        if not self._stopped:
            self._counts.slots[self._slot] = self.held

    def _heartbeat(self) -> None:
        if not self._stopped:
            self._counts.beats[self._slot] = time.monotonic_ns()
            self._beat = self._loop.call_later(BEAT_SECONDS, self._heartbeat)

    def _live(self) -> list[bool]:
        oldest = time.monotonic_ns() - int(STALE_SECONDS * 1e9)
        return [b >= oldest for b in self._counts.beats]

    def _released(self) -> Callable[[], None]:
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.held -= 1
                self._publish()

        return release

    def _read(self) -> None:
        self._resume = None
        if self._reading or self._stopped:
            return
        if self._defer_until is not None and not select.select([self._fd], [], [], 0)[0]:
            self._defer_until = None  # another process took the waiting connection
        self._loop.add_reader(self._fd, self._ready)
        self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _later(self, delay: float) -> None:
        self._pause()
        self._resume = self._loop.call_later(delay, self._read)

    def _ready(self) -> None:
        if self._stopped:
            return
        slots = self._counts.slots
        live = self._live()
        if defers(slots, self._slot, live):
            now = self._loop.time()
            if self._defer_until is None:
                self._defer_until = now + MAX_DEFER_SECONDS
            if now < self._defer_until:
                self._later(DEFER_SECONDS)
                return
        self._defer_until = None
        for _ in range(_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # another process took it
            except OSError as exc:
                if exc.errno in _RETRY:  # that connection failed, not the listener
                    continue
                if not self._short_of_resources:  # one line per episode
                    logger.error("cannot accept a connection (%s): retrying in %.0f s", exc,
                                 _RESOURCE_PAUSE)
                self._short_of_resources = True
                self._later(_RESOURCE_PAUSE)
                return
            self._short_of_resources = False
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.held += 1
            self._publish()
            task = self._loop.create_task(self._connect(conn, self._released()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if not behind(slots, self._slot, live):
                return  # the next one may go to another process: look again next time

    async def _connect(self, conn: socket.socket, release: Callable[[], None]) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: self._protocol(release), conn,
                                                     ssl=self._ssl)
        except BaseException as exc:  # not set up: the connection is closed and not counted
            conn.close()
            release()
            if not isinstance(exc, OSError):  # an OSError: the client went away meanwhile
                raise


def balanced_server(config: Any, sock: socket.socket, counts: Counts, slot: int) -> Any:
    """A uvicorn server that serves ``sock`` through an :class:`Acceptor`.

    Run it with ``server.run(sockets=[])``: uvicorn then starts its lifespan and opens no
    listener of its own, and on shutdown the acceptor stops first.

    Args:
        config: The uvicorn configuration.
        sock: The shared listening socket.
        counts: The shared counts.
        slot: This process's slot.
    """
    import uvicorn  # noqa: PLC0415 - optional extra

    if not config.loaded:
        config.load()

    class Counted(config.http_protocol_class):  # type: ignore[misc]
        """uvicorn's HTTP protocol that tells the acceptor when its connection is lost."""

        def __init__(self, release: Callable[[], None], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._dryneedle_release = release

        def connection_lost(self, exc: Exception | None) -> None:
            try:
                super().connection_lost(exc)
            finally:
                self._dryneedle_release()

    class BalancedServer(uvicorn.Server):
        acceptor: Acceptor | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            if self.should_exit:  # pragma: no cover - the lifespan failed: uvicorn exits
                return
            loop = asyncio.get_running_loop()

            def protocol(release: Callable[[], None]) -> asyncio.Protocol:
                return Counted(release, config=self.config, server_state=self.server_state,
                               app_state=self.lifespan.state, _loop=loop)

            self.acceptor = Acceptor(loop, sock, protocol, counts, slot, ssl=self.config.ssl)
            self.acceptor.start()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if self.acceptor is not None:
                self.acceptor.stop()
            await super().shutdown(sockets=sockets)

    return BalancedServer(config)
