"""The service's worker threads (:class:`WorkerThreads`) and response JSON (:func:`json_bytes`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
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
        assert max(peak) == 1  # one computing at a time ...
        assert len(threads._threads) == 1  # ... one thread running them one after another
        slow = asyncio.ensure_future(threads.run(fetching))
        await asyncio.sleep(0.05)
        assert await threads.run(other) == "other"  # one slot, taken while `slow` waits
        assert await slow == "fetched"
        assert len(threads._threads) == 2  # a second thread, for the call that ran meanwhile

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert WorkerThreads(2, cpu_slots=5).cpu_slots == 2  # never more than the threads
    with pytest.raises(ValueError, match="compute slot"):
        WorkerThreads(2, cpu_slots=0)


def test_waiting_for_io_outside_a_worker_thread_does_nothing() -> None:
    with _workers.waiting_for_io(), _workers.waiting_for_io():
        assert getattr(_workers._held, "pool", None) is None


def test_two_slots_two_threads_computing() -> None:
    computing: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    def compute(i: int) -> int:
        with lock:
            computing.append(i)
            peak.append(len(computing))
        time.sleep(0.003)
        with lock:
            computing.remove(i)
        return i

    async def main() -> None:
        threads = WorkerThreads(8, cpu_slots=2)
        assert await asyncio.gather(*(threads.run(compute, i) for i in range(30))) == list(
            range(30))
        assert max(peak) == 2
        assert len(threads._threads) == 2  # not eight: no call waits in a thread of its own

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_back_from_the_network_before_the_calls_not_yet_started() -> None:
    """A call back from a network wait gets the slot before the calls not yet started; those
    start in the order they came (first come, first served), never a newcomer first."""
    order: list[str] = []
    network = threading.Event()
    holding = threading.Event()
    release = threading.Event()

    def fetching() -> None:
        with _workers.waiting_for_io():
            assert network.wait(TIMEOUT)
        order.append("back")

    def hold() -> None:
        holding.set()
        assert release.wait(TIMEOUT)
        order.append("hold")

    async def main() -> None:
        threads = WorkerThreads(3, cpu_slots=1)
        fetch = asyncio.ensure_future(threads.run(fetching))
        await asyncio.sleep(0.02)
        held = asyncio.ensure_future(threads.run(hold))  # takes the slot `fetch` gave away
        while not holding.is_set():
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(threads.run(order.append, f"call {i}")) for i in range(3)]
        await asyncio.sleep(0.02)
        network.set()  # `fetch` is back and waits for the slot, before the three calls
        await asyncio.sleep(0.02)
        assert order == []
        release.set()
        await asyncio.gather(fetch, held, *later)
        newcomer = threads.run(order.append, "newcomer")
        await newcomer

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert order == ["hold", "back", "call 0", "call 1", "call 2", "newcomer"]


def test_a_call_outliving_its_event_loop_leaves_the_threads_serving() -> None:
    """A call still running when its loop closes has nowhere to hand its result: the thread
    drops it and goes on serving (before, it died with the loop's RuntimeError)."""
    threads = WorkerThreads(1)
    started = threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.1)
        return "late"

    async def leave() -> None:
        running = asyncio.ensure_future(threads.run(slow))
        while not started.is_set():
            await asyncio.sleep(0.001)
        assert not running.done()  # the loop closes with the call running

    asyncio.run(leave())
    assert asyncio.run(asyncio.wait_for(threads.run(str, 7), TIMEOUT)) == "7"
    assert len(threads._threads) == 1
    assert threads._threads[0].is_alive()


def test_a_thread_that_cannot_start_fails_its_call_and_gives_its_slot_back(
        monkeypatch: Any) -> None:
    """``can't start new thread`` (a process or memory limit): that call fails, the pool
    keeps its slot and its place for the next one (nothing hangs)."""
    start = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def flaky(self: threading.Thread) -> None:
        if failures and self.name.startswith("dryneedle-worker"):
            raise failures.pop()
        start(self)

    monkeypatch.setattr(threading.Thread, "start", flaky)

    async def main() -> None:
        threads = WorkerThreads(1)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await threads.run(str, 1)
        assert await threads.run(str, 2) == "2"
        deadline = time.monotonic() + TIMEOUT
        while threads._free != 1:  # the thread answers, then gives its slot back
            assert time.monotonic() < deadline, "the slot never came back"
            await asyncio.sleep(0.001)
        assert len(threads._threads) == 1

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


@pytest.mark.parametrize("error", [StopIteration, KeyboardInterrupt, SystemExit])
def test_errors_that_would_hang_the_request_or_stop_the_loop_come_as_runtime_errors(
        error: type[BaseException]) -> None:
    def fail() -> None:
        raise error

    async def main() -> None:
        threads = WorkerThreads(2)
        with pytest.raises(RuntimeError, match=error.__name__) as raised:
            await threads.run(fail)
        assert isinstance(raised.value.__cause__, error)
        assert await threads.run(str, 3) == "3"  # the loop and the pool go on

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_pool_used_before_a_fork_serves_in_the_child() -> None:
    threads = WorkerThreads(2)
    assert asyncio.run(threads.run(str, 1)) == "1"  # a thread started (and idle) here
    pid = os.fork()
    if pid == 0:  # the child: its copy of the idle thread is gone
        signal.alarm(int(TIMEOUT))
        ok = asyncio.run(asyncio.wait_for(threads.run(str, 7), TIMEOUT)) == "7"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert asyncio.run(threads.run(str, 2)) == "2"  # the parent's pool is untouched
