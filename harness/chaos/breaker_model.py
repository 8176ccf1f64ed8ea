"""The circuit breaker as the design states it, written independently of `reliability.breaker`.

It keeps every failure time and recomputes the window on each failure: no bounded deque, no
shared tickets, nothing clever, so that a bug in the real breaker's cleverness shows up as a
disagreement. The invariant checker replays a run's recorded breaker calls through it, and the
hypothesis state machine in `tests/test_breaker.py` drives both side by side.

The rules: CLOSED counts failures inside a sliding window (a failure at f counts while
`t - f < window`); the `threshold`-th opens. OPEN refuses until `opened_at + recovery`, then
HALF_OPEN lets `probes` calls through: a probe's success closes (and forgets the window), its
failure re-opens. Every state change starts a new generation; outcomes of calls granted in an
older generation are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reliability.breaker import State

__all__ = ["BreakerModel", "Grant"]


@dataclass(frozen=True, slots=True)
class Grant:
    """A call the model lets through: a probe or not, in which generation."""

    probe: bool
    generation: int


@dataclass(slots=True)
class BreakerModel:
    """One tenant's breaker in one process."""

    threshold: int
    window: float
    recovery: float
    probes: int
    state: State = State.CLOSED
    failures: list[float] = field(default_factory=list)
    opened_at: float = 0.0
    in_flight: int = 0
    generation: int = 0
    transitions: list[tuple[State, State, float]] = field(default_factory=list)
    """Every state change as (old, new, at)."""
    opens_at_threshold: int = 0
    """Opens caused by exactly the threshold-th failure in the window."""
    expired: int = 0
    """Failures that aged out of the window before they could count."""
    probes_granted: int = 0

    def tick(self, t: float) -> None:
        """Observe the breaker at `t`: an OPEN one whose recovery time came is HALF_OPEN."""
        if self.state is State.OPEN and t >= self.opened_at + self.recovery:
            self._move(State.HALF_OPEN, self.opened_at + self.recovery)

    def acquire(self, t: float) -> Grant | None:
        """Ask for a call at `t`: a grant, or None when it must be refused."""
        self.tick(t)
        if self.state is State.CLOSED:
            return Grant(False, self.generation)
        if self.state is State.HALF_OPEN and self.in_flight < self.probes:
            self.in_flight += 1
            self.probes_granted += 1
            return Grant(True, self.generation)
        return None

    def record(self, t: float, grant: Grant, *, failed: bool) -> None:
        """The outcome at `t` of a call granted as `grant`."""
        if grant.generation != self.generation:
            return
        if grant.probe:
            self.in_flight -= 1
            if self.state is State.HALF_OPEN:
                if failed:
                    self._open(t)
                else:
                    self.failures.clear()
                    self._move(State.CLOSED, t)
            return
        if not failed or self.state is not State.CLOSED:
            return
        kept = [f for f in self.failures if t - f < self.window]
        self.expired += len(self.failures) - len(kept)
        self.failures = [*kept, t]
        if len(self.failures) >= self.threshold:
            if len(self.failures) == self.threshold:
                self.opens_at_threshold += 1
            self._open(t)

    def release(self, grant: Grant) -> None:
        """A granted call was cancelled before it had an outcome."""
        if grant.probe and grant.generation == self.generation:
            self.in_flight -= 1

    def _open(self, t: float) -> None:
        self.opened_at = t
        self.failures.clear()
        self._move(State.OPEN, t)

    def _move(self, new: State, at: float) -> None:
        self.transitions.append((self.state, new, at))
        self.state = new
        self.generation += 1
        self.in_flight = 0
