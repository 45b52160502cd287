"""Coalescing of concurrent calls into batches: one call does the work for everyone waiting.

Used where one batched call costs little more than a single one: embedding several queries in
one forward pass, or searching several query vectors in one scan of a flat FAISS index (the
scan reads every stored vector once, whether for one query or for eight).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")

_UNSET = object()


class _Pending(Generic[T]):
    __slots__ = ("error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: object = _UNSET
        self.error: BaseException | None = None


class Coalescer(Generic[T, R]):
    """Runs ``work`` over the items of every call that arrived while it was busy.

    A call queues its item, then waits for the run lock. Whichever caller gets the lock and
    finds its own item not yet done takes the whole queue and runs ``work`` on it once; the
    callers whose items that run covered find their results when they get the lock in turn.
    A lone caller pays one lock and one list: no timer, no waiting for company. If ``work``
    raises, every call of that batch raises the same exception.
    """

    def __init__(
        self,
        work: Callable[[Sequence[T]], Sequence[R]],
        lock: threading.Lock | None = None,
    ) -> None:
        """Set up the queue.

        Args:
            work: Maps a batch of items to one result per item, in order.
            lock: The lock ``work`` runs under, when it must also exclude other users of the
                same resource (a model that other code calls too); a new one if None.
        """
        self._work = work
        self._run_lock = lock or threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending[T]] = []

    def __call__(self, item: T) -> R:
        """Return ``work``'s result for ``item``, computed in a batch with concurrent calls."""
        pending = _Pending(item)
        with self._queue_lock:
            self._queue.append(pending)
        with self._run_lock:
            if pending.result is _UNSET and pending.error is None:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    results = self._work([p.item for p in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"batched work returned {len(results)} results for {len(batch)} items"
                        )
                except BaseException as error:
                    for waiting in batch:
                        waiting.error = error
                else:
                    for waiting, result in zip(batch, results, strict=True):
                        waiting.result = result
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]
