"""One invariant's verdict, the same shape wherever it was checked (simulated or live runs).

An `InvariantResult` says which invariant, whether it held, how many facts were checked, a
sentence of details, and, when it broke in a simulated run, a `Counterexample` small enough to
read with the command line that reproduces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Counterexample", "InvariantResult"]


@dataclass(frozen=True, slots=True)
class Counterexample:
    """The first violation found, small enough to read."""

    invariant: str
    message: str
    tenant: str | None = None
    event_id: str | None = None
    ref: str | None = None
    """The delivery (idempotency key, outbox id or DLQ id) concerned."""
    times: Mapping[str, float] = field(default_factory=dict)
    story: tuple[str, ...] = ()
    """The trace lines about this tenant/delivery that led there (the last few)."""
    command: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "message": self.message,
            "tenant": self.tenant,
            "event_id": self.event_id,
            "ref": self.ref,
            "times": {k: round(v, 6) for k, v in self.times.items()},
            "story": list(self.story),
            "command": self.command,
        }


@dataclass(frozen=True, slots=True)
class InvariantResult:
    """Whether one invariant held, over how many checked facts."""

    name: str
    passed: bool
    checked: int
    details: str
    counterexample: Counterexample | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "checked": self.checked,
            "details": self.details,
            "counterexample": None
            if self.counterexample is None
            else self.counterexample.to_json(),
        }
