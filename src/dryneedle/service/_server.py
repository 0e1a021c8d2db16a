"""Serving the application with uvicorn, with connection-level limits (``dryneedle serve``).

What it is for: :func:`server_config` returns the uvicorn configuration the service runs with:
uvicorn's httptools HTTP protocol and the uvloop event loop when they are installed (the
``service`` extra brings them; h11 and asyncio otherwise), with the same limits on either:
a header timeout (a connection whose request line and headers are not complete within
``header_timeout`` seconds is closed: half-sent requests -- "slowloris" -- cannot pile up),
a cap on the request line + headers size (h11: ``h11_max_incomplete_event_size``, answered
400; httptools: counted here, answered 431), an idle keep-alive timeout, and a cap on
concurrent connections (``limit_concurrency``, 503 beyond). Body size and body read time are
bounded by :class:`~._limits.BodyLimitMiddleware`, inside the application. uvicorn's access
log (a line per request) is off unless ``access_log``. On either protocol a response's status
line and headers are written with its body, in one ``transport.write`` (uvicorn writes them
apart: two ``send()`` system calls and two TCP segments per response, measured at 13 % of the
time a server process held its interpreter lock under load); see :class:`_OneWrite`.

:func:`serve` runs the service in one process, or in ``processes`` worker processes forked
from a supervisor that binds the listening socket first. They share it, and each new connection
goes to the process holding the fewest (:mod:`._balance`; left to the kernel, a burst of
connections lands mostly on one process). Each worker builds its own application
(``app_factory``, after the fork: no SQLite connection or thread crosses it) and applies every
limit above **per process**. The supervisor stops the workers on SIGTERM / SIGINT / SIGHUP
(SIGTERM each, SIGKILL after ``stop_timeout``), replaces a worker that dies after its first
seconds, and stops them all with status 1 when one dies at start; a worker whose supervisor is
gone (even killed with SIGKILL) stops by itself within a second: no orphan keeps the port.

Before a process serves, its application is warmed up: what the first requests would load or
build on first use (anyio's event-loop backend, the lazily made tables of the hook path) is
loaded by one in-process call of each hook service on a request with no patient data
(``state.warm_up`` of :func:`~._app.create_app`: nothing is fetched, no card is recorded in the
audit log). Without it the first hook call of each process took 45-60 ms instead of 2-3, and
every request queued behind it waited as long: under load, the slowest percent of requests.
Then everything the process holds (the modules, the answer-code tables, the policy) is moved
out of the garbage collector's generations (:func:`gc.freeze`):
the collector's full passes, which run every so many requests, then scan only what requests
allocate, not the tens of thousands of long-lived objects (a pause of several milliseconds
each, seen as tail latency). Its interpreter then switches threads every ``switch_interval``
seconds (:func:`sys.setswitchinterval`, 2 ms by default against Python's 5 ms): the event loop
waits less for the lock that a screening thread holds before it reads the next request or sends
an answer (measured in ``benchmarks/README.md``).

May import: the standard library, uvicorn and anyio (the ``service`` extra; httptools and
uvloop when installed) and :mod:`._balance`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dryneedle.service._balance import GONE, Counts, balanced_server

__all__ = ["SWITCH_INTERVAL", "serve", "server_config"]

SWITCH_INTERVAL = 0.002
"""Seconds between thread switches in a server process (see above; Python's default: 0.005)."""


def _header_timeout(base: Any, header_timeout: float) -> Any:
    """Return ``base`` (a uvicorn HTTP protocol) closing connections whose headers are late.

    The deadline is armed when the connection opens and when a response completes; it closes
    the connection when no new request's headers have completed by then (a request being
    answered -- e.g. a pipelined one -- is never cut).
    """

    class HeaderTimeout(base):  # type: ignore[misc]
        _deadline: Any = None

        def _arm(self) -> None:
            cycle = self.cycle
            if self._deadline is not None:
                self._deadline.cancel()
            if self.transport.is_closing():
                return

            def expire() -> None:
                idle = cycle is None or cycle.response_complete
                if self.cycle is cycle and idle and not self.transport.is_closing():
                    self.transport.close()  # no new request started in time

            self._deadline = self.loop.call_later(header_timeout, expire)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return HeaderTimeout


_JOIN_LIMIT = 64 * 1024
"""Largest body write joined to the held response head (a larger one follows it: no copy)."""


class _OneWrite:
    """The transport of one request-response cycle: the response head waits for the body.

    uvicorn writes a response's status line and headers, then its body, with two
    ``transport.write`` calls: two ``send()`` system calls, two TCP segments. This proxy holds
    the first write of the cycle (the head) and writes it with the next one (the body) in one
    call. The held head is written on its own by every other path: :meth:`close` (an error
    after the head, ``Connection: close``), :meth:`flush` (the protocol calls it when the
    response is complete -- ``HEAD``, no body -- and before writing an answer of its own), and
    at the event loop's next turn at the latest (an application that sends the head and awaits
    before its body: a streaming response sees its head written without delay). A cycle that
    still owes a ``100 Continue`` (``Expect: 100-continue``) does not get one: its first write
    may be the ``100``.
    """

    __slots__ = ("_head", "_loop", "_transport", "_written")

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._head: Any = None
        self._written = False  # the head has been seen: writes pass through

    def write(self, data: Any) -> None:
        """Hold the head; write the body with it (or, after that, write at once)."""
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _JOIN_LIMIT:
                self._transport.write(head + data)
                return
            self._transport.write(head)
        elif not self._written:
            self._written = True
            self._head = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Write the held head, if any (not into a connection that is closing)."""
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        """Write the held head, then close the connection."""
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing (the transport's answer)."""
        result: bool = self._transport.is_closing()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _one_write(base: Any) -> Any:
    """Return ``base`` (a uvicorn HTTP protocol) writing each response head with its body.

    Each new request-response cycle gets a :class:`_OneWrite` transport (see there); the
    protocol flushes it when the response completes and before an answer of its own (400 or
    431 for a bad or oversized head).
    """

    class OneWrite(base):  # type: ignore[misc]
        def _coalesce(self) -> None:
            cycle = self.cycle
            if (cycle is not None and cycle.transport is self.transport
                    and not cycle.response_started and not cycle.waiting_for_100_continue):
                cycle.transport = _OneWrite(self.transport, self.loop)

        def _flush(self) -> None:
            cycle = self.cycle
            if cycle is not None and type(cycle.transport) is _OneWrite:
                cycle.transport.flush()

        def send_400_response(self, msg: str) -> None:
            self._flush()
            super().send_400_response(msg)

        def on_response_complete(self) -> None:
            self._flush()
            super().on_response_complete()

    return OneWrite


class _HeadTooLargeError(Exception):
    """Raised from an httptools callback: the request line and headers exceed the cap."""


def _httptools_protocol(header_timeout: float, max_header_bytes: int) -> type:
    """The httptools protocol of uvicorn, with the header timeout and a request-head size cap.

    httptools has no cap of its own: the bytes of a request head are counted as they arrive
    (while the head is incomplete) and as parsed (URL and header fields, when the head ends in
    a read that also carries body bytes); beyond ``max_header_bytes`` the answer is **431**
    and the connection is closed.
    """
    from uvicorn.protocols.http.httptools_impl import (  # noqa: PLC0415 - optional extra
        HttpToolsProtocol,
    )

    base = _one_write(_header_timeout(HttpToolsProtocol, header_timeout))

    class HeadLimited(base):  # type: ignore[misc,valid-type]
        _head: int | None = 0  # raw bytes of an incomplete head; None in a body / answer
        _parsed = 0  # parsed bytes of the current head
        _too_large = False

        def _count(self, size: int) -> None:
            self._parsed += size
            if self._parsed > max_header_bytes:
                self._too_large = True
                raise _HeadTooLargeError  # httptools stops; uvicorn answers (send_400_response)

        def data_received(self, data: bytes) -> None:
            if self._head is not None:
                self._head += len(data)
            super().data_received(data)
            if (self._head is not None and self._head > max_header_bytes
                    and not self._too_large and not self.transport.is_closing()):
                self._too_large = True
                self.send_400_response("")  # an incomplete head already over the cap

        def send_400_response(self, msg: str) -> None:
            if not self._too_large:
                super().send_400_response(msg)
                return
            self._flush()  # a response held for the previous request goes first
            body = b"request line and headers too large"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; "
                b"charset=utf-8\r\ncontent-length: " + str(len(body)).encode() +
                b"\r\nconnection: close\r\n\r\n" + body)
            self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._parsed = 16  # the method, spaces, HTTP version and line ends (about)

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._head = None
            super().on_headers_complete()
            self._coalesce()

        def on_message_complete(self) -> None:
            self._head = 0  # what follows is the next request's head
            super().on_message_complete()

    return HeadLimited


def _protocol(http: str, header_timeout: float, max_header_bytes: int) -> type:
    """The HTTP protocol class: httptools when installed (``auto``), else h11."""
    if http in ("auto", "httptools"):
        try:
            import httptools  # noqa: F401, PLC0415 - optional: faster than h11
        except ImportError:
            if http == "httptools":
                raise
        else:
            return _httptools_protocol(header_timeout, max_header_bytes)
    from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: PLC0415 - optional extra

    # h11 caps the head itself (h11_max_incomplete_event_size in server_config; it answers 400):
    # a head still incomplete past the cap (a complete one read at once is not measured).
    class H11(_one_write(_header_timeout(H11Protocol, header_timeout))):  # type: ignore[misc]
        def handle_events(self) -> None:
            super().handle_events()
            self._coalesce()  # the cycle of a request that has just begun, if any

    return H11


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    header_timeout: float = 10.0,
    keep_alive: int = 5,
    max_header_bytes: int = 16 * 1024,
    max_connections: int = 2048,
    log_level: str = "warning",
    access_log: bool = False,
    http: str = "auto",
    loop: str = "auto",
    **kwargs: Any,
) -> Any:
    """Return a ``uvicorn.Config`` serving ``app`` with the connection limits above.

    Args:
        app: The ASGI application (:func:`~dryneedle.service.create_app`).
        host: Interface to bind.
        port: Port.
        header_timeout: Seconds a connection may take to send a request line and headers.
        keep_alive: Seconds an idle keep-alive connection stays open.
        max_header_bytes: Largest request line + headers.
        max_connections: Concurrent connections and tasks (503 beyond).
        log_level: uvicorn's log level.
        access_log: Log a line per request (uvicorn's access log; the audit log records
            every card either way).
        http: ``auto`` (httptools when installed, else h11), ``httptools`` or ``h11``.
        loop: ``auto`` (uvloop when installed, else asyncio), ``uvloop`` or ``asyncio``.
        **kwargs: Passed to ``uvicorn.Config``.
    """
    import uvicorn  # noqa: PLC0415 - optional extra

    return uvicorn.Config(
        app, host=host, port=port, http=_protocol(http, header_timeout, max_header_bytes),
        ws="none", lifespan="off", loop=loop, timeout_keep_alive=keep_alive,
        h11_max_incomplete_event_size=max_header_bytes, limit_concurrency=max_connections,
        log_level=log_level, access_log=access_log, **kwargs,
    )


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)
    return sock


def _warm() -> None:
    """Load now what the first request would otherwise load: anyio's asyncio backend.

    anyio imports its event-loop backend on its first use, which took 30-40 ms of the first
    hook call over HTTP when request bodies were read under an anyio deadline (they are read
    under :func:`asyncio.timeout` now; anyio remains for Starlette's parts that use it).
    """
    try:
        import anyio  # noqa: PLC0415 - the service extra brings it
    except ImportError:  # pragma: no cover - the service extra is installed with uvicorn
        return

    async def touch() -> None:
        with anyio.move_on_after(1.0):
            await anyio.sleep(0)

    anyio.run(touch)


def _built(app_factory: Callable[[], Any], switch_interval: float | None) -> Any:
    """Build and warm up the application, freeze what the process holds, set its interval.

    See the module docstring; ``None`` keeps the interpreter's thread switch interval. The
    application's ``state.warm_up()``, when it has one, is called before serving.
    """
    app = app_factory()
    _warm()
    warm_up = getattr(getattr(app, "state", None), "warm_up", None)
    if callable(warm_up):
        warm_up()
    gc.collect()
    gc.freeze()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    return app


def _worker(app_factory: Callable[[], Any], sock: socket.socket, supervisor: int,
            switch_interval: float | None, limits: Mapping[str, Any], counts: Counts,
            slot: int) -> int:
    """Run one worker process's server on the shared socket; return its exit status."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # uvicorn handles these while it runs
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor stops the workers
    server = balanced_server(server_config(_built(app_factory, switch_interval), **limits),
                             sock, counts, slot)

    def orphaned() -> None:
        while not server.should_exit:
            if os.getppid() != supervisor:  # the supervisor is gone
                server.should_exit = True
                return
            time.sleep(0.5)

    threading.Thread(target=orphaned, daemon=True).start()
    server.run(sockets=[])  # the acceptor serves ``sock`` (see _balance)
    return 0


def serve(
    app_factory: Callable[[], Any],
    *,
    processes: int = 1,
    host: str = "127.0.0.1",
    port: int = 8080,
    stop_timeout: float = 15.0,
    switch_interval: float | None = SWITCH_INTERVAL,
    **limits: Any,
) -> int:
    """Serve the application until stopped (see the module docstring); return an exit status.

    Args:
        app_factory: Makes the ASGI application (once per process, after the fork).
        processes: Worker processes (1: the server runs in this process).
        host: Interface to bind.
        port: Port.
        stop_timeout: Seconds the workers have to stop before they are killed.
        switch_interval: Thread switch interval of each serving process
            (:func:`sys.setswitchinterval`); ``None`` keeps the interpreter's.
        **limits: Passed to :func:`server_config` (they apply per process).
    """
    import uvicorn  # noqa: PLC0415 - optional extra

    if processes <= 1:
        uvicorn.Server(server_config(_built(app_factory, switch_interval), host=host,
                                     port=port, **limits)).run()
        return 0
    sock = _bind(host, port)
    supervisor = os.getpid()
    counts = Counts(processes)  # shared with the workers: connections held by each
    workers: dict[int, tuple[float, int]] = {}  # pid -> (start time, slot)
    stopping: list[int] = []

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - in the worker (tests see it over HTTP)
            status = 1
            try:
                status = _worker(app_factory, sock, supervisor, switch_interval,
                                 {"host": host, "port": port, **limits}, counts, slot)
            finally:
                os._exit(status)
        workers[pid] = (time.monotonic(), slot)

    previous = {n: signal.signal(n, lambda n, _f: stopping.append(n)) for n in _STOP_SIGNALS}
    status = 0
    try:
        for slot in range(processes):
            spawn(slot)
        while not stopping:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.2)
                continue
            gone = workers.pop(pid, None)
            if gone is None:
                continue
            started, slot = gone
            counts.slots[slot] = GONE  # until its replacement serves: never the emptiest
            if time.monotonic() - started < 5.0:  # it could not start: do not loop
                status = 1
                break
            spawn(slot)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + stop_timeout
        while workers and time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
            else:
                workers.pop(pid, None)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        sock.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return status

