"""Worker threads for the service's blocking work, and the JSON of its responses.

What it is for: :class:`WorkerThreads` runs a function in one of ``size`` threads and awaits
its result on the event loop: screening, JWT checks, FHIR fetches and audit writes never run
on the loop, at most ``size`` at a time, the others waiting their turn in order (first come,
first served). Of those, at most ``cpu_slots`` compute at once: a call holds a slot while it
runs and gives it to the next call while it waits for the network (:func:`waiting_for_io`,
around the ``fhirServer`` and JWK Set fetches). One process has one interpreter lock, so
more calls computing at once only share it: each takes longer, and a burst of calls all finish
late together instead of one after another (measured in ``benchmarks/README.md``); a slow FHIR
server still holds up no computing call. A thread takes a slot before it takes a call and,
while calls wait, runs them one after another: under load no call passes from thread to
thread (:class:`WorkerThreads`). It does what ``anyio.to_thread.run_sync`` with a
``CapacityLimiter`` did here, for a fraction of the CPU per call (no thread woken while one
is busy, the result handed back with ``call_soon_threadsafe``). A call whose
awaiting task is cancelled still runs to its end in its thread (a started screening or audit
write is never cut); its result is dropped.

:func:`json_bytes` serialises a response body: orjson when installed, else the standard
library, with the bytes Starlette's ``JSONResponse`` writes (compact, UTF-8, not ASCII-escaped).
What orjson refuses (non-string keys, integers beyond 64 bits, other types) goes to the
standard library, which converts it as before or raises. (The service's bodies hold no floats:
orjson would write ``1e-05`` as ``0.00001`` and NaN as ``null``.)

May import: the standard library and orjson (optional).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["WorkerThreads", "json_bytes", "waiting_for_io"]

T = TypeVar("T")

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised without orjson
    _orjson = None  # type: ignore[assignment]


def _stdlib_json(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def _unsupported(value: Any) -> Any:
    raise TypeError(type(value).__name__)  # the standard library decides (and raises)


def json_bytes(content: Any) -> bytes:
    """Return ``content`` as compact UTF-8 JSON (the bytes of Starlette's ``JSONResponse``).

    >>> json_bytes({"cards": [], "note": "pr\u00eate", "n": 1}).decode("utf-8")
    '{"cards":[],"note":"prête","n":1}'
    >>> json_bytes({1: True})  # what orjson refuses: the standard library's answer
    b'{"1":true}'
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(content, default=_unsupported, option=(
                _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME))
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return _stdlib_json(content)


_Call = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, asyncio.Future[Any]]


class _Worker:
    """One worker thread's wake-up: a lock it sleeps on, and what it is handed with a slot.

    The thread sleeps by acquiring ``wake`` (held while it runs); whoever hands it a compute
    slot (and, when it is idle, a call) releases it.
    """

    __slots__ = ("call", "wake")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.call: _Call | None = None


_held = threading.local()  # .pool, .worker: the pool whose slot this worker thread holds


@contextlib.contextmanager
def waiting_for_io() -> Iterator[None]:
    """Give this worker thread's compute slot to the next call while the block waits for I/O.

    Around a network call made by a call of :class:`WorkerThreads` (a ``fhirServer`` fetch, a
    JWK Set fetch): the slot is taken back, in turn, when the block ends. Outside a worker
    thread (or nested) it does nothing.

    >>> with waiting_for_io():
    ...     pass
    """
    pool: WorkerThreads | None = getattr(_held, "pool", None)
    if pool is None:
        yield
        return
    worker: _Worker = _held.worker
    _held.pool = None
    pool._give_slot()
    try:
        yield
    finally:
        pool._take_slot(worker)
        _held.pool = pool


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the awaiting task was cancelled: the result is dropped
    if error is None:
        future.set_result(result)
    elif isinstance(error, (StopIteration, KeyboardInterrupt, SystemExit)):
        # A future refuses StopIteration (the request would hang), and the other two would
        # stop the event loop, every request with it: the caller gets a RuntimeError instead,
        # as asyncio does for a coroutine raising StopIteration.
        wrapped = RuntimeError(f"the call raised {type(error).__name__}")
        wrapped.__cause__ = error
        future.set_exception(wrapped)
    else:
        future.set_exception(error)


def _answer(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
            error: BaseException | None) -> None:
    """Hand a call's outcome to its event loop (a closed loop: nobody awaits it, dropped)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, result, error)


class WorkerThreads:
    """Up to ``size`` daemon threads running blocking calls for an event loop (see above).

    Args:
        size: Calls running at the same time (threads, started as needed), computing or
            waiting for the network.
        cpu_slots: Of those, calls computing at the same time (default: ``size``); a call
            waiting in :func:`waiting_for_io` does not count.

    A thread takes a compute slot before it takes a call, and one that ends a call while
    others are waiting keeps its slot and runs the next: under steady load one thread per slot
    runs the calls one after another, and no call is handed from thread to thread (each hand-off
    costs a wake-up, a context switch and a turn at the interpreter lock). A thread back from
    a network wait gets a slot before the calls not yet started (it is older); calls start
    in the order they came (first come, first served).

    >>> import asyncio
    >>> asyncio.run(WorkerThreads(2, cpu_slots=1).run(sum, [1, 2, 3]))
    6
    """

    def __init__(self, size: int, cpu_slots: int | None = None) -> None:
        if size < 1:
            msg = "at least one worker thread"
            raise ValueError(msg)
        if cpu_slots is not None and cpu_slots < 1:
            msg = "at least one compute slot"
            raise ValueError(msg)
        self.size = size
        self.cpu_slots = size if cpu_slots is None else min(cpu_slots, size)
        self._reset()

    def _reset(self) -> None:
        """Start with no thread and no call (also in a child forked after threads started)."""
        self._lock = threading.Lock()  # guards everything below
        self._free = self.cpu_slots  # compute slots nobody holds
        self._pending: deque[_Call] = deque()  # calls not yet started, in order
        self._idle: list[_Worker] = []  # threads without a call (and without a slot)
        self._returning: deque[_Worker] = deque()  # threads back from I/O, waiting for a slot
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()

    def _dispatch(self) -> tuple[list[_Worker], list[tuple[threading.Thread, _Worker]]]:
        """Hand the free slots out (the lock held): return the threads to wake and to start."""
        wake: list[_Worker] = []
        start: list[tuple[threading.Thread, _Worker]] = []
        while self._free:
            if self._returning:
                worker = self._returning.popleft()
            elif not self._pending:
                break
            elif self._idle:
                worker = self._idle.pop()
                worker.call = self._pending.popleft()
            elif len(self._threads) < self.size:  # a new thread, started with its call
                worker = _Worker()
                worker.call = self._pending.popleft()
                thread = threading.Thread(target=self._serve, args=(worker,), daemon=True,
                                          name=f"dryneedle-worker-{len(self._threads)}")
                self._threads.append(thread)
                start.append((thread, worker))
                self._free -= 1
                continue
            else:
                break  # every thread holds a call (some wait for the network)
            self._free -= 1
            wake.append(worker)
        return wake, start

    def _act(self, wake: list[_Worker], start: list[tuple[threading.Thread, _Worker]]) -> None:
        """Wake and start the threads :meth:`_dispatch` chose (the lock released).

        A thread that cannot start (``can't start new thread``) gives its slot and its place
        back; its call fails with that error (as ``run`` raised it before); the slot goes on.
        """
        for worker in wake:
            worker.wake.release()
        while start:
            thread, worker = start.pop(0)
            try:
                thread.start()
            except BaseException as exc:  # handed to the awaiting task
                call = worker.call
                worker.call = None
                with self._lock:
                    self._threads.remove(thread)
                    self._free += 1
                    more_wake, more_start = self._dispatch()
                if call is not None:
                    _answer(call[2], call[3], None, exc)
                for other in more_wake:
                    other.wake.release()
                start.extend(more_start)

    def _give_slot(self) -> None:
        """Give back the calling thread's slot (it keeps its call)."""
        with self._lock:
            self._free += 1
            actions = self._dispatch()
        self._act(*actions)

    def _take_slot(self, worker: _Worker) -> None:
        """Wait for a slot for the calling thread (back from I/O; before unstarted calls)."""
        with self._lock:
            if self._free and not self._returning:
                self._free -= 1
                return
            self._returning.append(worker)
        worker.wake.acquire()  # released with a slot

    def _serve(self, worker: _Worker) -> None:
        """Run calls, the slot held, until none is waiting; then sleep until handed one."""
        _held.worker = worker
        while True:
            call = worker.call
            worker.call = None
            if call is None:  # pragma: no cover - a thread is only woken with a call
                worker.wake.acquire()  # (were it not, it would wait again, not spin)
                continue
            function, args, loop, future = call
            del call
            _held.pool = self
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting task
                error: BaseException | None = exc
                result = None
            else:
                error = None
            finally:
                _held.pool = None
            _answer(loop, future, result, error)
            del function, args, loop, future, result, error  # nothing kept alive while idle
            with self._lock:
                if self._pending and not self._returning:  # the slot kept, the next call
                    worker.call = self._pending.popleft()
                    continue
                self._free += 1
                self._idle.append(worker)
                actions = self._dispatch()
            self._act(*actions)
            worker.wake.acquire()  # released with a slot and a call

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in a worker thread; return its result (or raise its error).

        ``StopIteration``, ``KeyboardInterrupt`` and ``SystemExit`` from the call come as a
        ``RuntimeError`` caused by them (they would hang the request or stop the loop).

        Args:
            function: The blocking call.
            *args: Its arguments.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._pid != os.getpid():  # the calls of the parent are not this process's
            self._reset()
        with self._lock:
            self._pending.append((function, args, loop, future))
            wake, start = self._dispatch()  # nothing when every slot is held (under load)
        if wake or start:
            self._act(wake, start)
        try:
            return await future
        finally:
            del future  # no cycle: its error's traceback -> this frame -> future -> error
