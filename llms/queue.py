"""Bounding generation work, and streaming a blocking generator into the event loop."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar, cast

from core.errors import Overloaded

T = TypeVar("T")

_DONE = object()


class GenerationGate:
    """Lets ``concurrency`` generations run and ``queue_size`` wait; refuses the rest at once.

    Use one gate per server, created and used on the server's event loop::

        async with gate.slot():
            ...  # generate

    Attributes:
        concurrency: Slots that run at once.
        queue_size: Callers that may wait for a slot.
    """

    def __init__(self, concurrency: int, queue_size: int, *, retry_after_s: float = 1.0) -> None:
        """Create an idle gate.

        Args:
            concurrency: Generations allowed at once (at least 1).
            queue_size: Callers allowed to wait (0 refuses whenever all slots are busy).
            retry_after_s: The least ``Retry-After`` suggested when refusing; grows with the
                observed generation time and the queue length.

        Raises:
            ValueError: ``concurrency`` below 1 or ``queue_size`` below 0.
        """
        if concurrency < 1 or queue_size < 0:
            raise ValueError("concurrency must be at least 1 and queue_size not negative")
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._min_retry_after = retry_after_s
        # Each waiter's own future, so the gate is bound to no event loop (a Semaphore is bound
        # to the first loop it waits on, which breaks apps reused across test clients).
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._active = 0
        self._mean_s: float | None = None

    @property
    def depth(self) -> int:
        """Callers waiting for a slot."""
        return len(self._waiters)

    @property
    def active(self) -> int:
        """Slots in use."""
        return self._active

    def retry_after(self) -> float:
        """Seconds a refused caller should wait: one mean slot time per queued round, at least 1.

        Returns:
            A whole number of seconds, at least ``retry_after_s``.
        """
        if self._mean_s is None:
            return self._min_retry_after
        rounds = (len(self._waiters) + self._active) / self.concurrency
        return float(max(self._min_retry_after, math.ceil(self._mean_s * rounds)))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a generation slot for the body of ``async with``.

        Yields:
            Nothing; the slot is released when the block exits, however it exits.

        Raises:
            Overloaded: every slot is busy and ``queue_size`` callers are already waiting.
        """
        if self._active < self.concurrency and not self._waiters:
            self._active += 1
        else:
            if len(self._waiters) >= self.queue_size:
                raise Overloaded("generation queue is full", retry_after=self.retry_after())
            await self._wait_for_hand_over()
        started = time.monotonic()
        try:
            yield
        finally:
            self._release()
            elapsed = time.monotonic() - started
            self._mean_s = elapsed if self._mean_s is None else 0.8 * self._mean_s + 0.2 * elapsed

    async def _wait_for_hand_over(self) -> None:
        """Queue up until a finishing holder hands its slot over (``active`` stays counted)."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the slot arrived just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # a releaser may have dropped it already
                    self._waiters.remove(turn)
            raise

    def _release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._active -= 1


async def iterate_in_thread(
    make_iterator: Callable[[], Iterator[T]], *, stop_timeout_s: float = 30.0
) -> AsyncIterator[T]:
    """Run a blocking iterator in a thread and yield its items on the event loop.

    ``make_iterator`` is called in the worker thread, so blocking set-up stays off the loop
    too. When the consumer stops early (``break``, ``aclose()``, cancellation), the worker
    closes the iterator after the item it is waiting for, which for ``Generator.stream`` stops
    the generation; the consumer then waits up to ``stop_timeout_s`` for that, so a
    ``GenerationGate`` slot held around the loop is released only once the model is idle.

    Args:
        make_iterator: Builds the iterator, e.g. ``lambda: generator.stream(messages, params)``.
        stop_timeout_s: How long an early stop waits for the worker to finish.

    Yields:
        The iterator's items, in order.

    Raises:
        Exception: whatever the iterator raised, re-raised on the loop.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[object] = asyncio.Queue()
    finished = loop.create_future()
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            iterator = make_iterator()
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    put(item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            put(_Failure(exc))
        else:
            put(_DONE)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(_resolve, finished)

    threading.Thread(target=work, name="iterate-in-thread", daemon=True).start()
    try:
        while True:
            item = await items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield cast(T, item)
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(finished), stop_timeout_s)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
