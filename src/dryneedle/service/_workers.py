"""Worker threads for the service's blocking work, and the JSON of its responses.

What it is for: :class:`WorkerThreads` runs a function in one of ``size`` threads and awaits
its result on the event loop: screening, JWT checks, FHIR fetches and audit writes never run
on the loop, at most ``size`` at a time, the others waiting their turn in order (first come,
first served). It does what ``anyio.to_thread.run_sync`` with a ``CapacityLimiter`` did here,
for a fraction of the event loop's CPU per call (a queue the threads block on, the result
handed back with ``call_soon_threadsafe``; measured in ``benchmarks/README.md``). A call whose
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
import json
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WorkerThreads", "json_bytes"]

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
        size: Calls running at the same time (threads, started as needed).

    >>> import asyncio
    >>> asyncio.run(WorkerThreads(2).run(sum, [1, 2, 3]))
    6
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            msg = "at least one worker thread"
            raise ValueError(msg)
        self.size = size
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                             asyncio.AbstractEventLoop,
                                             asyncio.Future[Any]]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _serve(self) -> None:
        get = self._calls.get
        while True:
            function, args, loop, future = get()
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting task
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)
            del function, args, future  # nothing kept alive while waiting

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
