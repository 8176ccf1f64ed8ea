"""What to do after one try at a delivery, decided as a value: deliver, retry, snooze or DLQ.

`decide()` is pure: it reads the outcome of the try, the attempts already spent, the tenant's
retry rules, whether the retry budget allows another retry, the delay drawn last time (for
decorrelated jitter) and a random source, and returns a decision. It does no I/O and reads no
clock; the dispatcher carries the decision out (procrastinate's `RetryDecision` is the model),
and the harness's backoff checker asks it the same questions to know what was allowed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from reliability.backoff import Backoff, apply_retry_after
from reliability.config import Settings
from reliability.errors import ErrorCode

__all__ = [
    "PERMANENT",
    "Answered",
    "DeadLetter",
    "Decision",
    "Done",
    "Internal",
    "Outcome",
    "Refused",
    "Retry",
    "RetryRules",
    "Snooze",
    "decide",
    "retry_rules",
]

PERMANENT: Final = frozenset({ErrorCode.HTTP_4XX, ErrorCode.INVALID_PAYLOAD})
"""Failures that a retry cannot fix: dead-lettered at once."""


# -- what happened ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answered:
    """The call was made: n8n answered (`status`), or the transport failed (`status` None).

    `code` is None on success; `message` says what went wrong, for the DLQ (never a secret).
    """

    status: int | None
    code: ErrorCode | None
    retry_after: float | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Refused:
    """The call was not made: the breaker was open (`CIRCUIT_OPEN`) or no quota slot came free
    in time (`QUOTA`). `retry_in` is how long until the breaker half-opens (0 when it already
    has and its probes are out)."""

    cause: ErrorCode
    retry_in: float = 0.0


@dataclass(frozen=True, slots=True)
class Internal:
    """The try raised an error the dispatcher does not expect (a bug, or a setting the call
    cannot use, such as a webhook URL httpx cannot parse). It counts as a failed attempt with
    code `INTERNAL`: retried with backoff, dead-lettered after the retries. `message` names the
    error's type only: an exception's text may quote a secret."""

    message: str


Outcome = Answered | Refused | Internal


# -- the rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryRules:
    """A tenant's retry policy as the decision needs it."""

    max_retries: int
    backoff: Backoff
    settle: float
    """How long one call may take (the read timeout): how long a probe can keep others out."""


def retry_rules(settings: Settings, tenant_id: str) -> RetryRules:
    """A tenant's retry rules from the settings (its own policy over the global one)."""
    retry = settings.tenant(tenant_id).retry
    return RetryRules(retry.max_retries, retry.backoff(), settings.n8n_read_timeout_ms / 1000)


# -- what to do ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    """Delivered: mark the row done."""

    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Spend an attempt and try again after `delay` seconds.

    `drawn` is the strategy's own draw (before a Retry-After raised it), which decorrelated
    jitter grows from next time, as this one grew from `previous`; `bounds` is where every draw
    for this attempt lies.
    """

    attempts: int
    delay: float
    drawn: float
    previous: float | None
    bounds: tuple[float, float]
    retry_after: float | None
    cause: ErrorCode


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give up: move the row to the DLQ with `code`."""

    code: ErrorCode
    attempts: int


@dataclass(frozen=True, slots=True)
class Snooze:
    """Put the row off for `wait` seconds without spending an attempt."""

    wait: float
    cause: ErrorCode


Decision = Done | Retry | DeadLetter | Snooze


def decide(
    outcome: Outcome,
    attempt: int,
    rules: RetryRules,
    budget_allows: bool,
    previous: float | None,
    rng: random.Random,
) -> Decision:
    """The decision after a try at a delivery that had spent `attempt` attempts before it."""
    if isinstance(outcome, Refused):
        return _snooze(outcome, rules, rng)
    if isinstance(outcome, Internal):
        code, retry_after = ErrorCode.INTERNAL, None
    elif outcome.code is None:
        return Done(attempt + 1)
    else:
        code, retry_after = outcome.code, outcome.retry_after
    spent = attempt + 1
    if code in PERMANENT or spent > rules.max_retries:
        return DeadLetter(code, spent)
    if not budget_allows:
        return DeadLetter(ErrorCode.RETRY_BUDGET, spent)
    backoff = rules.backoff
    drawn = backoff.delay(attempt, rng, previous)
    return Retry(
        attempts=spent,
        delay=apply_retry_after(drawn, retry_after, backoff.cap),
        drawn=drawn,
        previous=previous,
        bounds=backoff.bounds(attempt, previous),
        retry_after=retry_after,
        cause=code,
    )


def _snooze(refused: Refused, rules: RetryRules, rng: random.Random) -> Snooze:
    """How long a refused row waits.

    An open breaker: until it half-opens, plus up to `base` of jitter so the probe goes first
    and the waiting rows do not all wake in the same instant. A half-open breaker with its
    probes out: long enough for a probe to finish (one call at most), jittered. No quota slot:
    one base delay.
    """
    base = rules.backoff.base
    if refused.cause is not ErrorCode.CIRCUIT_OPEN:
        return Snooze(base, refused.cause)
    if refused.retry_in > 0:
        return Snooze(refused.retry_in + rng.random() * base, refused.cause)
    settle = max(base, rules.settle)
    return Snooze(settle * (1.0 + rng.random()), refused.cause)
