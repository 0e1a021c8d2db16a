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


def test_at_most_cpu_slots_calls_compute_and_a_network_wait_gives_the_slot_away() -> None:
    computing: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()
    fetched = threading.Event()  # set by a call that runs while the first one waits

    def compute(i: int) -> int:
        with lock:
            computing.append(i)
            peak.append(len(computing))
        time.sleep(0.005)
        with lock:
            computing.remove(i)
        return i

    def fetching() -> str:
        with _workers.waiting_for_io():  # as a fhirServer fetch does
            assert fetched.wait(TIMEOUT), "no other call ran while this one waited"
        return "fetched"

    def other() -> str:
        fetched.set()
        return "other"

    async def main() -> None:
        threads = WorkerThreads(4, cpu_slots=1)
        assert threads.cpu_slots == 1
        results = await asyncio.gather(*(threads.run(compute, i) for i in range(20)))
        assert results == list(range(20))
        assert len(threads._threads) == 4  # four threads ...
        assert max(peak) == 1  # ... one computing at a time
        slow = asyncio.ensure_future(threads.run(fetching))
        await asyncio.sleep(0.05)
        assert await threads.run(other) == "other"  # one slot, taken while `slow` waits
        assert await slow == "fetched"

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert WorkerThreads(2, cpu_slots=5).cpu_slots == 2  # never more than the threads
    with pytest.raises(ValueError, match="compute slot"):
        WorkerThreads(2, cpu_slots=0)


def test_waiting_for_io_outside_a_worker_thread_does_nothing() -> None:
    with _workers.waiting_for_io(), _workers.waiting_for_io():
        assert getattr(_workers._held, "slots", None) is None


def test_a_released_slot_goes_to_the_longest_waiter() -> None:
    """First in, first out: a thread arriving as a slot is freed never takes it from a waiter
    (with ``threading.Semaphore`` it can, and under load a call then waits for seconds)."""
    slots = _workers._Slots(1)
    slots.acquire()
    order: list[int] = []
    threads = []
    for i in range(5):
        def wait(i: int = i) -> None:
            slots.acquire()
            order.append(i)
            slots.release()

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + TIMEOUT
        while len(slots._waiters) < i + 1:  # queued, in this order
            assert time.monotonic() < deadline
            time.sleep(0.001)
    slots.release()
    slots.acquire()  # a newcomer: served after the five waiters
    order.append(99)
    slots.release()
    for thread in threads:
        thread.join(TIMEOUT)
    assert order == [0, 1, 2, 3, 4, 99]
