"""The service's worker threads (:class:`WorkerThreads`) and response JSON (:func:`json_bytes`)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dryneedle.service import _workers
from dryneedle.service._workers import WorkerThreads, json_bytes

TIMEOUT = 10.0


def _stdlib(content: Any) -> bytes:
    """What Starlette's JSONResponse renders."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_json_bytes_are_starlettes(content: Any) -> None:
    assert json_bytes(content) == _stdlib(content)


@pytest.mark.parametrize("content", [
    {1: "int key"}, {"big": 2**70}, {"t": (1, 2)}, {"nested": {"é": ["\u2028", "\x00"]}},
])
def test_json_bytes_fall_back_to_the_standard_library(content: Any, monkeypatch: Any) -> None:
    assert json_bytes(content) == _stdlib(content)
    monkeypatch.setattr(_workers, "_orjson", None)  # as if orjson were not installed
    assert json_bytes(content) == _stdlib(content)


@pytest.mark.parametrize("content", [{"x": {1, 2}}, {"x": object()}, {"x": float("nan")}])
def test_json_bytes_refuse_what_the_standard_library_refuses(content: Any,
                                                             monkeypatch: Any) -> None:
    if content["x"] != content["x"]:  # NaN: orjson would write null
        monkeypatch.setattr(_workers, "_orjson", None)
    with pytest.raises((TypeError, ValueError)):
        _stdlib(content)
    with pytest.raises((TypeError, ValueError)):
        json_bytes(content)


def test_at_most_size_calls_at_once_first_come_first_served() -> None:
    running: list[int] = []
    peak: list[int] = []
    order: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            running.append(i)
            peak.append(len(running))
        time.sleep(0.01)
        with lock:
            running.remove(i)
            order.append(i)
        return i * i

    async def main() -> list[int]:
        threads = WorkerThreads(3)
        ticks = 0

        async def tick() -> None:  # the event loop keeps running meanwhile
            nonlocal ticks
            while len(order) < 30:
                ticks += 1
                await asyncio.sleep(0.001)

        clock = asyncio.ensure_future(tick())
        results = await asyncio.gather(*(threads.run(work, i) for i in range(30)))
        await clock
        assert ticks > 10
        assert len(threads._threads) == 3
        return results

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == [i * i for i in range(30)]
    assert max(peak) <= 3
    assert sorted(order) == list(range(30))

    async def one_thread() -> None:
        order.clear()
        single = WorkerThreads(1)
        await asyncio.gather(*(single.run(work, i) for i in range(10)))

    asyncio.run(asyncio.wait_for(one_thread(), TIMEOUT))
    assert order == list(range(10))  # first come, first served


def test_errors_reach_the_caller_and_cancelled_calls_still_finish() -> None:
    finished = threading.Event()

    def fail() -> None:
        raise KeyError("boom")

    def slow() -> str:
        time.sleep(0.2)
        finished.set()
        return "done"

    async def main() -> None:
        threads = WorkerThreads(1)
        with pytest.raises(KeyError, match="boom"):
            await threads.run(fail)
        task = asyncio.ensure_future(threads.run(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await threads.run(str, 7) == "7"  # after the cancelled one, in order
        assert finished.is_set()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least one"):
        WorkerThreads(0)
