"""Scenario aws-occ: the AWS jitter experiment's OCC model and its verdict against the post."""

from __future__ import annotations

from harness.chaos.occ_study import occ_comparison, shape_checks
from harness.sim.occ import OccPoint, occ_point
from reliability.backoff import Strategy


def test_every_client_writes_once_and_the_same_seed_gives_the_same_numbers() -> None:
    a = occ_point(Strategy.FULL, 8, 3, seed=5)
    assert a == occ_point(Strategy.FULL, 8, 3, seed=5)
    assert a != occ_point(Strategy.FULL, 8, 3, seed=6)
    # Each of the 8 clients succeeds exactly once; conflicts only add calls.
    assert a.calls >= 8
    assert 0 < a.completion_s < 60


def test_one_client_never_conflicts() -> None:
    p = occ_point(Strategy.NONE, 1, 4, seed=1)
    assert p.calls == 1
    # One read and one write, there and back: four crossings of about 10 ms each.
    assert 0.02 < p.completion_s < 0.06


def test_no_jitter_does_far_more_work_than_full_jitter() -> None:
    none = occ_point(Strategy.NONE, 30, 6, seed=2)
    full = occ_point(Strategy.FULL, 30, 6, seed=2)
    assert none.calls > 1.5 * full.calls
    assert none.completion_s > full.completion_s


# The public simulator's means at 100 clients (calls, completion seconds), 100 runs.
_TIMES = {"none": 63.0, "additive": 63.0, "full": 4.96, "equal": 6.55, "decorrelated": 4.56}


def _points(calls: dict[str, float], times: dict[str, float] = _TIMES) -> list[OccPoint]:
    return [OccPoint(s, 100, 10, c, times[s]) for s, c in calls.items()]


_PUBLISHED = {"none": 1850.0, "additive": 1850.0, "full": 796.0, "equal": 812.0}


def test_the_published_shape_holds_and_is_said_with_its_numbers() -> None:
    c = occ_comparison(_points({**_PUBLISHED, "decorrelated": 1003.0}), [100])
    assert c["matches_study"] is True
    assert c["columns"] == ["strategy", "clients", "calls", "completion_s"]
    assert "Summed over 100 clients, the numbers reproduce the published shape" in c["verdict"]
    assert "(6 of 6 claims hold)" in c["verdict"]
    assert "equal 812 calls = 1.02 x full (796)" in c["verdict"]


def test_a_divergence_fails_and_is_stated_plainly() -> None:
    # Equal jitter doing less work than full: the opposite of the post.
    diverged = {**_PUBLISHED, "equal": 700.0, "decorrelated": 1003.0}
    c = occ_comparison(_points(diverged), [100])
    assert c["matches_study"] is False
    assert "diverge from the published shape (4 of 6 claims hold)" in c["verdict"]
    assert "DOES NOT HOLD: equal jitter does more work than full" in c["verdict"]
    assert "DOES NOT HOLD: full jitter does the least work" in c["verdict"]
    slow = {**_TIMES, "equal": 4.0}
    late = shape_checks(_points({**_PUBLISHED, "decorrelated": 1003.0}, slow))
    assert [ch.claim for ch in late if not ch.held] == [
        "equal jitter takes longer than full to finish"
    ]
    far = [ch for ch in shape_checks(_points({**_PUBLISHED, "none": 900.0})) if not ch.held]
    assert [ch.claim for ch in far] == ["none does far more work than full jitter (at least 1.5 x)"]
