"""The fleet-slot checks both stores share, after two handles won a tenant's limit of 2."""

from __future__ import annotations

from datetime import datetime, timedelta

from reliability.store import FleetSlots


async def check_slots_free_and_expire(
    a: FleetSlots,
    b: FleetSlots,
    held: list[str],
    *,
    now: datetime,
    until: datetime,
    lease: timedelta,
) -> None:
    """Handles `a` and `b` on one database hold slots `held` of tenant `t` (limit 2) until
    `until`; check what the stores share."""
    # Another tenant has slots of its own.
    assert await b.slot_acquire("u", 1, now=now, until=until) is not None
    # A released slot is free at once; a crashed holder's slot once its lease has passed.
    await a.slot_release("t", held[0])
    again = await b.slot_acquire("t", 2, now=now, until=until)
    assert again is not None
    later = until + lease
    assert await a.slot_acquire("t", 2, now=until - timedelta(seconds=1), until=later) is None
    assert await a.slot_acquire("t", 2, now=until, until=later) is not None
    assert await b.slot_acquire("t", 2, now=until, until=later) is not None
    # Stale releases (their slots expired and were taken since) free nothing.
    await a.slot_release("t", held[1])
    await a.slot_release("t", again)
    assert await b.slot_acquire("t", 2, now=until, until=later) is None
