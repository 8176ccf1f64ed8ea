"""Per-tenant circuit breakers: N failures inside a sliding time window open the circuit.

CLOSED counts failures in a window of `window` seconds: a failure at time f counts while
`now - f < window`. The `threshold`-th counted failure opens the breaker. OPEN fails fast with
`CircuitOpen` until `opened_at + recovery`; then HALF_OPEN lets exactly `probes` calls
through. A probe success closes (and clears the window); a probe failure re-opens.

Memory per breaker is bounded by the threshold: only the last `threshold` failure times are kept.

A breaker tells `BreakerListener`s (pybreaker's `CircuitBreakerListener` in spirit) about every
call it lets through or refuses, every outcome reported and every state change.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from reliability.clock import Clock
from reliability.errors import ErrorCode

__all__ = [
    "DEFAULT_FAILURES",
    "BreakerListener",
    "BreakerPolicy",
    "BreakerRegistry",
    "CircuitBreaker",
    "CircuitOpen",
    "State",
    "Ticket",
    "Transition",
]

DEFAULT_FAILURES: frozenset[ErrorCode] = frozenset(
    {ErrorCode.HTTP_5XX, ErrorCode.HTTP_429, ErrorCode.TIMEOUT, ErrorCode.CONNECTION}
)
"""Outcomes that count as failures by default; other 4xx mean n8n is up and answering."""


class State(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Thresholds in seconds: 10 failures in 10 minutes open, 5 minutes to recover, 1 probe."""

    threshold: int = 10
    window: float = 600.0
    recovery: float = 300.0
    probes: int = 1
    failures: frozenset[ErrorCode] = DEFAULT_FAILURES

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {self.threshold}")
        if not self.window > 0 or not self.recovery > 0:
            raise ValueError("window and recovery must be positive")
        if self.probes < 1:
            raise ValueError(f"probes must be >= 1, got {self.probes}")


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, as listeners see it. `at` is the clock's monotonic time."""

    name: str
    old: State
    new: State
    at: float


class CircuitOpen(Exception):
    """The breaker refused the call without making it."""

    def __init__(self, name: str, state: State, retry_at: float, retry_in: float) -> None:
        self.name = name
        self.state = state
        self.retry_at = retry_at
        """Monotonic time at which the breaker half-opens (or, when HALF_OPEN, `now`)."""
        self.retry_in = retry_in
        super().__init__(f"circuit {name!r} is {state}; retry in {retry_in:.3f}s")


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission for one call; hand it back with exactly one outcome."""

    probe: bool
    generation: int


class BreakerListener:
    """Hooks into breakers: subclass and override what you need (each default does nothing).

    Hooks run synchronously inside the breaker's call and must not raise. Their order follows
    cause and effect: `acquired`/`refused` after the breaker decided (a half-open transition it
    made on the way is reported first); `recorded` when an outcome is reported, before the
    breaker applies it (so a transition it causes comes after); `released` before the ticket
    is given back.
    """

    def acquired(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        """A call was let through (`ticket.probe`: as a half-open probe)."""

    def refused(self, breaker: CircuitBreaker, error: CircuitOpen) -> None:
        """A call was refused without being made."""

    def recorded(
        self, breaker: CircuitBreaker, ticket: Ticket, outcome: ErrorCode | None, failed: bool
    ) -> None:
        """A call's outcome was reported; `failed` says whether it counts as a failure."""

    def released(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        """A ticket was given back without an outcome (the call was cancelled)."""

    def changed(self, transition: Transition) -> None:
        """The breaker moved from one state to another."""


class CircuitBreaker:
    """One breaker. Not thread-safe; safe under asyncio (its methods never await)."""

    __slots__ = (
        "_clock",
        "_closed_ticket",
        "_failures",
        "_generation",
        "_listeners",
        "_opened_at",
        "_probes_in_flight",
        "_state",
        "name",
        "policy",
    )

    def __init__(
        self,
        policy: BreakerPolicy,
        clock: Clock,
        *,
        name: str = "",
        listeners: Iterable[BreakerListener] = (),
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._listeners = tuple(listeners)
        self._state = State.CLOSED
        self._failures: deque[float] = deque(maxlen=policy.threshold)
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._generation = 0
        self._closed_ticket = Ticket(probe=False, generation=0)

    @property
    def state(self) -> State:
        """The current state; observing it after the recovery time moves OPEN to HALF_OPEN."""
        self._tick(self._clock.monotonic())
        return self._state

    def failures_in_window(self) -> int:
        now = self._clock.monotonic()
        return sum(1 for f in self._failures if now - f < self.policy.window)

    def acquire(self) -> Ticket:
        """Ask to make a call: a `Ticket`, or `CircuitOpen` when the call must not be made."""
        now = self._clock.monotonic()
        self._tick(now)
        if self._state is State.CLOSED:
            ticket = self._closed_ticket  # immutable, so one per generation serves every call
        elif self._state is State.HALF_OPEN and self._probes_in_flight < self.policy.probes:
            self._probes_in_flight += 1
            ticket = Ticket(probe=True, generation=self._generation)
        else:
            retry_at = self._opened_at + self.policy.recovery
            error = CircuitOpen(self.name, self._state, retry_at, max(0.0, retry_at - now))
            for listener in self._listeners:
                listener.refused(self, error)
            raise error
        for listener in self._listeners:
            listener.acquired(self, ticket)
        return ticket

    def record(self, ticket: Ticket, outcome: ErrorCode | None) -> None:
        """Report how the call went: `None` for success, else its error code."""
        failed = outcome is not None and outcome in self.policy.failures
        for listener in self._listeners:
            listener.recorded(self, ticket, outcome, failed)
        if failed:
            self.on_failure(ticket)
        else:
            self.on_success(ticket)

    def on_success(self, ticket: Ticket) -> None:
        if ticket.generation != self._generation:
            return  # a call from before the last transition: it says nothing about now
        if ticket.probe:
            self._probes_in_flight -= 1
            if self._state is State.HALF_OPEN:
                self._failures.clear()
                self._move(State.CLOSED, self._clock.monotonic())

    def on_failure(self, ticket: Ticket) -> None:
        now = self._clock.monotonic()
        if ticket.generation != self._generation:
            return
        if ticket.probe:
            self._probes_in_flight -= 1
            if self._state is State.HALF_OPEN:
                self._open(now)
            return
        if self._state is not State.CLOSED:
            return
        window = self.policy.window
        while self._failures and now - self._failures[0] >= window:
            self._failures.popleft()
        self._failures.append(now)
        if len(self._failures) >= self.policy.threshold:
            self._open(now)

    def release(self, ticket: Ticket) -> None:
        """Give a ticket back without an outcome (the call was cancelled before it was made)."""
        for listener in self._listeners:
            listener.released(self, ticket)
        if ticket.probe and ticket.generation == self._generation:
            self._probes_in_flight -= 1

    def half_open_at(self) -> float | None:
        """Monotonic time at which an OPEN breaker lets probes through; None otherwise."""
        if self.state is State.OPEN:
            return self._opened_at + self.policy.recovery
        return None

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._failures.clear()
        self._move(State.OPEN, now)

    def _tick(self, now: float) -> None:
        # The deadline form, as `half_open_at()` and `CircuitOpen.retry_at` state it: a caller
        # that sleeps until then finds the breaker half-open (`now - opened_at` can round below).
        if self._state is State.OPEN and now >= self._opened_at + self.policy.recovery:
            self._move(State.HALF_OPEN, self._opened_at + self.policy.recovery)

    def _move(self, new: State, at: float) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._probes_in_flight = 0
        self._closed_ticket = Ticket(probe=False, generation=self._generation)
        event = Transition(self.name, old, new, at)
        for listener in self._listeners:
            listener.changed(event)

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state})"


class BreakerRegistry:
    """One breaker per tenant, each with its tenant's policy; tenants never share state."""

    def __init__(
        self,
        clock: Clock,
        policy_for: Callable[[str], BreakerPolicy],
        *,
        listeners: Iterable[BreakerListener] = (),
    ) -> None:
        self._clock = clock
        self._policy_for = policy_for
        self._listeners = tuple(listeners)
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, tenant_id: str) -> CircuitBreaker:
        breaker = self._breakers.get(tenant_id)
        if breaker is None:
            breaker = CircuitBreaker(
                self._policy_for(tenant_id),
                self._clock,
                name=tenant_id,
                listeners=self._listeners,
            )
            self._breakers[tenant_id] = breaker
        return breaker

    def states(self) -> dict[str, State]:
        return {name: b.state for name, b in self._breakers.items()}
