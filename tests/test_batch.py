"""Group commit (`reliability.store.batch.Batcher`): a lone call runs at once, calls arriving
during a statement share the next one, and each item gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reliability.store.batch import Batcher


class Flusher:
    """A statement that waits for the test to let it finish, recording each batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail: set[int] = set()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail & set(items):
            raise RuntimeError("statement failed")
        return [i * 10 for i in items]


async def test_a_lone_call_runs_at_once_with_its_item_alone() -> None:
    flush = Flusher()
    flush.gate.set()
    batcher = Batcher(flush, limit=100)
    assert await batcher.submit(7) == 70
    assert flush.batches == [[7]]
    assert (batcher.statements, batcher.items) == (1, 1)


async def test_calls_during_a_statement_share_the_next_one() -> None:
    flush = Flusher()
    batcher = Batcher(flush, limit=100)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the first statement is in flight
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    assert flush.batches == [[1]]
    flush.gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60]
    assert flush.batches == [[1], [2, 3, 4, 5, 6]]


async def test_the_limit_splits_a_long_queue_in_order() -> None:
    flush = Flusher()
    batcher = Batcher(flush, limit=2)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
    flush.gate.set()
    assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
    assert flush.batches == [[0], [1, 2], [3, 4], [5]]


async def test_a_failed_statement_fails_its_items_only() -> None:
    flush = Flusher()
    flush.fail = {3}
    batcher = Batcher(flush, limit=2)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3, 4)]
    flush.gate.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert outcomes[0] == 10
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:3])  # 2 and 3 shared a statement
    assert outcomes[3] == 40  # the next statement ran for 4
