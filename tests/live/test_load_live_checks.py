"""The run invariants: each check passes on a sound run and names what broke on a bad one."""

from __future__ import annotations

from harness.live.checks import (
    Accepted,
    DbSnapshot,
    DeliveryRow,
    N8nCall,
    calls_from_journal,
    check_delivered_reached_n8n,
    check_drained,
    check_duplicates_bounded,
    check_no_double_processing,
    check_nothing_lost,
    check_quota,
)

ROUTES = {"invoice.paid": ("weekly-recap",), "checkout.session.completed": ("client-onboarding",)}


def _row(
    tenant: str, event: str, workflow: str, *, done: bool = False, dead: bool = False
) -> DeliveryRow:
    return DeliveryRow(
        f"{tenant}:{event}:{workflow}", tenant, event, workflow, done=done, dead=dead
    )


def _call(tenant: str, event: str, workflow: str, status: int = 200) -> N8nCall:
    return N8nCall(tenant, workflow, f"{tenant}:{event}:{workflow}", status, "answered")


def _snap(*rows: DeliveryRow, processed: set[tuple[str, str]] | None = None) -> DbSnapshot:
    outbox = tuple(r for r in rows if not r.dead)
    dlq = tuple(r for r in rows if r.dead)
    seen = processed if processed is not None else {(r.tenant_id, r.event_id or "") for r in rows}
    return DbSnapshot(frozenset(seen), outbox, dlq)


ACCEPTED = [
    Accepted("t1", "evt_1", "invoice.paid"),
    Accepted("t1", "evt_2", "checkout.session.completed"),
    Accepted("t2", "evt_3", "invoice.paid"),
    Accepted("t2", "evt_3", "invoice.paid"),  # a duplicate answered 200 counts once
]


def test_nothing_lost_counts_each_state() -> None:
    snap = _snap(
        _row("t1", "evt_1", "weekly-recap", done=True),
        _row("t1", "evt_2", "client-onboarding"),
        _row("t2", "evt_3", "weekly-recap", dead=True),
    )
    result = check_nothing_lost(ACCEPTED, snap, ROUTES)
    assert result.passed
    assert "1 delivered, 1 pending, 1 dead-lettered" in result.details


def test_a_lost_delivery_and_an_unrecorded_event_are_named() -> None:
    snap = _snap(
        _row("t1", "evt_1", "weekly-recap", done=True),
        processed={("t1", "evt_1"), ("t1", "evt_2")},
    )
    result = check_nothing_lost(ACCEPTED, snap, ROUTES)
    assert not result.passed
    assert "t1/evt_2/client-onboarding" in result.details
    assert "accepted but not recorded: t2/evt_3" in result.details


def test_double_enqueue_and_double_delivery_are_caught() -> None:
    row = _row("t1", "evt_1", "weekly-recap", done=True)
    clean = check_no_double_processing(_snap(row), [_call("t1", "evt_1", "weekly-recap")])
    assert clean.passed
    twice = check_no_double_processing(
        _snap(row, _row("t1", "evt_1", "weekly-recap", dead=True)), []
    )
    assert not twice.passed
    assert "1 enqueued twice" in twice.details
    calls = [_call("t1", "evt_1", "weekly-recap"), _call("t1", "evt_1", "weekly-recap")]
    delivered = check_no_double_processing(_snap(row), calls)
    assert not delivered.passed
    assert "delivered twice: t1:evt_1:weekly-recap" in delivered.details
    # After crashes the repeats are judged by the crash bound instead.
    assert check_no_double_processing(_snap(row), calls, crashes=1).passed


def test_failed_attempts_are_not_double_deliveries() -> None:
    row = _row("t1", "evt_1", "weekly-recap", done=True)
    calls = [_call("t1", "evt_1", "weekly-recap", 503), _call("t1", "evt_1", "weekly-recap")]
    assert check_no_double_processing(_snap(row), calls).passed


def test_quota_at_the_limit_passes_and_above_fails() -> None:
    assert check_quota({"t1": 5, "t2": 3}, {"t1": 5, "t2": 3}, global_max=20).passed
    over = check_quota({"t1": 6}, {"t1": 5}, global_max=20)
    assert not over.passed
    assert "t1: 6 > 5" in over.details
    # A tenant limit above the global maximum is capped by it.
    assert not check_quota({"t1": 8}, {"t1": 10}, global_max=7).passed


def test_drained_needs_completion_and_no_pending_row() -> None:
    done = _snap(_row("t1", "evt_1", "weekly-recap", done=True))
    assert check_drained(done, completed=True, elapsed=1.0).passed
    pending = _snap(_row("t1", "evt_1", "weekly-recap"))
    result = check_drained(pending, completed=False, elapsed=60.0)
    assert not result.passed
    assert "t1:evt_1:weekly-recap" in result.details


def test_delivered_rows_need_a_2xx_call_at_n8n() -> None:
    snap = _snap(_row("t1", "evt_1", "weekly-recap", done=True))
    assert check_delivered_reached_n8n(snap, [_call("t1", "evt_1", "weekly-recap")]).passed
    failed_only = [_call("t1", "evt_1", "weekly-recap", 500)]
    assert not check_delivered_reached_n8n(snap, failed_only).passed


def test_duplicates_bounded_by_crashes_per_key_and_in_total() -> None:
    one = [_call("t1", "evt_1", "weekly-recap")] * 2
    assert not check_duplicates_bounded(one, crashes=0, max_in_flight=20).passed
    assert check_duplicates_bounded(one, crashes=1, max_in_flight=20).passed
    thrice = [_call("t1", "evt_1", "weekly-recap")] * 3
    result = check_duplicates_bounded(thrice, crashes=1, max_in_flight=20)
    assert not result.passed
    assert "more than once per crash" in result.details
    many = [_call("t1", f"evt_{i}", "weekly-recap") for i in range(3) for _ in range(2)]
    assert not check_duplicates_bounded(many, crashes=1, max_in_flight=2).passed
    assert check_duplicates_bounded(many, crashes=1, max_in_flight=3).passed


def test_duplicates_must_carry_their_own_key() -> None:
    wrong_tenant = N8nCall("t2", "weekly-recap", "t1:evt_1:weekly-recap", 200, "answered")
    keyless = N8nCall("t1", "weekly-recap", None, 200, "answered")
    assert not check_duplicates_bounded([wrong_tenant], crashes=1, max_in_flight=5).passed
    result = check_duplicates_bounded([keyless], crashes=1, max_in_flight=5)
    assert not result.passed
    assert "1 calls without a key" in result.details


def test_calls_from_journal_reads_the_served_shape() -> None:
    journal = {
        "entries": [
            {"tenant": "t1", "path": "weekly-recap", "idempotency_key": "k", "status": 200,
             "outcome": "answered"},
            {"tenant": "t1", "path": "weekly-recap", "idempotency_key": "k", "status": None,
             "outcome": "reset"},
        ]
    }  # fmt: skip
    calls = calls_from_journal(journal)
    assert [c.succeeded for c in calls] == [True, False]
