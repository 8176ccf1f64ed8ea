"""The trace: every decision of a simulated run as one canonical line, hashed as it comes.

A line is `<t> <kind> <fields...>` with `t` the virtual time in seconds to the microsecond. The
SHA-256 of all lines (each followed by a newline) is the run's trace hash: the same scenario
and seed give the same hash, byte for byte.
"""

from __future__ import annotations

import hashlib

from harness.vclock import VirtualClock

__all__ = ["Trace"]


class Trace:
    """Canonical lines `<t> <kind> <fields...>`, hashed as they come; kept for counterexamples."""

    def __init__(self, clock: VirtualClock | None = None, *, keep: bool = True) -> None:
        self._clock = clock
        self._hash = hashlib.sha256()
        self._keep = keep
        self._pending: list[str] = []  # lines not hashed yet: hashing in batches is cheaper
        self.lines: list[str] = []
        self.count = 0

    def bind(self, clock: VirtualClock) -> None:
        self._clock = clock

    def add(self, kind: str, text: str) -> None:
        t = self._clock.monotonic() if self._clock is not None else 0.0
        line = f"{t:.6f} {kind} {text}"
        self.count += 1
        pending = self._pending
        pending.append(line)
        if len(pending) >= 4096:
            self._flush()
        if self._keep:
            self.lines.append(line)

    def _flush(self) -> None:
        """Hash the pending lines: the digest equals hashing `line + "\\n"` one at a time."""
        if self._pending:
            self._pending.append("")
            self._hash.update("\n".join(self._pending).encode())
            self._pending = []

    @property
    def hexdigest(self) -> str:
        self._flush()
        return self._hash.hexdigest()

    def grep(self, *needles: str, limit: int = 20) -> list[str]:
        """The last `limit` lines mentioning every needle (the story of one delivery)."""
        found = [ln for ln in self.lines if all(n in ln for n in needles)]
        return found[-limit:]
