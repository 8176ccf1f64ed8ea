from __future__ import annotations

import asyncio

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from harness.chaos.breaker_model import BreakerModel, Grant
from harness.vclock import ManualClock
from reliability.breaker import (
    BreakerListener,
    BreakerPolicy,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpen,
    State,
    Ticket,
    Transition,
)
from reliability.clock import SystemClock
from reliability.errors import ErrorCode

WINDOW = 600.0
RECOVERY = 300.0


def make(threshold: int = 10, probes: int = 1) -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    policy = BreakerPolicy(threshold=threshold, window=WINDOW, recovery=RECOVERY, probes=probes)
    return CircuitBreaker(policy, clock, name="t1"), clock


def at(clock: ManualClock, t: float) -> None:
    clock.advance(t - clock.monotonic())


def fail(b: CircuitBreaker) -> None:
    b.on_failure(b.acquire())


def test_tenth_failure_one_millisecond_inside_the_window_opens() -> None:
    b, clock = make()
    fail(b)
    for _ in range(8):
        clock.advance(1.0)
        fail(b)
    assert b.state is State.CLOSED  # 9 failures do not open
    at(clock, WINDOW - 0.001)  # the first failure was at 0
    fail(b)
    assert b.state is State.OPEN


def test_tenth_failure_after_the_first_left_the_window_does_not_open() -> None:
    b, clock = make()
    fail(b)
    for _ in range(8):
        clock.advance(1.0)
        fail(b)
    at(clock, WINDOW + 0.001)
    fail(b)
    assert b.state is State.CLOSED
    assert b.failures_in_window() == 9


def test_failure_exactly_one_window_old_no_longer_counts() -> None:
    b, clock = make(threshold=2)
    fail(b)
    at(clock, WINDOW)
    fail(b)
    assert b.state is State.CLOSED


def test_recovery_at_exactly_the_recovery_time() -> None:
    b, clock = make(threshold=1)
    fail(b)
    assert b.state is State.OPEN
    clock.advance(RECOVERY - 0.001)
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_at == RECOVERY
    assert info.value.retry_in == pytest.approx(0.001)
    clock.advance(0.001)
    assert b.state is State.HALF_OPEN


def test_a_caller_that_sleeps_until_retry_at_finds_the_breaker_half_open() -> None:
    # Opened at 1899.999: 2199.999 - 1899.999 rounds to 299.99999999999977, under RECOVERY,
    # yet retry_at says 2199.999. The hypothesis model found this; the deadline form agrees.
    b, clock = make(threshold=1)
    clock.advance(299.999)
    clock.advance(600.0)
    clock.advance(1000.0)
    fail(b)
    with pytest.raises(CircuitOpen) as info:
        b.acquire()
    assert info.value.retry_at == b.half_open_at() == 2199.999
    clock.advance(300.0)
    assert clock.monotonic() == info.value.retry_at
    assert b.acquire().probe
    assert b.state is State.HALF_OPEN


def test_probe_success_closes_and_clears_the_window() -> None:
    b, clock = make(threshold=2)
    fail(b)
    fail(b)
    clock.advance(RECOVERY)
    probe = b.acquire()
    assert probe.probe
    b.on_success(probe)
    assert b.state is State.CLOSED
    assert b.failures_in_window() == 0
    fail(b)
    assert b.state is State.CLOSED  # one failure after closing is not two


def test_probe_failure_reopens_for_a_full_recovery_period() -> None:
    b, clock = make(threshold=1)
    fail(b)
    clock.advance(RECOVERY)
    b.on_failure(b.acquire())
    assert b.state is State.OPEN
    clock.advance(RECOVERY - 0.001)
    assert b.state is State.OPEN
    clock.advance(0.001)
    assert b.state is State.HALF_OPEN


@pytest.mark.parametrize("probes", [1, 3])
def test_half_open_lets_exactly_the_configured_probes_through(probes: int) -> None:
    b, clock = make(threshold=1, probes=probes)
    fail(b)
    clock.advance(RECOVERY)
    tickets = [b.acquire() for _ in range(probes)]
    assert all(t.probe for t in tickets)
    with pytest.raises(CircuitOpen):
        b.acquire()
    b.release(tickets[0])  # a cancelled probe frees its slot
    assert b.acquire().probe


async def test_racing_calls_into_half_open_let_exactly_n_probes_through() -> None:
    clock = ManualClock()
    b = CircuitBreaker(BreakerPolicy(threshold=1, probes=2), clock)
    b.on_failure(b.acquire())
    clock.advance(300)
    admitted: list[Ticket] = []
    refused = 0
    gate = asyncio.Event()

    async def call() -> None:
        nonlocal refused
        await gate.wait()
        try:
            ticket = b.acquire()
        except CircuitOpen:
            refused += 1
            return
        admitted.append(ticket)
        await asyncio.sleep(0)
        b.on_success(ticket)

    tasks = [asyncio.create_task(call()) for _ in range(200)]
    gate.set()
    await asyncio.gather(*tasks)
    assert len(admitted) == 2
    assert refused == 198
    assert b.state is State.CLOSED


def test_four_xx_does_not_count_but_five_xx_and_timeouts_do() -> None:
    b, _ = make(threshold=2)
    for code in (ErrorCode.HTTP_4XX, ErrorCode.INVALID_PAYLOAD, None, ErrorCode.HTTP_4XX):
        b.record(b.acquire(), code)
    assert b.failures_in_window() == 0
    b.record(b.acquire(), ErrorCode.TIMEOUT)
    b.record(b.acquire(), ErrorCode.HTTP_429)
    assert b.state is State.OPEN


def test_failure_policy_is_configurable() -> None:
    clock = ManualClock()
    policy = BreakerPolicy(threshold=1, failures=frozenset({ErrorCode.HTTP_4XX}))
    b = CircuitBreaker(policy, clock)
    b.record(b.acquire(), ErrorCode.HTTP_5XX)
    assert b.state is State.CLOSED
    b.record(b.acquire(), ErrorCode.HTTP_4XX)
    assert b.state is State.OPEN


class Transitions(BreakerListener):
    def __init__(self) -> None:
        self.seen: list[Transition] = []

    def changed(self, transition: Transition) -> None:
        self.seen.append(transition)


def test_every_transition_reaches_listeners_with_its_time() -> None:
    listener = Transitions()
    seen = listener.seen
    clock = ManualClock()
    b = CircuitBreaker(BreakerPolicy(threshold=1), clock, name="a", listeners=[listener])
    b.on_failure(b.acquire())
    clock.advance(400)
    b.on_success(b.acquire())
    assert [(t.old, t.new, t.at) for t in seen] == [
        (State.CLOSED, State.OPEN, 0.0),
        (State.OPEN, State.HALF_OPEN, 300.0),
        (State.HALF_OPEN, State.CLOSED, 400.0),
    ]


def test_late_outcomes_from_before_a_transition_are_ignored() -> None:
    b, clock = make(threshold=2)
    early = [b.acquire() for _ in range(3)]
    b.on_failure(early[0])
    b.on_failure(early[1])
    assert b.state is State.OPEN
    clock.advance(RECOVERY)
    probe = b.acquire()
    b.on_failure(early[2])  # a straggler from the CLOSED era says nothing about now
    assert b.state is State.HALF_OPEN
    b.on_success(probe)
    assert b.state is State.CLOSED


def test_memory_is_bounded_by_the_threshold_not_traffic() -> None:
    b, clock = make(threshold=5)
    for _ in range(10_000):
        fail(b)
        clock.advance(WINDOW)  # each failure leaves the window before the next
    assert len(b._failures) <= 5


def test_registry_isolates_tenants_and_uses_their_thresholds() -> None:
    clock = ManualClock()
    thresholds = {"a": 1, "b": 3}
    listener = Transitions()
    seen = listener.seen
    reg = BreakerRegistry(
        clock, lambda t: BreakerPolicy(threshold=thresholds.get(t, 10)), listeners=[listener]
    )
    a, b = reg.get("a"), reg.get("b")
    assert reg.get("a") is a
    a.on_failure(a.acquire())
    assert a.state is State.OPEN
    assert b.state is State.CLOSED
    b.acquire()  # b still lets calls through
    for _ in range(2):
        b.on_failure(b.acquire())
    assert b.state is State.CLOSED
    b.on_failure(b.acquire())
    assert reg.states() == {"a": State.OPEN, "b": State.OPEN}
    assert [t.name for t in seen] == ["a", "b"]


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BreakerPolicy(threshold=0)
    with pytest.raises(ValueError, match="probes"):
        BreakerPolicy(probes=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerPolicy(window=0)


def test_system_clock_works_too() -> None:
    b = CircuitBreaker(BreakerPolicy(threshold=1), SystemClock())
    b.on_failure(b.acquire())
    assert b.state is State.OPEN


# -- the breaker against the reference model ----------------------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    """The real breaker and `BreakerModel` (the invariant checker's oracle), side by side."""

    tickets = Bundle("tickets")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()

    @initialize(threshold=st.integers(1, 6), probes=st.integers(1, 3))
    def start(self, threshold: int, probes: int) -> None:
        policy = BreakerPolicy(threshold=threshold, window=WINDOW, recovery=RECOVERY, probes=probes)
        self.breaker = CircuitBreaker(policy, self.clock)
        self.model = BreakerModel(threshold, WINDOW, RECOVERY, probes)

    @rule(target=tickets)
    def call(self) -> MultipleResults[tuple[Ticket, Grant]]:
        grant = self.model.acquire(self.clock.monotonic())
        try:
            ticket = self.breaker.acquire()
        except CircuitOpen:
            assert grant is None
            return multiple()
        assert grant is not None
        assert ticket.probe == grant.probe
        return multiple((ticket, grant))

    @rule(held=consumes(tickets), ok=st.booleans())
    def finish(self, held: tuple[Ticket, Grant], ok: bool) -> None:
        ticket, grant = held
        now = self.clock.monotonic()
        self.model.tick(now)
        self.model.record(now, grant, failed=not ok)
        if ok:
            self.breaker.on_success(ticket)
        else:
            self.breaker.on_failure(ticket)

    @rule(held=consumes(tickets))
    def cancel(self, held: tuple[Ticket, Grant]) -> None:
        ticket, grant = held
        self.model.release(grant)
        self.breaker.release(ticket)

    @rule(seconds=st.sampled_from([0.001, 1.0, 59.0, 299.999, 300.0, 599.999, 600.0, 1000.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_state(self) -> None:
        self.model.tick(self.clock.monotonic())
        assert self.breaker.state is self.model.state


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60)
TestBreakerAgainstModel = BreakerMachine.TestCase
