"""Worker threads for the service's blocking work, and the JSON of its responses.

What it is for: :class:`WorkerThreads` runs a function in one of ``size`` threads and awaits
its result on the event loop: screening, JWT checks, FHIR fetches and audit writes never run
on the loop, at most ``size`` at a time, the others waiting their turn in order (first come,
first served). Of those, at most ``cpu_slots`` compute at once: a call holds a slot while it
runs and gives it to the next call while it waits for the network (:func:`waiting_for_io`,
around the ``fhirServer`` and JWK Set fetches). One process has one interpreter lock, so
more calls computing at once only share it: each takes longer, and a burst of calls all finish
late together instead of one after another (measured in ``benchmarks/README.md``); a slow FHIR
server still holds up no computing call. It does what ``anyio.to_thread.run_sync`` with a
``CapacityLimiter`` did here, for a fraction of the event loop's CPU per call (a queue the
threads block on, the result handed back with ``call_soon_threadsafe``). A call whose
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
import queue
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


class _Slots:
    """A counting semaphore that hands a released slot to its longest waiter (first in, first out).

    ``threading.Semaphore`` lets a thread that arrives as a slot is released take it before the
    waiter it woke runs (which then waits again, last): under steady load a call could wait
    for seconds. Here a release gives the slot to the first waiter directly.
    """

    __slots__ = ("_free", "_lock", "_waiters")

    def __init__(self, count: int) -> None:
        self._free = count
        self._lock = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        waiter.acquire()  # released by release(), with the slot

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()  # the slot passes to it
            else:
                self._free += 1


_held = threading.local()  # .slots: the _Slots whose slot this worker thread holds


@contextlib.contextmanager
def waiting_for_io() -> Iterator[None]:
    """Give this worker thread's compute slot to the next call while the block waits for I/O.

    Around a network call made by a call of :class:`WorkerThreads` (a ``fhirServer`` fetch, a
    JWK Set fetch): the slot is taken back, in turn, when the block ends. Outside a worker
    thread (or nested) it does nothing.

    >>> with waiting_for_io():
    ...     pass
    """
    slots = getattr(_held, "slots", None)
    if slots is None:
        yield
        return
    _held.slots = None
    slots.release()
    try:
        yield
    finally:
        slots.acquire()
        _held.slots = slots


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return  # the awaiting task was cancelled: the result is dropped
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WorkerThreads:
    """Up to ``size`` daemon threads running blocking calls for an event loop (see above).

    Args:
        size: Calls running at the same time (threads, started as needed), computing or
            waiting for the network.
        cpu_slots: Of those, calls computing at the same time (default: ``size``); a call
            waiting in :func:`waiting_for_io` does not count.

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
        self._slots = _Slots(self.cpu_slots)
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                             asyncio.AbstractEventLoop,
                                             asyncio.Future[Any]]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _serve(self) -> None:
        get = self._calls.get
        slots = self._slots
        while True:
            function, args, loop, future = get()
            slots.acquire()  # the calls waiting for a slot are woken in order
            _held.slots = slots
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting task
                error: BaseException | None = exc
                result = None
            else:
                error = None
            finally:
                _held.slots = None
                slots.release()
            loop.call_soon_threadsafe(_settle, future, result, error)
            del function, args, future, result, error  # nothing kept alive while waiting

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in a worker thread; return its result (or raise its error).

        Args:
            function: The blocking call.
            *args: Its arguments.
        """
        loop = asyncio.get_running_loop()
        if len(self._threads) < self.size:
            with self._lock:
                if len(self._threads) < self.size:
                    thread = threading.Thread(target=self._serve, daemon=True,
                                              name=f"dryneedle-worker-{len(self._threads)}")
                    thread.start()
                    self._threads.append(thread)
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((function, args, loop, future))
        return await future
