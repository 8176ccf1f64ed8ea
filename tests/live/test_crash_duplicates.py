"""The crash test's duplicate accounting: every duplicate send at the fake n8n (per idempotency
key) has a cause, and one that no kill, timeout or lost answer explains fails the run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from harness.live.checks import KILL_GRACE, check_duplicates_explained, duplicate_sends

EPOCH = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
KEY = "t1:evt_1:weekly-recap"


def _entry(seq: int, t: float, end: float, **kw: Any) -> dict[str, Any]:
    """A `GET /__journal` entry: a 2xx that ran the workflow unless told otherwise."""
    return {
        "seq": seq,
        "t": t,
        "wall": (EPOCH + timedelta(seconds=t)).isoformat(),
        "tenant": "t1",
        "path": "weekly-recap",
        "idempotency_key": KEY,
        "status": 200,
        "outcome": "answered",
        "ran": True,
        "finished_t": end,
        **kw,
    }


def _journal(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"entries": list(entries)}


def test_a_repeat_after_a_2xx_with_no_kill_is_unexplained_and_fails() -> None:
    journal = _journal(_entry(1, 10.0, 10.3), _entry(2, 40.0, 40.2))
    sends = duplicate_sends(journal, [], read_timeout=1.5)
    assert [(d.earlier, d.seq, d.cause) for d in sends] == [(1, 2, "unexplained")]
    result = check_duplicates_explained(sends)
    assert not result.passed
    assert KEY in result.details
    assert "1 unexplained" in result.details


def test_a_kill_while_the_call_ran_or_just_after_its_answer_explains_the_repeat() -> None:
    journal = _journal(_entry(1, 10.0, 10.3), _entry(2, 40.0, 40.2))
    during = EPOCH + timedelta(seconds=10.1)
    just_after = EPOCH + timedelta(seconds=10.3 + KILL_GRACE / 2)
    for kill in (during, just_after):
        sends = duplicate_sends(journal, [kill], read_timeout=1.5)
        assert [d.cause for d in sends] == ["crash"]
        assert check_duplicates_explained(sends).passed
    # A kill long after the answer was recorded explains nothing.
    late = EPOCH + timedelta(seconds=10.3 + 3 * KILL_GRACE)
    assert [d.cause for d in duplicate_sends(journal, [late], read_timeout=1.5)] == ["unexplained"]


def test_timeouts_and_lost_answers_explain_repeats_and_calls_that_did_not_run_are_none() -> None:
    journal = _journal(
        _entry(1, 1.0, 13.0, outcome="gave_up", status=None),
        _entry(2, 20.0, 20.1, outcome="reset", status=None),
        _entry(3, 30.0, 30.1, status=503, ran=False),
        _entry(4, 40.0, 40.1),
    )
    sends = duplicate_sends(journal, [], read_timeout=1.5)
    # Call 3 did not run, so call 4 repeats call 2's run (a lost answer), as call 2 repeated
    # call 1's (a timeout).
    assert [(d.earlier, d.seq, d.cause) for d in sends] == [
        (1, 2, "timeout"),
        (2, 3, "no_answer"),
        (2, 4, "no_answer"),
    ]
    result = check_duplicates_explained(sends)
    assert result.passed
    assert "1 timeout, 2 no_answer" in result.details


def test_other_keys_and_an_empty_journal_have_no_duplicates() -> None:
    other = _entry(2, 40.0, 40.2, idempotency_key="t1:evt_2:weekly-recap")
    assert duplicate_sends(_journal(_entry(1, 10.0, 10.3), other), [], read_timeout=1.5) == []
    assert duplicate_sends({"entries": []}, [], read_timeout=1.5) == []
    assert check_duplicates_explained([]).passed


def test_a_2xx_that_took_the_read_timeout_is_one_the_dispatcher_never_saw() -> None:
    """Over a network the fake may finish an answer just after the client gave up."""
    journal = _journal(_entry(1, 10.0, 11.5), _entry(2, 40.0, 40.2))
    assert [d.cause for d in duplicate_sends(journal, [], read_timeout=1.5)] == ["timeout"]
    assert [d.cause for d in duplicate_sends(journal, [], read_timeout=3.0)] == ["unexplained"]
