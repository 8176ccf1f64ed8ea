"""The request journal's records and queries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from harness.fakes.journal import Journal
from harness.vclock import DEFAULT_START, ManualClock


def test_records_time_tenant_key_and_in_flight_at_arrival() -> None:
    clock = ManualClock()
    j = Journal(clock)
    a1 = j.begin(method="POST", path="p", tenant="a", idempotency_key="k1")
    clock.advance(1)
    a2 = j.begin(method="POST", path="p", tenant="a", idempotency_key="k1")
    b1 = j.begin(method="POST", path="q", tenant="b", idempotency_key=None)
    assert (a1.in_flight, a2.in_flight, b1.in_flight) == (1, 2, 1)
    assert j.in_flight() == {"a": 2, "b": 1}
    j.finish(a1, outcome="answered", status=200, ran=True)
    clock.advance(2)
    j.finish(a2, outcome="reset", fault="reset", ran=False)
    a3 = j.begin(method="POST", path="p", tenant="a", idempotency_key="k1")
    assert a3.in_flight == 1
    j.finish(a3, outcome="answered", status=200, ran=True)
    entries = j.entries()
    assert [(e.t, e.outcome, e.status) for e in entries] == [
        (0.0, "answered", 200),
        (1.0, "reset", None),
        (1.0, "pending", None),
        (3.0, "answered", 200),
    ]
    assert entries[1].finished_t == 3.0
    assert entries[0].wall == DEFAULT_START
    assert entries[3].wall == DEFAULT_START + timedelta(seconds=3)
    assert j.counts_by_tenant() == {"a": 3, "b": 1}
    assert j.counts_by_tenant(outcome="answered") == {"a": 2}
    assert j.peak_in_flight() == {"a": 2, "b": 1}
    assert j.duplicates() == {"k1": 3}
    assert j.duplicates(ran_only=True) == {"k1": 2}
    assert j.arrivals(1.0) == {0.0: 1, 1.0: 2, 3.0: 1}
    assert j.arrivals(2.0, tenant="a") == {0.0: 2, 2.0: 1}


def test_reset_forgets_and_capacity_drops_the_oldest() -> None:
    clock = ManualClock()
    j = Journal(clock, capacity=2)
    for i in range(3):
        j.begin(method="POST", path="p", tenant="t", idempotency_key=str(i))
    assert [e.idempotency_key for e in j.entries()] == ["1", "2"]
    assert j.dropped == 1
    j.reset()
    assert (len(j), j.in_flight(), j.dropped) == (0, {}, 0)


def test_bad_queries_are_refused() -> None:
    j = Journal(ManualClock())
    with pytest.raises(ValueError, match="bucket"):
        j.arrivals(0)
    e = j.begin(method="POST", path="p", tenant="t", idempotency_key=None)
    with pytest.raises(ValueError, match="outcome"):
        j.finish(e, outcome="exploded")
    json_form = j.to_json(bucket=1)
    assert json_form["arrivals"] == {"0": 1}
    assert json_form["entries"][0]["outcome"] == "pending"
