"""Coalescing concurrent calls: every caller gets its own result, batches really form."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from core.coalesce import Coalescer


def test_lone_call_runs_alone() -> None:
    batches: list[list[int]] = []

    def work(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        return [i * 10 for i in items]

    square = Coalescer(work)
    assert [square(i) for i in range(3)] == [0, 10, 20]
    assert batches == [[0], [1], [2]]


def test_concurrent_calls_share_a_batch_and_get_their_own_results() -> None:
    batches: list[list[int]] = []
    first_started = threading.Event()
    release = threading.Event()

    def work(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:  # hold the first batch until the others have queued
            first_started.set()
            assert release.wait(10)
        return [i * i for i in items]

    coalesce = Coalescer(work)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        results[i] = coalesce(i)

    first = threading.Thread(target=call, args=(100,))
    first.start()
    assert first_started.wait(10)
    others = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 10
    while len(coalesce._queue) < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert results == {100: 10000, **{i: i * i for i in range(8)}}
    assert batches[0] == [100]
    assert sorted(batches[1]) == list(range(8))  # the eight waiting calls: one batch
    assert len(batches) == 2


def test_an_error_reaches_every_caller_of_the_batch_and_the_next_call_works() -> None:
    calls = 0

    def work(items: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")
        return [s.upper() for s in items]

    shout = Coalescer(work)
    with pytest.raises(ValueError, match="boom"):
        shout("a")
    assert shout("b") == "B"


def test_wrong_result_count_is_an_error() -> None:
    broken = Coalescer(lambda items: [])
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        broken("x")


class WatchedLock:
    """A lock that records that someone tried to take it."""

    def __init__(self) -> None:
        self.inner = threading.Lock()
        self.wanted = threading.Event()

    def __enter__(self) -> WatchedLock:
        self.wanted.set()
        self.inner.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


def test_shared_lock_excludes_other_users() -> None:
    lock = WatchedLock()
    coalesce = Coalescer(lambda items: [len(items)] * len(items), lock=lock)  # type: ignore[arg-type]
    got: list[int] = []
    with lock.inner:  # another user of the resource holds it: the call waits
        t = threading.Thread(target=lambda: got.append(coalesce("q")))
        t.start()
        assert lock.wanted.wait(10), "the call did not take the shared lock"
        assert t.is_alive()
        assert got == []
    t.join(10)
    assert got == [1]
