"""Retry delays: the seed's formula, and the AWS "Exponential Backoff And Jitter" strategies.

`attempt` counts retries already scheduled, from 0: attempt 0 is the wait after the first
failed call and before the first retry, so its exponential part is `base * 2**0 = base`.
Delays are seconds. The random source is injected; nothing here reads a clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

__all__ = ["Backoff", "Strategy", "apply_retry_after", "parse_retry_after"]

_MAX_EXPONENT = 1023  # 2.0 ** 1024 overflows a float


class Strategy(StrEnum):
    """How jitter is applied on top of exponential growth."""

    SEED = "seed"
    """`min(base * 2**attempt + U[0,1) * jitter_factor * base, cap)`: the seed's additive jitter."""
    NONE = "none"
    """`min(cap, base * 2**attempt)`: no jitter; the herd retries in lockstep."""
    FULL = "full"
    """`U[0, min(cap, base * 2**attempt))`."""
    EQUAL = "equal"
    """`t/2 + U[0, t/2)` with `t = min(cap, base * 2**attempt)`."""
    DECORRELATED = "decorrelated"
    """`min(cap, U[base, 3 * previous))`, `previous` starting at `base`."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """A retry-delay strategy with its parameters (seconds)."""

    strategy: Strategy = Strategy.SEED
    base: float = 1.0
    cap: float = 30.0
    jitter_factor: float = 0.1

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise ValueError(f"base must be positive, got {self.base}")
        if not self.cap >= self.base:
            raise ValueError(f"cap ({self.cap}) must be at least base ({self.base})")
        if not 0.0 <= self.jitter_factor <= 1.0:
            raise ValueError(f"jitter_factor must lie in [0, 1], got {self.jitter_factor}")

    def exponential(self, attempt: int) -> float:
        """`base * 2**attempt`, uncapped (inf when it overflows)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        return self.base * 2.0 ** min(attempt, _MAX_EXPONENT)

    def delay(self, attempt: int, rng: random.Random, previous: float | None = None) -> float:
        """The wait before retry number `attempt` (0-based).

        `previous` is the last delay returned, used only by the decorrelated strategy.
        """
        exp = self.exponential(attempt)
        match self.strategy:
            case Strategy.SEED:
                return min(exp + rng.random() * self.jitter_factor * self.base, self.cap)
            case Strategy.NONE:
                return min(self.cap, exp)
            case Strategy.FULL:
                return rng.random() * min(self.cap, exp)
            case Strategy.EQUAL:
                half = min(self.cap, exp) / 2
                return half + rng.random() * half
            case Strategy.DECORRELATED:
                prev = self.base if previous is None else previous
                upper = max(self.base, prev * 3)
                return min(self.cap, self.base + rng.random() * (upper - self.base))

    def bounds(self, attempt: int, previous: float | None = None) -> tuple[float, float]:
        """`(low, high)` such that every `delay(attempt, ...)` lies in `[low, high]`."""
        exp = self.exponential(attempt)
        t = min(self.cap, exp)
        match self.strategy:
            case Strategy.SEED:
                return t, min(self.cap, exp + self.jitter_factor * self.base)
            case Strategy.NONE:
                return t, t
            case Strategy.FULL:
                return 0.0, t
            case Strategy.EQUAL:
                return t / 2, t
            case Strategy.DECORRELATED:
                prev = self.base if previous is None else previous
                return self.base, min(self.cap, max(self.base, prev * 3))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date.

    A malformed value gives `None` (ignored, never fatal); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
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
