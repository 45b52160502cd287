from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from core.errors import Overloaded
from llms.base import GenerationParams
from llms.hf_local import HFLocalGenerator
from llms.queue import GenerationGate, iterate_in_thread
from tests.llms.chats import STORY


def test_concurrency_is_honoured() -> None:
    async def scenario() -> int:
        gate = GenerationGate(concurrency=2, queue_size=10)
        peak = 0

        async def job() -> None:
            nonlocal peak
            async with gate.slot():
                peak = max(peak, gate.active)
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(job()) for _ in range(6)]
        await asyncio.sleep(0.005)
        assert (gate.active, gate.depth) == (2, 4)
        await asyncio.gather(*tasks)
        assert (gate.active, gate.depth) == (0, 0)
        return peak

    assert asyncio.run(scenario()) == 2


def test_overflow_is_refused_at_once_with_retry_after() -> None:
    async def scenario() -> None:
        gate = GenerationGate(concurrency=1, queue_size=1)
        release = asyncio.Event()
        entered = asyncio.Event()

        async def holder() -> None:
            async with gate.slot():
                entered.set()
                await release.wait()

        async def waiter() -> None:
            async with gate.slot():
                pass

        first = asyncio.create_task(holder())
        await entered.wait()
        second = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        assert (gate.active, gate.depth) == (1, 1)

        async def third() -> None:
            async with gate.slot():
                pytest.fail("a third caller must not get a slot")

        # Refused at once: a third caller that waited would time out here instead.
        with pytest.raises(Overloaded, match="generation queue is full") as refused:
            await asyncio.wait_for(third(), 1)
        assert refused.value.retry_after >= 1

        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 1)
        assert (gate.active, gate.depth) == (0, 0)

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def scenario() -> None:
        gate = GenerationGate(concurrency=1, queue_size=1)
        async with gate.slot():

            async def waiter() -> None:
                async with gate.slot():
                    pass

            task = asyncio.create_task(waiter())
            await asyncio.sleep(0)
            assert gate.depth == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert gate.depth == 0
        async with gate.slot():  # the slot was released and can be taken again
            assert gate.active == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "cancel_first", [True, False], ids=["cancel-then-release", "hand-over-then-cancel"]
)
def test_a_waiter_cancelled_as_the_slot_frees_loses_no_slot(cancel_first: bool) -> None:
    async def scenario() -> None:
        gate = GenerationGate(concurrency=1, queue_size=2)
        release = asyncio.Event()
        tasks: dict[str, asyncio.Task[None]] = {}

        async def waiter() -> None:
            async with gate.slot():
                pytest.fail("the cancelled waiter must not run")

        async def holder() -> None:
            async with gate.slot():
                await release.wait()
                if cancel_first:
                    tasks["victim"].cancel()  # the release below then meets a cancelled turn
            if not cancel_first:
                tasks["victim"].cancel()  # in the same step as the hand-over to it

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        tasks["victim"] = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        assert (gate.active, gate.depth) == (1, 1)
        release.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await tasks["victim"]
        assert (gate.active, gate.depth) == (0, 0)
        async with gate.slot():
            assert gate.active == 1

    asyncio.run(scenario())


def test_zero_queue_refuses_whenever_busy() -> None:
    async def scenario() -> None:
        gate = GenerationGate(concurrency=1, queue_size=0)
        async with gate.slot():
            with pytest.raises(Overloaded):
                async with gate.slot():
                    pass

    asyncio.run(scenario())


def test_iterate_in_thread_yields_in_order_off_the_loop() -> None:
    threads: set[str] = set()

    def numbers() -> Iterator[int]:
        for i in range(5):
            threads.add(threading.current_thread().name)
            time.sleep(0.001)
            yield i

    async def collect() -> list[int]:
        return [i async for i in iterate_in_thread(numbers)]

    assert asyncio.run(collect()) == [0, 1, 2, 3, 4]
    assert threads == {"iterate-in-thread"}


def test_iterate_in_thread_reraises_errors() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("broken source")

    async def collect() -> list[int]:
        return [i async for i in iterate_in_thread(failing)]

    with pytest.raises(ValueError, match="broken source"):
        asyncio.run(collect())


def test_iterate_in_thread_closes_the_source_when_the_consumer_leaves() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
                time.sleep(0.001)
        finally:
            closed.set()

    async def take_two() -> None:
        async for i in iterate_in_thread(endless):
            if i == 1:
                break

    asyncio.run(take_two())
    assert closed.is_set()


def test_iterate_in_thread_closes_the_source_on_cancellation() -> None:
    closed = threading.Event()

    def slow() -> Iterator[int]:
        try:
            while True:
                time.sleep(0.01)
                yield 0
        finally:
            closed.set()

    async def consume() -> None:
        async for _ in iterate_in_thread(slow):
            pass

    async def scenario() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert closed.is_set()


@pytest.mark.integration
def test_gate_and_stream_with_the_real_model(hf_generator: HFLocalGenerator) -> None:
    params = GenerationParams(max_new_tokens=200)

    async def scenario() -> str:
        gate = GenerationGate(concurrency=1, queue_size=0)
        async with gate.slot():
            async for delta in iterate_in_thread(lambda: hf_generator.stream(STORY, params)):
                return delta
        return ""

    started = time.monotonic()
    assert asyncio.run(scenario())
    assert time.monotonic() - started < 30
    # The worker resolves ``finished`` as its last step, so the loop may return a moment before
    # the thread has exited: give it that moment, then nothing may be left running.
    workers = [t for t in threading.enumerate() if t.name in {"hf-generate", "iterate-in-thread"}]
    for worker in workers:
        worker.join(timeout=5)
    assert not [t for t in workers if t.is_alive()]
