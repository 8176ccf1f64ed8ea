"""Retry delays: one small class per strategy, as in AWS's "Exponential Backoff And Jitter".

`attempt` counts retries already scheduled, from 0: attempt 0 is the wait after the first
failed call and before the first retry, so its exponential part is `base * 2**0 = base`.
Delays are seconds. The random source is injected; nothing here reads a clock.

Each strategy answers two questions: `delay()` draws one wait, and `bounds()` says where every
such draw lies. `Strategy` is only the configuration key (`N8N_BACKOFF_STRATEGY`);
`backoff(strategy, ...)` builds the class it names.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import ClassVar, Final

__all__ = [
    "AdditiveJitter",
    "Backoff",
    "DecorrelatedJitter",
    "EqualJitter",
    "FullJitter",
    "NoJitter",
    "Strategy",
    "apply_retry_after",
    "backoff",
    "parse_retry_after",
]

_MAX_EXPONENT = 1023  # 2.0 ** 1024 overflows a float


class Strategy(StrEnum):
    """The configuration key naming a backoff strategy."""

    NONE = "none"
    ADDITIVE = "additive"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"

    @classmethod
    def _missing_(cls, value: object) -> Strategy | None:
        # `seed` was this strategy's name before it was called by what it does; old config
        # and scenario files keep working.
        return cls.ADDITIVE if value == "seed" else None


@dataclass(frozen=True, slots=True)
class Backoff(ABC):
    """Exponential growth from `base`, capped at `cap` (seconds); subclasses add the jitter."""

    strategy: ClassVar[Strategy]
    base: float = 1.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be positive, got {self.base}")
        if not self.cap >= self.base:
            raise ValueError(f"cap ({self.cap}) must be at least base ({self.base})")

    def exponential(self, attempt: int) -> float:
        """`base * 2**attempt`, uncapped (inf when it overflows)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        return self.base * 2.0 ** min(attempt, _MAX_EXPONENT)

    def ceiling(self, attempt: int) -> float:
        """`min(cap, base * 2**attempt)`: the capped exponential."""
        return min(self.cap, self.exponential(attempt))

    @abstractmethod
    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        """The wait before retry number `attempt` (0-based).

        `previous` is the last delay drawn for this delivery, used only by decorrelated jitter.
        """

    @abstractmethod
    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        """`(low, high)` such that every `delay(attempt, ..., previous)` lies in `[low, high]`."""


@dataclass(frozen=True, slots=True)
class NoJitter(Backoff):
    """`min(cap, base * 2**attempt)`: every client retries in lockstep."""

    strategy: ClassVar[Strategy] = Strategy.NONE

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        return self.ceiling(attempt)

    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        t = self.ceiling(attempt)
        return t, t


@dataclass(frozen=True, slots=True)
class AdditiveJitter(Backoff):
    """`min(base * 2**attempt + U[0,1) * jitter_factor * base, cap)`: the Step 06 design's
    formula. The jitter is a small fraction of `base`, so retries still bunch together."""

    strategy: ClassVar[Strategy] = Strategy.ADDITIVE
    jitter_factor: float = 0.1

    def __post_init__(self) -> None:
        Backoff.__post_init__(self)
        if not 0.0 <= self.jitter_factor <= 1.0:
            raise ValueError(f"jitter_factor must lie in [0, 1], got {self.jitter_factor}")

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        exp = self.exponential(attempt)
        return min(exp + rng.random() * self.jitter_factor * self.base, self.cap)

    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        exp = self.exponential(attempt)
        return min(self.cap, exp), min(self.cap, exp + self.jitter_factor * self.base)


@dataclass(frozen=True, slots=True)
class FullJitter(Backoff):
    """`U[0, min(cap, base * 2**attempt))`."""

    strategy: ClassVar[Strategy] = Strategy.FULL

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        return rng.random() * self.ceiling(attempt)

    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        return 0.0, self.ceiling(attempt)


@dataclass(frozen=True, slots=True)
class EqualJitter(Backoff):
    """`t/2 + U[0, t/2)` with `t = min(cap, base * 2**attempt)`."""

    strategy: ClassVar[Strategy] = Strategy.EQUAL

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        half = self.ceiling(attempt) / 2
        return half + rng.random() * half

    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        t = self.ceiling(attempt)
        return t / 2, t


@dataclass(frozen=True, slots=True)
class DecorrelatedJitter(Backoff):
    """`min(cap, U[base, 3 * previous))`, `previous` starting at `base`; the attempt number
    plays no part."""

    strategy: ClassVar[Strategy] = Strategy.DECORRELATED

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        upper = self._upper(previous)
        return min(self.cap, self.base + rng.random() * (upper - self.base))

    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        return self.base, min(self.cap, self._upper(previous))

    def _upper(self, previous: float | None) -> float:
        prev = self.base if previous is None else previous
        return max(self.base, prev * 3)


_CLASSES: Final[dict[Strategy, type[Backoff]]] = {
    cls.strategy: cls
    for cls in (NoJitter, AdditiveJitter, FullJitter, EqualJitter, DecorrelatedJitter)
}


def backoff(
    strategy: Strategy | str, *, base: float = 1.0, cap: float = 30.0, jitter_factor: float = 0.1
) -> Backoff:
    """The strategy a configuration key names, with its parameters (seconds).

    `jitter_factor` applies to the additive strategy only; it is checked for every strategy,
    so a bad value is refused wherever it is given.
    """
    if not 0.0 <= jitter_factor <= 1.0:
        raise ValueError(f"jitter_factor must lie in [0, 1], got {jitter_factor}")
    cls = _CLASSES[Strategy(strategy)]
    if cls is AdditiveJitter:
        return AdditiveJitter(base=base, cap=cap, jitter_factor=jitter_factor)
    return cls(base=base, cap=cap)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date.

    A malformed value gives `None` (ignored, never fatal); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Past 15 digits it is longer than any cap: no need to read it exactly.
        return float(int(text)) if len(text) <= 15 else float("inf")
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime and "-0000" forms carry no zone; HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def apply_retry_after(delay: float, retry_after: float | None, cap: float) -> float:
    """Honour a server's `Retry-After` up to the cap: wait at least it, never above `cap`."""
    if retry_after is None:
        return min(delay, cap)
    return min(cap, max(delay, retry_after))
