"""What every checker shares: the shape of a violation and of a checker's findings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from harness.sim import SimRun

__all__ = ["EPS", "Checker", "Findings", "Violation"]

EPS: Final = 1e-6
"""Seconds of float slack when comparing simulated times."""


@dataclass(slots=True)
class Violation:
    """One broken fact: what, about whom, when, and what to grep the trace for."""

    message: str
    tenant: str | None = None
    event_id: str | None = None
    ref: str | None = None
    times: dict[str, float] = field(default_factory=dict)
    needles: tuple[str, ...] = ()


@dataclass(slots=True)
class Findings:
    """A checker's answer: facts checked, violations found, notes for the details line."""

    checked: int = 0
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, v: Violation) -> None:
        self.violations.append(v)


Checker = Callable[[SimRun, Mapping[str, Any]], Findings]
"""Checks one run against one invariant, with the scenario's bounds for it."""
