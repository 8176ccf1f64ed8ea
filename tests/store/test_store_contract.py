"""The store contract: every test runs once on SqliteStore and once on PostgresStore.

It covers both protocols: `Store` (what the layer calls) and `StoreInspector` (the reads the
harness and tests make). Rows are set up the way the layer writes them, through `accept_event`.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from harness.testing.postgres import StoreFactory
from reliability.errors import ErrorCode
from reliability.store import (
    DEFAULT_PAYLOAD_LIMIT,
    MAX_ERROR_MESSAGE,
    AttemptError,
    DlqCursor,
    DlqEntry,
    DlqFilter,
    InvalidInput,
    NewDelivery,
    OutboxRow,
    PayloadError,
    PostgresStore,
    SqliteStore,
    Store,
    StoreError,
    StoreInspector,
    StoreUnavailable,
)
from reliability.store.base import TABLES

AnyStore = SqliteStore | PostgresStore
"""Both protocols at once: what the `store` fixture hands out."""

T0 = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
LEASE = timedelta(seconds=30)
TTL = timedelta(hours=24)
S = timedelta(seconds=1)


def delivery(n: int, tenant: str = "t1", workflow: str = "wf") -> NewDelivery:
    return NewDelivery(tenant, workflow, {"n": n, "s": f"é{n}"}, f"key-{tenant}-{n}", f"evt_{n}")


def err(attempt: int, code: ErrorCode = ErrorCode.HTTP_5XX, msg: str = "boom") -> AttemptError:
    return AttemptError(attempt, T0 + attempt * S, code, msg)


async def put(store: Store, *deliveries: NewDelivery, now: datetime = T0) -> list[str]:
    """Outbox rows for `deliveries`, written as the intake writes them: one new event (the
    first delivery's) that fans out to all of them."""
    first = deliveries[0]
    assert first.event_id is not None
    accepted = await store.accept_event(first.tenant_id, first.event_id, deliveries, now=now)
    assert accepted.new
    return list(accepted.outbox_ids)


async def record(store: Store, tenant: str, event: str, *, now: datetime) -> bool:
    """Record an event that fans out to no delivery; True if it was new."""
    return (await store.accept_event(tenant, event, [], now=now)).new


async def one_claimed(
    store: Store, n: int = 1, tenant: str = "t1", now: datetime = T0
) -> OutboxRow:
    [oid] = await put(store, delivery(n, tenant), now=now)
    row = await store.claim(oid, now=now, lease=LEASE)
    assert row is not None
    return row


async def dead(
    store: Store,
    n: int = 1,
    *,
    tenant: str = "t1",
    workflow: str = "wf",
    code: ErrorCode = ErrorCode.HTTP_5XX,
    now: datetime = T0,
    ttl: timedelta = TTL,
) -> DlqEntry:
    [oid] = await put(store, delivery(n, tenant, workflow), now=now)
    row = await store.claim(oid, now=now, lease=LEASE)
    assert row is not None
    assert row.lease_token is not None
    entry = await store.move_to_dlq(
        row.id, row.lease_token, error_code=code, message=f"m{n}", now=now, ttl=ttl
    )
    assert entry is not None
    return entry


# -- migrations, lifecycle -----------------------------------------------------------------------


async def test_every_store_implements_both_protocols(store: AnyStore) -> None:
    assert isinstance(store, Store)
    assert isinstance(store, StoreInspector)


async def test_migrate_twice_is_a_no_op(store: AnyStore) -> None:
    before = await store.applied_migrations()
    await store.migrate()
    await store.migrate()
    assert await store.applied_migrations() == before
    assert before == sorted(before)
    assert len(before) >= 1


async def test_closed_store_raises_unavailable(store: AnyStore) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await record(store, "t1", "evt_1", now=T0)
    with pytest.raises(StoreUnavailable):
        await store.outbox_rows()


# -- replay ledger ---------------------------------------------------------------------------


async def test_an_event_is_new_once_per_tenant(store: AnyStore) -> None:
    assert await record(store, "t1", "evt_1", now=T0) is True
    assert await record(store, "t1", "evt_1", now=T0 + S) is False
    assert await record(store, "t2", "evt_1", now=T0) is True
    assert await store.is_processed("t1", "evt_1")
    assert not await store.is_processed("t1", "evt_2")
    assert not await store.is_processed("t3", "evt_1")


async def test_ledger_row_tracks_the_latest_processed_event(store: AnyStore) -> None:
    assert await store.ledger_row("t1") is None
    await record(store, "t1", "evt_b", now=T0 + 10 * S)
    await record(store, "t1", "evt_a", now=T0)  # older, out of order: ledger stays
    row = await store.ledger_row("t1")
    assert row is not None
    assert (row.last_processed_event_id, row.last_processed_at) == ("evt_b", T0 + 10 * S)
    await record(store, "t1", "evt_c", now=T0 + 20 * S)
    await record(store, "t1", "evt_b", now=T0 + 30 * S)  # duplicate: writes nothing
    row = await store.ledger_row("t1")
    assert row is not None
    assert (row.last_processed_event_id, row.updated_at) == ("evt_c", T0 + 20 * S)
    assert row.last_processed_at.utcoffset() == timedelta(0)


async def test_accept_event_writes_ledger_and_outbox_together(store: AnyStore) -> None:
    ds = [delivery(1), delivery(2, workflow="other")]
    first = await store.accept_event("t1", "evt_1", ds, now=T0)
    assert first.new
    assert len(first.outbox_ids) == 2
    again = await store.accept_event("t1", "evt_1", ds, now=T0 + S)
    assert not again.new
    assert again.outbox_ids == ()
    rows = await store.outbox_rows()
    assert sorted(r.id for r in rows) == sorted(first.outbox_ids)
    by_key = {r.idempotency_key: r for r in rows}
    assert by_key["key-t1-1"].payload == {"n": 1, "s": "é1"}
    assert by_key["key-t1-2"].workflow == "other"
    assert all(r.attempt == 0 and r.created_at == T0 == r.next_attempt_at for r in rows)
    assert all(r.locked_until is None and r.lease_token is None for r in rows)
    assert await store.is_processed("t1", "evt_1")


async def test_accept_event_with_a_lease_inserts_the_rows_claimed(store: AnyStore) -> None:
    ds = [delivery(1), delivery(2)]
    accepted = await store.accept_event("t1", "evt_1", ds, now=T0, lease=LEASE)
    assert [r.id for r in accepted.claimed] == list(accepted.outbox_ids)
    token = accepted.claimed[0].lease_token
    assert token is not None
    assert all(r.lease_token == token and r.locked_until == T0 + LEASE for r in accepted.claimed)
    assert [r.payload for r in accepted.claimed] == [{"n": 1, "s": "é1"}, {"n": 2, "s": "é2"}]
    stored = {r.id: r for r in await store.outbox_rows()}
    assert all(stored[r.id].lease_token == token for r in accepted.claimed)
    # Nobody else can take them while the lease runs; the holder can complete them.
    assert await store.claim_due(10, now=T0 + LEASE - S, lease=LEASE) == []
    assert await store.complete(accepted.claimed[0].id, token, now=T0 + S)
    # A holder that died leaves the rest to a drain once the lease has passed.
    later = await store.claim_due(10, now=T0 + LEASE, lease=LEASE)
    assert [r.id for r in later] == [accepted.claimed[1].id]
    duplicate = await store.accept_event("t1", "evt_1", ds, now=T0, lease=LEASE)
    assert not duplicate.new
    assert duplicate.claimed == ()


async def test_accept_event_without_deliveries_records_only(store: AnyStore) -> None:
    assert (await store.accept_event("t1", "evt_1", [], now=T0)).new
    assert not (await store.accept_event("t1", "evt_1", [], now=T0)).new
    assert await store.outbox_rows() == []


async def test_purge_processed_forgets_old_ids_only(store: AnyStore) -> None:
    for i in range(5):
        await record(store, "t1", f"evt_{i}", now=T0 + i * S)
    assert await store.purge_processed(older_than=T0 + 3 * S) == 3
    assert await store.purge_processed(older_than=T0 + 3 * S) == 0
    assert not await store.is_processed("t1", "evt_2")
    assert await store.is_processed("t1", "evt_3")
    assert await record(store, "t1", "evt_0", now=T0 + 9 * S)  # forgotten: new again
    assert await store.ledger_row("t1") is not None


# -- bad input: refused before anything is written --------------------------------------------


class Unserialisable:
    pass


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"x": Unserialisable()}, "not JSON-serialisable"),
        ({"x": float("nan")}, "not JSON-serialisable"),
        ({"x": {1, 2}}, "not JSON-serialisable"),
        ({"x": "a" * DEFAULT_PAYLOAD_LIMIT}, "over the limit"),
        ({"x": "nul\x00"}, "NUL"),
        (["not", "an", "object"], "JSON object"),
    ],
)
async def test_bad_payload_is_refused_and_nothing_written(
    store: AnyStore, payload: object, needle: str
) -> None:
    good = delivery(1)
    bad = NewDelivery("t1", "wf", payload, "key-bad")  # type: ignore[arg-type]
    with pytest.raises(PayloadError, match=needle) as info:
        await store.accept_event("t1", "evt_1", [good, bad], now=T0)
    assert "deliveries[1]" in str(info.value)
    assert not await store.is_processed("t1", "evt_1")
    assert await store.ledger_row("t1") is None
    assert await store.outbox_rows(include_done=True) == []


async def test_payload_at_the_limit_is_accepted(store: AnyStore) -> None:
    overhead = len('{"x": ""}')
    payload = {"x": "a" * (DEFAULT_PAYLOAD_LIMIT - overhead)}
    [oid] = await put(store, NewDelivery("t1", "wf", payload, "k", "evt_1"))
    [row] = await store.outbox_rows()
    assert row.id == oid
    assert row.payload == payload


async def test_bad_arguments_are_refused_with_their_name(store: AnyStore) -> None:
    with pytest.raises(InvalidInput, match="now must be timezone-aware"):
        await record(store, "t1", "e", now=datetime(2031, 1, 1))
    with pytest.raises(InvalidInput, match="tenant_id must not be empty"):
        await record(store, "", "e", now=T0)
    with pytest.raises(InvalidInput, match=r"deliveries\[0\].workflow"):
        await store.accept_event("t1", "e", [NewDelivery("t1", "", {}, "k")], now=T0)
    with pytest.raises(InvalidInput, match="NUL"):
        await record(store, "t1", "e\x00", now=T0)
    with pytest.raises(InvalidInput, match="lease"):
        await store.claim_due(1, now=T0, lease=timedelta(0))
    with pytest.raises(InvalidInput, match="limit"):
        await store.claim_due(0, now=T0, lease=LEASE)
    with pytest.raises(InvalidInput, match="limit"):
        await store.dlq_list(DlqFilter(), now=T0, limit=0)
    row = await one_claimed(store)
    assert row.lease_token is not None
    with pytest.raises(InvalidInput, match="ttl"):
        await store.move_to_dlq(
            row.id, row.lease_token, error_code=ErrorCode.QUOTA, message="x", now=T0, ttl=-S
        )
    assert not await store.is_processed("t1", "e")
    assert len(await store.outbox_rows()) == 1


# -- outbox: claims and leases ----------------------------------------------------------------


async def test_claim_due_takes_due_rows_oldest_first_up_to_limit(store: AnyStore) -> None:
    late = await put(store, delivery(1), now=T0 + 5 * S)
    early = await put(store, delivery(2), delivery(3), now=T0)
    future = await put(store, delivery(4), now=T0 + 60 * S)
    got = await store.claim_due(2, now=T0 + 10 * S, lease=LEASE)
    assert [r.id for r in got] == sorted(early)
    assert all(r.locked_until == T0 + 10 * S + LEASE for r in got)
    assert len({r.lease_token for r in got}) == 1
    assert got[0].lease_token is not None
    rest = await store.claim_due(10, now=T0 + 10 * S, lease=LEASE)
    assert [r.id for r in rest] == late  # the future row is not due, the claimed ones are held
    assert future[0] not in {r.id for r in rest}
    assert await store.claim_due(10, now=T0 + 10 * S, lease=LEASE) == []


async def test_a_lapsed_lease_lets_another_claimer_take_the_row(store: AnyStore) -> None:
    first = await one_claimed(store)  # held until T0 + LEASE
    assert first.lease_token is not None
    assert await store.claim_due(1, now=T0 + LEASE - S, lease=LEASE) == []  # still held
    [second] = await store.claim_due(1, now=T0 + LEASE, lease=LEASE)
    assert second.id == first.id
    assert second.lease_token != first.lease_token
    # The first claimer's token is dead: every write with it is refused and changes nothing.
    assert not await store.complete(first.id, first.lease_token, now=T0)
    assert not await store.renew(first.id, first.lease_token, until=T0 + 999 * S)
    assert not await store.reschedule(first.id, first.lease_token, next_attempt_at=T0, error=err(1))
    assert not await store.snooze(first.id, first.lease_token, next_attempt_at=T0)
    assert (
        await store.move_to_dlq(
            first.id,
            first.lease_token,
            error_code=ErrorCode.TIMEOUT,
            message="x",
            now=T0,
            ttl=TTL,
        )
        is None
    )
    [row] = await store.outbox_rows()
    assert row.lease_token == second.lease_token
    assert row.attempt == 0
    assert row.errors == ()
    assert row.locked_until == T0 + 2 * LEASE
    assert await store.dlq_depth(now=T0) == {}


async def test_claim_by_id(store: AnyStore) -> None:
    [oid] = await put(store, delivery(1), now=T0)
    assert await store.claim(oid, now=T0 - S, lease=LEASE) is None  # not due yet
    row = await store.claim(oid, now=T0, lease=LEASE)
    assert row is not None
    assert row.id == oid
    assert row.lease_token is not None
    assert await store.claim(oid, now=T0 + S, lease=LEASE) is None  # held
    assert await store.claim(str(uuid.uuid4()), now=T0, lease=LEASE) is None
    assert await store.claim("not-a-uuid", now=T0, lease=LEASE) is None
    assert not await store.complete("not-a-uuid", row.lease_token, now=T0)
    again = await store.claim(oid, now=T0 + LEASE, lease=LEASE)
    assert again is not None
    assert again.lease_token != row.lease_token


async def test_complete_marks_done_and_keeps_the_row(store: AnyStore) -> None:
    row = await one_claimed(store)
    assert row.lease_token is not None
    assert not await store.complete(row.id, "wrong-token", now=T0)
    assert await store.complete(row.id, row.lease_token, now=T0 + S)
    assert not await store.complete(row.id, row.lease_token, now=T0 + S)
    assert await store.outbox_rows() == []
    [done] = await store.outbox_rows(include_done=True)
    assert done.done_at == T0 + S
    assert done.lease_token is None
    assert done.locked_until is None
    assert await store.delivered_keys() == {"key-t1-1"}
    assert await store.claim_due(10, now=T0 + 999 * S, lease=LEASE) == []
    assert await store.claim(row.id, now=T0 + 999 * S, lease=LEASE) is None


async def test_purge_done_removes_old_done_rows_only(store: AnyStore) -> None:
    for n in range(3):
        row = await one_claimed(store, n)
        assert row.lease_token is not None
        assert await store.complete(row.id, row.lease_token, now=T0 + n * S)
    pending = await put(store, delivery(9), now=T0 - 999 * S)
    assert await store.purge_done(older_than=T0 + 2 * S) == 2
    assert await store.purge_done(older_than=T0 + 2 * S) == 0
    rows = await store.outbox_rows(include_done=True)
    assert sorted(r.idempotency_key for r in rows) == ["key-t1-2", "key-t1-9"]
    assert pending[0] in {r.id for r in rows}
    assert await store.delivered_keys() == {"key-t1-2"}


async def test_renew_extends_a_held_lease(store: AnyStore) -> None:
    row = await one_claimed(store)
    assert row.lease_token is not None
    assert await store.renew(row.id, row.lease_token, until=T0 + 5 * LEASE)
    assert await store.claim_due(1, now=T0 + 2 * LEASE, lease=LEASE) == []
    assert await store.claim_due(1, now=T0 + 5 * LEASE, lease=LEASE) != []


async def test_reschedule_with_hold_keeps_the_lease(store: AnyStore) -> None:
    row = await one_claimed(store)
    assert row.lease_token is not None
    e1 = err(1, ErrorCode.TIMEOUT, "x" * (MAX_ERROR_MESSAGE + 50))
    ok = await store.reschedule(
        row.id, row.lease_token, next_attempt_at=T0 + 10 * S, error=e1, hold_until=T0 + 10 * S
    )
    assert ok
    [held] = await store.outbox_rows()
    assert (held.attempt, held.next_attempt_at, held.locked_until) == (1, T0 + 10 * S, T0 + 10 * S)
    assert held.lease_token == row.lease_token
    [stored] = held.errors
    assert (stored.attempt, stored.at, stored.code) == (1, e1.at, ErrorCode.TIMEOUT)
    assert stored.message == "x" * MAX_ERROR_MESSAGE
    # Nobody else takes it while held; the holder may still use its token.
    assert await store.claim_due(1, now=T0 + 9 * S, lease=LEASE) == []
    assert await store.reschedule(row.id, row.lease_token, next_attempt_at=T0, error=err(2))
    [again] = await store.outbox_rows()
    assert again.attempt == 2
    assert [e.attempt for e in again.errors] == [1, 2]


async def test_reschedule_without_hold_releases_the_lease(store: AnyStore) -> None:
    row = await one_claimed(store)
    assert row.lease_token is not None
    assert await store.reschedule(row.id, row.lease_token, next_attempt_at=T0 + 5 * S, error=err(1))
    [free] = await store.outbox_rows()
    assert free.lease_token is None
    assert free.locked_until is None
    assert free.attempt == 1
    assert await store.claim_due(1, now=T0 + 4 * S, lease=LEASE) == []  # not due yet
    [back] = await store.claim_due(1, now=T0 + 5 * S, lease=LEASE)
    assert back.id == row.id
    assert back.attempt == 1
    assert not await store.complete(row.id, row.lease_token, now=T0)


async def test_snooze_does_not_spend_an_attempt(store: AnyStore) -> None:
    row = await one_claimed(store)
    assert row.lease_token is not None
    assert await store.snooze(
        row.id, row.lease_token, next_attempt_at=T0 + 7 * S, hold_until=T0 + 7 * S
    )
    [held] = await store.outbox_rows()
    assert (held.attempt, held.errors, held.next_attempt_at) == (0, (), T0 + 7 * S)
    assert held.lease_token == row.lease_token
    assert await store.snooze(row.id, row.lease_token, next_attempt_at=T0 + 8 * S)
    [free] = await store.outbox_rows()
    assert free.attempt == 0
    assert free.lease_token is None
    assert [r.id for r in await store.claim_due(5, now=T0 + 8 * S, lease=LEASE)] == [row.id]


# -- dead-letter queue ---------------------------------------------------------------------------


async def test_move_to_dlq_moves_atomically_with_history(store: AnyStore) -> None:
    row = await one_claimed(store)
    assert row.lease_token is not None
    assert await store.reschedule(
        row.id, row.lease_token, next_attempt_at=T0, error=err(1), hold_until=T0 + S
    )
    at = T0 + 100 * S
    entry = await store.move_to_dlq(
        row.id,
        row.lease_token,
        error_code=ErrorCode.HTTP_4XX,
        message="m" * (MAX_ERROR_MESSAGE * 2),
        now=at,
        ttl=TTL,
        error=err(2, ErrorCode.HTTP_4XX, "gone"),
    )
    assert entry is not None
    assert (entry.tenant_id, entry.workflow_name, entry.payload) == ("t1", "wf", row.payload)
    assert entry.error_code is ErrorCode.HTTP_4XX
    assert entry.error_message == "m" * MAX_ERROR_MESSAGE
    assert (entry.created_at, entry.expires_at) == (at, at + TTL)
    assert (entry.source_outbox_id, entry.original_created_at) == (row.id, T0)
    assert (entry.idempotency_key, entry.event_id, entry.retry_count) == ("key-t1-1", "evt_1", 0)
    assert [(e.attempt, e.code) for e in entry.errors] == [
        (1, ErrorCode.HTTP_5XX),
        (2, ErrorCode.HTTP_4XX),
    ]
    assert await store.outbox_rows(include_done=True) == []
    assert await store.dlq_get(entry.id, now=at) == entry
    assert (
        await store.move_to_dlq(
            row.id, row.lease_token, error_code=ErrorCode.QUOTA, message="x", now=at, ttl=TTL
        )
        is None
    )


async def test_every_error_code_can_be_stored(store: AnyStore) -> None:
    for n, code in enumerate(ErrorCode):
        entry = await dead(store, n, code=code)
        assert (await store.dlq_get(entry.id, now=T0)) == entry
    depth = await store.dlq_depth(now=T0)
    assert depth == {("t1", code): 1 for code in ErrorCode}


async def test_dlq_reads_never_show_expired_entries(store: AnyStore) -> None:
    short = await dead(store, 1, ttl=10 * S)
    long = await dead(store, 2, ttl=TTL)
    before = T0 + 10 * S - timedelta(microseconds=1)
    assert await store.dlq_get(short.id, now=before) == short
    assert {e.id for e in (await store.dlq_list(DlqFilter(), now=before)).entries} == {
        short.id,
        long.id,
    }
    at = T0 + 10 * S  # the expiry instant itself: already invisible, cleanup not run yet
    assert await store.dlq_get(short.id, now=at) is None
    assert [e.id for e in (await store.dlq_list(DlqFilter(), now=at)).entries] == [long.id]
    assert await store.dlq_depth(now=at) == {("t1", ErrorCode.HTTP_5XX): 1}
    assert await store.dlq_retry(short.id, now=at) is None
    assert await store.outbox_rows() == []
    assert await store.dlq_purge_expired(now=at) == 1
    assert await store.dlq_purge_expired(now=at) == 0
    assert await store.dlq_get(short.id, now=before) is None  # really gone now
    assert await store.dlq_get(long.id, now=at) == long


async def test_dlq_rows_shows_every_entry_until_it_is_purged(store: AnyStore) -> None:
    later = await dead(store, 1, now=T0 + S, ttl=10 * S)
    first = await dead(store, 2, now=T0, ttl=TTL)
    assert await store.dlq_rows() == [first, later]
    expired = T0 + 11 * S
    assert [e.id for e in (await store.dlq_list(DlqFilter(), now=expired)).entries] == [first.id]
    assert await store.dlq_rows() == [first, later]  # expired, not yet purged: still there
    assert await store.dlq_purge_expired(now=expired) == 1
    assert await store.dlq_rows() == [first]


async def test_dlq_filters_and_unknown_tenant(store: AnyStore) -> None:
    a = await dead(store, 1, tenant="a", workflow="w1", code=ErrorCode.TIMEOUT)
    b = await dead(store, 2, tenant="a", workflow="w2", code=ErrorCode.QUOTA)
    c = await dead(store, 3, tenant="b", workflow="w1", code=ErrorCode.TIMEOUT)

    async def ids(flt: DlqFilter) -> set[str]:
        return {e.id for e in (await store.dlq_list(flt, now=T0)).entries}

    assert await ids(DlqFilter()) == {a.id, b.id, c.id}
    assert await ids(DlqFilter(tenant_id="a")) == {a.id, b.id}
    assert await ids(DlqFilter(workflow_name="w1")) == {a.id, c.id}
    assert await ids(DlqFilter(error_code=ErrorCode.TIMEOUT)) == {a.id, c.id}
    assert await ids(DlqFilter("a", "w1", ErrorCode.TIMEOUT)) == {a.id}
    assert await ids(DlqFilter("a", "w1", ErrorCode.QUOTA)) == set()
    page = await store.dlq_list(DlqFilter(tenant_id="nobody"), now=T0)
    assert page.entries == ()
    assert page.next_cursor is None
    assert await store.dlq_get(str(uuid.uuid4()), now=T0) is None
    assert await store.dlq_get("not-a-uuid", now=T0) is None
    assert await store.dlq_retry("not-a-uuid", now=T0) is None


async def test_dlq_keyset_pagination_walks_every_entry_once(store: AnyStore) -> None:
    rng = random.Random(7)
    made = [
        await dead(store, n, now=T0 + rng.randrange(4) * S, tenant=rng.choice("ab"))
        for n in range(23)
    ]  # many ties on created_at: the id breaks them
    for flt in (DlqFilter(), DlqFilter(tenant_id="a")):
        expected = sorted(
            (e for e in made if flt.tenant_id in (None, e.tenant_id)),
            key=lambda e: (e.created_at, e.id),
            reverse=True,
        )
        seen: list[DlqEntry] = []
        cursor: DlqCursor | None = None
        for _ in range(30):
            page = await store.dlq_list(flt, now=T0, after=cursor, limit=5)
            assert len(page.entries) <= 5
            seen += page.entries
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [e.id for e in seen] == [e.id for e in expected]
    with pytest.raises(InvalidInput, match=r"after\.id"):
        await store.dlq_list(DlqFilter(), now=T0, after=DlqCursor(T0, "bogus"))


async def test_dlq_retry_puts_the_entry_back_once(store: AnyStore) -> None:
    entry = await dead(store, 1, now=T0)
    oid = await store.dlq_retry(entry.id, now=T0 + S)
    assert oid is not None
    assert await store.dlq_retry(entry.id, now=T0 + S) is None
    assert await store.dlq_get(entry.id, now=T0 + S) is None
    [row] = await store.outbox_rows()
    assert (row.id, row.retry_count, row.attempt, row.next_attempt_at) == (oid, 1, 0, T0 + S)
    assert (row.idempotency_key, row.event_id, row.payload) == (
        entry.idempotency_key,
        entry.event_id,
        entry.payload,
    )
    # It fails again: the same entry comes back with the retry recorded.
    claimed = await store.claim(oid, now=T0 + S, lease=LEASE)
    assert claimed is not None
    assert claimed.lease_token is not None
    again = await store.move_to_dlq(
        oid,
        claimed.lease_token,
        error_code=ErrorCode.CONNECTION,
        message="still down",
        now=T0 + 2 * S,
        ttl=TTL,
    )
    assert again is not None
    assert (again.id, again.retry_count, again.original_created_at) == (entry.id, 1, T0)
    assert again.expires_at == T0 + 2 * S + TTL
    assert again.source_outbox_id == oid


async def test_dlq_depth_counts_unexpired_per_tenant_and_code(store: AnyStore) -> None:
    await dead(store, 1, tenant="a", code=ErrorCode.TIMEOUT)
    await dead(store, 2, tenant="a", code=ErrorCode.TIMEOUT)
    await dead(store, 3, tenant="a", code=ErrorCode.HTTP_429, ttl=5 * S)
    await dead(store, 4, tenant="b", code=ErrorCode.TIMEOUT)
    assert await store.dlq_depth(now=T0) == {
        ("a", ErrorCode.TIMEOUT): 2,
        ("a", ErrorCode.HTTP_429): 1,
        ("b", ErrorCode.TIMEOUT): 1,
    }
    assert ("a", ErrorCode.HTTP_429) not in await store.dlq_depth(now=T0 + 5 * S)


async def test_alert_fires_when_a_tenant_reaches_the_threshold(store_factory: StoreFactory) -> None:
    calls: list[tuple[str, int, int]] = []
    store = await store_factory(dlq_alert=lambda *a: calls.append(a), dlq_alert_threshold=3)
    await dead(store, 1, tenant="a", ttl=10 * S)
    await dead(store, 2, tenant="a", ttl=10 * S)
    for n in range(3, 6):
        await dead(store, n, tenant="b")  # another tenant's depth is its own
    assert calls == [("b", 3, 3)]
    await dead(store, 6, tenant="a")
    assert calls == [("b", 3, 3), ("a", 3, 3)]
    await dead(store, 7, tenant="a")
    assert calls[-1] == ("a", 3, 3)
    assert len(calls) == 2
    # Two entries expire at T0 + 10 s (depth 4 -> 2 before cleanup); the next move crosses again.
    later = T0 + 10 * S
    await dead(store, 8, tenant="a", now=later)
    assert calls == [("b", 3, 3), ("a", 3, 3), ("a", 3, 3)]
    await dead(store, 9, tenant="a", now=later)
    assert len(calls) == 3


async def test_a_failing_alert_hook_does_not_undo_the_move(store_factory: StoreFactory) -> None:
    def explode(tenant: str, depth: int, threshold: int) -> None:
        raise RuntimeError("pager down")

    store = await store_factory(dlq_alert=explode, dlq_alert_threshold=1)
    entry = await dead(store, 1)
    assert await store.dlq_get(entry.id, now=T0) == entry


# -- ids --------------------------------------------------------------------------------------


async def test_ids_come_from_the_injected_factory(store_factory: StoreFactory) -> None:
    rng = random.Random(42)
    expected_rng = random.Random(42)
    store = await store_factory(ids=lambda: str(uuid.UUID(int=rng.getrandbits(128))))
    oids = await put(store, delivery(1), delivery(2), now=T0)
    assert oids == [str(uuid.UUID(int=expected_rng.getrandbits(128))) for _ in range(2)]
    [row] = await store.claim_due(1, now=T0, lease=LEASE)
    assert row.lease_token == str(uuid.UUID(int=expected_rng.getrandbits(128)))


async def test_a_bad_ids_factory_is_a_clear_error(store_factory: StoreFactory) -> None:
    store = await store_factory(ids=lambda: "seven")
    with pytest.raises(StoreError, match="ids factory returned 'seven'"):
        await store.accept_event("t1", "evt_1", [delivery(1)], now=T0)
    assert await store.outbox_rows() == []
    assert not await store.is_processed("t1", "evt_1")


async def test_row_counts_count_every_table_the_layer_writes(store: AnyStore) -> None:
    empty = await store.row_counts()
    assert empty == dict.fromkeys(TABLES, 0)
    assert await record(store, "t1", "evt_x", now=T0)
    await put(store, delivery(1), delivery(2))
    await dead(store, 3)
    assert await store.slot_acquire("t1", 2, now=T0, until=T0 + LEASE) is not None
    counts = await store.row_counts()
    assert counts["processed_events"] == 3  # evt_x, evt_1 and evt_3
    assert counts["stripe_event_ledger"] == 1  # one row per tenant
    assert counts["outbox"] == 2  # the dead-lettered row moved to the DLQ
    assert counts["n8n_dlq"] == 1
    assert counts["tenant_slots"] == 2  # the tenant's slot rows, one held
    assert await store.purge_processed(older_than=T0 + S) == 3
    assert (await store.row_counts())["processed_events"] == 0
