"""Connections spread evenly over the server processes (``dryneedle serve --processes N``).

What it is for: the worker processes share one listening socket, and the kernel hands each new
connection to whichever process accepts first. A process busy screening accepts later than an
idle one, so a burst of connections (an EHR opening its keep-alive pool) lands mostly on one
process: 21 / 11 and 27 / 5 of 32 were seen under the load benchmark. Each process computes on
one core at most (one interpreter lock), so the clients of the fuller process queue longer on
the same share of the CPU, and while its queue is long the other process may even idle.

Here each worker process accepts for itself (:class:`Acceptor`, in place of uvicorn's own
listener) and defers to the others while it holds more connections than the emptiest one, as
Envoy's "exact balance" connection balancer does across its worker threads. The counts live in
:class:`Counts`, a shared anonymous memory map made by the supervisor before it forks: one
slot per process, written only by its owner (and by the supervisor when the owner is gone). A
process defers at most :data:`MAX_DEFERRALS` times in a row (1 ms each), then accepts anyway:
no connection waits for a process that is stuck. The connections it accepts are served by the
same uvicorn protocol class, with every limit of :func:`~._server.server_config`.

May import: the standard library and uvicorn (the ``service`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import socket
from collections.abc import Callable
from typing import Any, Final

__all__ = ["DEFER_SECONDS", "GONE", "MAX_DEFERRALS", "Acceptor", "Counts", "balanced_server",
           "behind", "defers"]

DEFER_SECONDS: Final = 0.001
"""How long a process leaves a waiting connection to the others before it looks again."""

MAX_DEFERRALS: Final = 20
"""Deferrals in a row after which a process accepts anyway (a stuck peer starves no one)."""

GONE: Final = 2**62
"""The count of a slot whose process is not serving (never the emptiest)."""

_BATCH: Final = 64
"""Connections accepted at most per readiness callback."""

_PUBLISH_SECONDS: Final = 0.01
"""How often a process writes its connection count (closed connections lower it)."""

logger = logging.getLogger("dryneedle.service")


class Counts:
    """One connection count per server process, in memory shared across ``fork``.

    Args:
        processes: The number of slots; every slot starts as :data:`GONE`.
    """

    def __init__(self, processes: int) -> None:
        self._map = mmap.mmap(-1, 8 * processes)  # anonymous and shared: children see it
        self.slots = memoryview(self._map).cast("q")
        for i in range(processes):
            self.slots[i] = GONE

    def __len__(self) -> int:
        """The number of slots."""
        return len(self.slots)


def defers(slots: Any, slot: int) -> bool:
    """Whether the process of ``slot`` should leave the next connection to another one.

    It defers while it holds more connections than the emptiest serving process.

    >>> defers([3, 2], 0), defers([2, 2], 0), defers([2, 3], 0), defers([5, GONE], 0)
    (True, False, False, False)
    """
    return bool(slots[slot] > min(slots))


def behind(slots: Any, slot: int) -> bool:
    """Whether the process of ``slot`` holds fewer connections than every other one.

    After each connection it accepts, a process goes on accepting only while it is behind.

    >>> behind([1, 2], 0), behind([2, 2], 0), behind([0, GONE], 0)
    (True, False, True)
    """
    mine = slots[slot]
    return all(mine < n for i, n in enumerate(slots) if i != slot)


class Acceptor:
    """Accepts connections on a shared listening socket, deferring to emptier processes.

    Args:
        loop: The running event loop.
        sock: The listening socket (shared with the other processes).
        protocol: Makes the protocol of an accepted connection (uvicorn's HTTP protocol).
        slots: The shared counts (:attr:`Counts.slots`).
        slot: This process's slot.
        ssl: Passed to :meth:`asyncio.loop.connect_accepted_socket`.

    A process's count is that of the sockets it accepted that are still open (the transport
    closes the socket it was given when its connection ends; a closed socket's ``fileno()`` is
    ``-1``): exact from the accept on, whatever the event loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: Callable[[], asyncio.Protocol], slots: Any, slot: int,
                 ssl: Any = None) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._slots = slots
        self._slot = slot
        self._live: list[socket.socket] = []  # accepted, maybe closed since
        self._ssl = ssl
        self._reading = False
        self._deferred = 0
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()  # connections being set up
        self._publisher: asyncio.TimerHandle | None = None
        self._resume: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start accepting (and publishing this process's count)."""
        self._sock.setblocking(False)
        self._publish()
        self._read()

    def stop(self) -> None:
        """Stop accepting; the slot reads :data:`GONE` so that the others take every connection."""
        self._stopped = True
        self._pause()
        for handle in (self._publisher, self._resume):
            if handle is not None:
                handle.cancel()
        self._slots[self._slot] = GONE

    def _held(self) -> int:
        self._live = [s for s in self._live if s.fileno() != -1]
        return len(self._live)

    def _publish(self) -> None:
        self._slots[self._slot] = self._held()
        if not self._stopped:
            self._publisher = self._loop.call_later(_PUBLISH_SECONDS, self._publish)

    def _read(self) -> None:
        self._resume = None
        if not self._reading and not self._stopped:
            self._loop.add_reader(self._fd, self._ready)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _ready(self) -> None:
        self._slots[self._slot] = self._held()
        if self._deferred < MAX_DEFERRALS and defers(self._slots, self._slot):
            self._deferred += 1
            self._pause()
            self._resume = self._loop.call_later(DEFER_SECONDS, self._read)
            return
        self._deferred = 0
        for _ in range(_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # another process took it
            except OSError as exc:  # out of file descriptors, ...: look again in 100 ms
                logger.error("cannot accept a connection: %s", exc)
                self._pause()
                self._resume = self._loop.call_later(0.1, self._read)
                return
            conn.setblocking(False)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._live.append(conn)
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._slots[self._slot] = len(self._live)
            if not behind(self._slots, self._slot):
                return  # the next one may go to another process: look again next time

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, conn, ssl=self._ssl)
        except OSError:  # the client went away before the connection was set up
            conn.close()


def balanced_server(config: Any, sock: socket.socket, slots: Any, slot: int) -> Any:
    """A uvicorn server that serves ``sock`` through an :class:`Acceptor`.

    Run it with ``server.run(sockets=[])``: uvicorn then starts its lifespan and opens no
    listener of its own, and on shutdown the acceptor stops first.

    Args:
        config: The uvicorn configuration.
        sock: The shared listening socket.
        slots: The shared counts (:attr:`Counts.slots`).
        slot: This process's slot.
    """
    import uvicorn  # noqa: PLC0415 - optional extra

    class BalancedServer(uvicorn.Server):
        acceptor: Acceptor | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            if self.should_exit:  # pragma: no cover - the lifespan failed: uvicorn exits
                return
            loop = asyncio.get_running_loop()
            cfg = self.config

            def protocol() -> asyncio.Protocol:
                return cfg.http_protocol_class(  # type: ignore[call-arg]
                    config=cfg, server_state=self.server_state,
                    app_state=self.lifespan.state, _loop=loop)

            self.acceptor = Acceptor(loop, sock, protocol, slots, slot, ssl=cfg.ssl)
            self.acceptor.start()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if self.acceptor is not None:
                self.acceptor.stop()
            await super().shutdown(sockets=sockets)

    return BalancedServer(config)
