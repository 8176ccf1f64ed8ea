"""Group commit: concurrent calls of one kind share one statement, without waiting for company.

`Batcher.submit(item)` returns the item's own result. When no statement of the batcher is in
flight, the caller runs one at once with its item alone (so a lone call costs what it did
before: no timer, no extra task, no added latency). Calls that come while one is in flight queue
up, and the caller whose statement finished runs the next one for all of them together. Under
load a batch therefore holds everything that arrived during one round trip: many rows marked
done, or many fleet slots freed, by a single statement.

Every item gets its own outcome: its result, or the exception of the statement that carried it
(so a caller's retry logic sees exactly what a call of its own would have raised).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs `flush(items) -> results` (one result per item, in order) for queued items.

    `limit` bounds a batch (a longer queue is flushed by several statements, oldest first).
    """

    def __init__(self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], limit: int) -> None:
        self._flush = flush
        self._limit = limit
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._idle: asyncio.Future[None] | None = None
        """Set while a statement is in flight; resolved when it ends."""
        self.statements = 0
        """Statements run so far (a figure for tests and benchmarks)."""
        self.items = 0
        """Items they carried."""

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        while not future.done():
            idle = self._idle
            if idle is not None:
                # Another caller's statement is in flight: when it ends, either it carried our
                # item or we run the next statement ourselves.
                await asyncio.shield(idle)
                continue
            self._idle = loop.create_future()
            try:
                await self._run()
            finally:
                done, self._idle = self._idle, None
                done.set_result(None)
        return future.result()

    async def _run(self) -> None:
        batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
        self.statements += 1
        self.items += len(batch)
        try:
            results = await self._flush([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
