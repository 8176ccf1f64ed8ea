"""The request journal of a fake: every call with its clock time, tenant, fault and outcome.

Invariant checkers and tests ask it questions (calls per tenant, peak in-flight per tenant,
duplicates by idempotency key, arrivals per time bucket) instead of instrumenting the system
under test. Thread-safe, because a served fake writes on its server thread while a test reads.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from reliability.clock import Clock

__all__ = ["OUTCOMES", "Journal", "JournalEntry"]

OUTCOMES: Final = (
    "pending",
    "answered",
    "hang",
    "reset",
    "closed",
    "truncated",
    "malformed",
    "gave_up",
)
"""`answered` means a complete HTTP answer (see `status`); the rest name what the client saw:
`gave_up` is a client that stopped waiting (its own deadline cancelled the call) while n8n was
still slow to answer; the workflow ran all the same, as n8n does not stop a run for a client."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One call as the fake saw it."""

    seq: int
    t: float
    """Seconds since the journal started (or was reset) on its clock, at arrival."""
    monotonic: float
    wall: datetime
    method: str
    path: str
    """The workflow path (the part after `/webhook/`)."""
    tenant: str
    """From the `X-Tenant-Id` header or the JSON body's `tenant_id`; "" when neither is given."""
    idempotency_key: str | None
    in_flight: int
    """Calls of this tenant in flight when this one arrived, itself included."""
    fault: str | None = None
    latency: float = 0.0
    status: int | None = None
    outcome: str = "pending"
    ran: bool = False
    """Whether the workflow executed (it may have, even when the caller saw a failure)."""
    finished_t: float | None = None
    dropped: bool = False
    """The workflow ran and a Remove Duplicates node dropped the call's item (a key seen in a
    previous execution): it took no effect past that node."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "t": self.t,
            "monotonic": self.monotonic,
            "wall": self.wall.isoformat(),
            "method": self.method,
            "path": self.path,
            "tenant": self.tenant,
            "idempotency_key": self.idempotency_key,
            "in_flight": self.in_flight,
            "fault": self.fault,
            "latency": self.latency,
            "status": self.status,
            "outcome": self.outcome,
            "ran": self.ran,
            "finished_t": self.finished_t,
            "dropped": self.dropped,
        }


class Journal:
    """An append-only record of calls (the oldest dropped beyond `capacity`) and its queries."""

    def __init__(self, clock: Clock, *, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._clock = clock
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, JournalEntry] = OrderedDict()
        self._in_flight: Counter[str] = Counter()
        self._seq = 0
        self._dropped = 0
        self._epoch = clock.monotonic()

    # --- recording -----------------------------------------------------------------------

    def begin(
        self, *, method: str, path: str, tenant: str, idempotency_key: str | None
    ) -> JournalEntry:
        """Record an arrival; pass the returned entry to `finish` when the call is over."""
        mono = self._clock.monotonic()
        wall = self._clock.now()
        with self._lock:
            self._seq += 1
            self._in_flight[tenant] += 1
            entry = JournalEntry(
                seq=self._seq,
                t=mono - self._epoch,
                monotonic=mono,
                wall=wall,
                method=method,
                path=path,
                tenant=tenant,
                idempotency_key=idempotency_key,
                in_flight=self._in_flight[tenant],
            )
            self._entries[entry.seq] = entry
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
                self._dropped += 1
        return entry

    def finish(
        self,
        entry: JournalEntry,
        *,
        outcome: str,
        status: int | None = None,
        fault: str | None = None,
        latency: float = 0.0,
        ran: bool = False,
        dropped: bool = False,
    ) -> JournalEntry:
        """Complete an entry from `begin`; the call stops counting as in flight."""
        if outcome not in OUTCOMES or outcome == "pending":
            raise ValueError(f"outcome must be one of {OUTCOMES[1:]}, got {outcome!r}")
        e = entry
        done = JournalEntry(
            e.seq,
            e.t,
            e.monotonic,
            e.wall,
            e.method,
            e.path,
            e.tenant,
            e.idempotency_key,
            e.in_flight,
            fault,
            latency,
            status,
            outcome,
            ran,
            self._clock.monotonic() - self._epoch,
            dropped,
        )
        with self._lock:
            if entry.seq in self._entries:
                self._entries[entry.seq] = done
            # An entry from before a reset no longer counts: its tenant's counter restarted.
            if entry.monotonic >= self._epoch and self._in_flight[entry.tenant] > 0:
                self._in_flight[entry.tenant] -= 1
        return done

    def reset(self) -> None:
        """Forget everything; time zero is now."""
        with self._lock:
            self._entries.clear()
            self._in_flight.clear()
            self._seq = 0
            self._dropped = 0
            self._epoch = self._clock.monotonic()

    # --- queries -------------------------------------------------------------------------

    def entries(self) -> tuple[JournalEntry, ...]:
        """All recorded calls, in arrival order (pending ones included)."""
        with self._lock:
            return tuple(self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries())

    @property
    def dropped(self) -> int:
        """Entries dropped because the journal was full."""
        return self._dropped

    def counts_by_tenant(self, *, outcome: str | None = None) -> dict[str, int]:
        """Calls per tenant, optionally only those with `outcome`."""
        counts: Counter[str] = Counter(
            e.tenant for e in self.entries() if outcome is None or e.outcome == outcome
        )
        return dict(sorted(counts.items()))

    def peak_in_flight(self) -> dict[str, int]:
        """The most calls each tenant had in flight at once (the peak is always at an arrival)."""
        peaks: dict[str, int] = {}
        for e in self.entries():
            peaks[e.tenant] = max(peaks.get(e.tenant, 0), e.in_flight)
        return dict(sorted(peaks.items()))

    def in_flight(self) -> dict[str, int]:
        """Calls in flight now, per tenant (tenants with none are left out)."""
        with self._lock:
            return {t: n for t, n in sorted(self._in_flight.items()) if n > 0}

    def duplicates(self, *, ran_only: bool = False) -> dict[str, int]:
        """Idempotency keys seen more than once, with their counts; `ran_only`: executions only."""
        counts: Counter[str] = Counter(
            e.idempotency_key
            for e in self.entries()
            if e.idempotency_key is not None and (e.ran or not ran_only)
        )
        return {key: n for key, n in sorted(counts.items()) if n > 1}

    def arrivals(self, bucket: float, *, tenant: str | None = None) -> dict[float, int]:
        """Arrivals per time bucket of `bucket` seconds: bucket start -> count (non-empty only)."""
        if not bucket > 0 or not math.isfinite(bucket):
            raise ValueError(f"bucket must be a positive number of seconds, got {bucket!r}")
        counts: Counter[int] = Counter(
            math.floor(e.t / bucket) for e in self.entries() if tenant is None or e.tenant == tenant
        )
        return {index * bucket: n for index, n in sorted(counts.items())}

    def to_json(self, *, bucket: float | None = None) -> dict[str, Any]:
        """The journal as `GET /__journal` serves it."""
        entries = self.entries()
        out: dict[str, Any] = {
            "entries": [e.to_json() for e in entries],
            "dropped": self._dropped,
            "counts_by_tenant": self.counts_by_tenant(),
            "peak_in_flight": self.peak_in_flight(),
            "in_flight": self.in_flight(),
            "duplicates": self.duplicates(),
        }
        if bucket is not None:
            out["arrivals"] = {f"{start:g}": n for start, n in self.arrivals(bucket).items()}
            out["bucket"] = bucket
        return out
