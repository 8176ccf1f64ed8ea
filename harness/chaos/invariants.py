"""The invariant checkers: one per invariant of DESIGN.md, over a run's trace and final state.

Each checker reads the `Records` of a `SimRun` (what the fake Stripe got back, the dispatcher's
events, every breaker call, the calls at the fake n8n, store snapshots, DLQ probes) and returns
an `InvariantResult`: how many facts it checked and, on failure, a small counterexample (tenant,
event, times, the trace lines that led there) with the command line that reproduces it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.sim import BreakerOp, SimRun
from harness.sim.scenario import CATALOGUE, display_path
from reliability.backoff import Strategy
from reliability.breaker import State
from reliability.config import RetryPolicy
from reliability.events import Attempted, BreakerChanged, DeadLettered, Delivered, Retrying, Snoozed

__all__ = [
    "CHECKERS",
    "Counterexample",
    "InvariantResult",
    "check_run",
    "reproduce_command",
]

_EPS: Final = 1e-6
# Tuples for isinstance, not `A | B`: a union is built anew at each test, run per event.
_ATTEMPT_OR_RETRY: Final = (Attempted, Retrying)
_WORKED_ON: Final = (Attempted, Snoozed, DeadLettered)


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

    def render(self) -> str:
        lines = [f"  {self.invariant}: {self.message}"]
        if self.tenant or self.event_id or self.ref:
            lines.append(f"    tenant={self.tenant} event={self.event_id} ref={self.ref}")
        if self.times:
            lines.append("    times: " + ", ".join(f"{k}={v:.6f}" for k, v in self.times.items()))
        lines += [f"    | {s}" for s in self.story]
        lines.append(f"    reproduce: {self.command}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class InvariantResult:
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


@dataclass(slots=True)
class _Violation:
    message: str
    tenant: str | None = None
    event_id: str | None = None
    ref: str | None = None
    times: dict[str, float] = field(default_factory=dict)
    needles: tuple[str, ...] = ()


@dataclass(slots=True)
class _Outcome:
    checked: int = 0
    violations: list[_Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, v: _Violation) -> None:
        self.violations.append(v)


Checker = Callable[[SimRun, Mapping[str, Any]], _Outcome]


def reproduce_command(run: SimRun) -> str:
    """The command line that replays this run exactly."""
    file = run.scenario.file
    builtin = display_path(CATALOGUE / Path(file).name) == file
    target = Path(file).stem if builtin else file
    cmd = f"reliability-harness chaos --scenario {target} --seed {run.seed}"
    if run.store_url.startswith(("postgresql://", "postgres://")):
        cmd += f" --database-url {run.store_url}"
    return cmd


# --- nothing lost ----------------------------------------------------------------------------


def _nothing_lost(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    r = run.records
    out = _Outcome()
    expiry: dict[str, float] = {}
    for entry in r.dlq_entries.values():
        at = r.seconds(entry.expires_at)
        expiry[entry.idempotency_key] = max(at, expiry.get(entry.idempotency_key, 0.0))
    keys = list(r.accepted_keys.items())
    for cp in r.checkpoints:
        for key, (tenant, event_id, t_acc) in keys[: cp.accepted]:
            out.checked += 1
            if key in cp.delivered or key in cp.pending or key in cp.dlq:
                continue
            if key in expiry and expiry[key] <= cp.t + _EPS:
                continue  # dead-lettered and past its TTL: gone by design
            out.fail(
                _Violation(
                    f"delivery {key} accepted at t={t_acc:.3f} is neither delivered, pending nor "
                    f"in the DLQ at t={cp.t:.3f}",
                    tenant,
                    event_id,
                    key,
                    {"accepted": t_acc, "checked": cp.t},
                    (event_id,),
                )
            )
            break
    accepted: dict[tuple[str, str], float] = {}
    for s in r.sends:
        if s.code == "ACCEPTED":
            accepted.setdefault((s.tenant, s.event_id), s.t)
        elif s.status is not None and 200 <= s.status < 300:
            out.checked += 1
            if (s.tenant, s.event_id) not in accepted:
                out.fail(
                    _Violation(
                        f"answered {s.status} {s.code} but the event was never accepted",
                        s.tenant,
                        s.event_id,
                        s.event_id,
                        {"answered": s.t},
                        (s.event_id,),
                    )
                )
    out.notes.append(f"{len(r.checkpoints)} snapshots")
    return out


# --- no double processing --------------------------------------------------------------------

_EXPECTED: Final = {
    "replay": {"STALE_TIMESTAMP"},
    "bad:tampered": {"BAD_SIGNATURE"},
    "bad:no-v1": {"MALFORMED_HEADER"},
    "bad:unparsable": {"MALFORMED_HEADER"},
    "bad:missing": {"MALFORMED_HEADER"},
}
_GOOD: Final = {"ACCEPTED", "DUPLICATE"}


def _no_double(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    r = run.records
    out = _Outcome()
    accepted: dict[tuple[str, str], float] = {}
    answered: set[tuple[str, str]] = set()
    for s in r.sends:
        if s.status is None:
            continue
        out.checked += 1
        key = (s.tenant, s.event_id)
        expected = _EXPECTED.get(s.kind, _GOOD)
        if s.code not in expected:
            out.fail(
                _Violation(
                    f"{s.kind} request answered {s.status} {s.code}, expected "
                    f"{' or '.join(sorted(expected))}",
                    s.tenant,
                    s.event_id,
                    s.event_id,
                    {"answered": s.t},
                    (s.event_id,),
                )
            )
        if expected is _GOOD:
            answered.add(key)
        if s.code == "ACCEPTED":
            if key in accepted:
                out.fail(
                    _Violation(
                        f"event processed twice (accepted at t={accepted[key]:.3f} and "
                        f"t={s.t:.3f})",
                        s.tenant,
                        s.event_id,
                        s.event_id,
                        {"first": accepted[key], "second": s.t},
                        (s.event_id,),
                    )
                )
            accepted.setdefault(key, s.t)
    for key in sorted(answered - accepted.keys()):
        out.fail(
            _Violation(
                "legitimate event answered but never processed",
                key[0],
                key[1],
                key[1],
                needles=(key[1],),
            )
        )
    delivered: dict[str, float] = {}
    for t, _, ev in r.events:
        if isinstance(ev, Delivered):
            out.checked += 1
            if ev.idempotency_key in delivered:
                out.fail(
                    _Violation(
                        f"delivery {ev.idempotency_key} completed twice",
                        ev.tenant_id,
                        None,
                        ev.idempotency_key,
                        {"first": delivered[ev.idempotency_key], "second": t},
                        (ev.tenant_id,),
                    )
                )
            delivered.setdefault(ev.idempotency_key, t)
    return out


# --- backoff bounds --------------------------------------------------------------------------


def _backoff(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    r = run.records
    tol = float(params.get("tolerance", 1e-9))
    out = _Outcome()
    by_row: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for t, _, ev in r.events:
        if isinstance(ev, _ATTEMPT_OR_RETRY):
            by_row[ev.outbox_id].append((t, ev))
    policies: dict[str, RetryPolicy] = {}

    def policy_of(tenant: str) -> RetryPolicy:
        policy = policies.get(tenant)
        if policy is None:  # settings.tenant() merges a policy: once per tenant, not per event
            policy = policies[tenant] = r.settings.tenant(tenant).retry
        return policy

    for t, _, ev in r.events:
        if not isinstance(ev, Retrying):
            continue
        out.checked += 1
        backoff = policy_of(ev.tenant_id).backoff()
        cap = backoff.cap
        low, high = ev.bounds
        bad: str | None = None
        if backoff.strategy is Strategy.DECORRELATED:
            if abs(low - backoff.base) > tol or high > cap + tol or high < low:
                bad = f"decorrelated bounds {ev.bounds} outside [base={backoff.base}, cap={cap}]"
        else:
            exp_low, exp_high = backoff.bounds(ev.attempt - 1)
            if abs(low - exp_low) > tol or abs(high - exp_high) > tol:
                bad = f"bounds {ev.bounds} differ from the strategy's ({exp_low}, {exp_high})"
        delay, ra = ev.delay, ev.retry_after
        if bad is None and delay > cap + tol:
            bad = f"delay {delay} exceeds the max delay {cap}"
        if bad is None and ra is None and not (low - tol <= delay <= high + tol):
            bad = f"delay {delay} outside the strategy's bounds [{low}, {high}]"
        if bad is None and ra is not None:
            floor = min(cap, max(low, ra))
            ceiling = min(cap, max(high, ra))
            if not floor - tol <= delay <= ceiling + tol:
                bad = (
                    f"Retry-After {ra} not honoured up to the cap: delay {delay} outside "
                    f"[{floor}, {ceiling}]"
                )
        if bad is None:
            nxt = _next_attempt(by_row[ev.outbox_id], t)
            if nxt is not None and nxt < t + delay - _EPS:
                bad = f"retried at t={nxt:.6f}, before the delay of {delay} from t={t:.6f} ran out"
        if bad is not None:
            out.fail(
                _Violation(
                    f"attempt {ev.attempt}: {bad}",
                    ev.tenant_id,
                    None,
                    ev.outbox_id,
                    {"retry_scheduled": t},
                    (ev.outbox_id,),
                )
            )
    for outbox_id, items in by_row.items():
        attempts = [ev for _, ev in items if isinstance(ev, Attempted)]
        if not attempts:
            continue
        out.checked += 1
        limit = policy_of(attempts[0].tenant_id).max_retries + 1
        if len(attempts) > limit:
            out.fail(
                _Violation(
                    f"{len(attempts)} attempts, more than max_retries + 1 = {limit}",
                    attempts[0].tenant_id,
                    None,
                    outbox_id,
                    needles=(outbox_id,),
                )
            )
    return out


def _next_attempt(items: Sequence[tuple[float, Any]], after: float) -> float | None:
    seen = False
    for t, ev in items:
        if t < after:
            continue
        if isinstance(ev, Retrying) and t == after and not seen:
            seen = True
            continue
        if isinstance(ev, Attempted) and seen:
            return float(t - ev.duration)
    return None


# --- breaker thresholds ----------------------------------------------------------------------


@dataclass(slots=True)
class _Model:
    """The breaker as DESIGN.md states it, written independently of `reliability.breaker`."""

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
    opens_at_threshold: int = 0
    expired: int = 0
    probes_granted: int = 0

    def move(self, new: State, at: float) -> None:
        self.transitions.append((self.state, new, at))
        self.state = new
        self.generation += 1
        self.in_flight = 0

    def tick(self, t: float) -> None:
        if self.state is State.OPEN and t >= self.opened_at + self.recovery:
            self.move(State.HALF_OPEN, self.opened_at + self.recovery)

    def acquire(self, t: float) -> tuple[bool, bool]:
        self.tick(t)
        if self.state is State.CLOSED:
            return True, False
        if self.state is State.HALF_OPEN and self.in_flight < self.probes:
            self.in_flight += 1
            self.probes_granted += 1
            return True, True
        return False, False

    def record(self, t: float, op: BreakerOp) -> None:
        if op.generation != self.generation:
            return
        if op.success:
            if op.probe:
                self.in_flight -= 1
                if self.state is State.HALF_OPEN:
                    self.failures.clear()
                    self.move(State.CLOSED, t)
            return
        if op.probe:
            self.in_flight -= 1
            if self.state is State.HALF_OPEN:
                self.open(t)
            return
        if self.state is not State.CLOSED:
            return
        kept = [f for f in self.failures if t - f < self.window]
        self.expired += len(self.failures) - len(kept)
        self.failures = [*kept, t]
        if len(self.failures) >= self.threshold:
            if len(self.failures) == self.threshold:
                self.opens_at_threshold += 1
            self.open(t)

    def open(self, t: float) -> None:
        self.opened_at = t
        self.failures.clear()
        self.move(State.OPEN, t)


def _breakers(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    r = run.records
    out = _Outcome()
    models: dict[tuple[int, str], _Model] = {}
    for op in r.breaker_ops:
        key = (op.instance, op.tenant)
        model = models.get(key)
        if model is None:
            p = r.settings.tenant(op.tenant).breaker
            model = models[key] = _Model(p.threshold, p.window, p.recovery, p.probes)
        out.checked += 1
        if op.op in ("acquire", "refused"):
            granted, probe = model.acquire(op.t)
            actual = op.op == "acquire"
            if granted != actual or (actual and probe != op.probe):
                want = ("probe" if probe else "call") if granted else "refusal"
                got = ("probe" if op.probe else "call") if actual else "refusal"
                out.fail(
                    _Violation(
                        f"breaker in {model.state} with {len(model.failures)} failures in the "
                        f"window (threshold {model.threshold}) should give a {want}, gave a {got}",
                        op.tenant,
                        None,
                        f"dispatcher-{op.instance}",
                        {"at": op.t, "opened_at": model.opened_at},
                        (op.tenant, "cb-"),
                    )
                )
        elif op.op == "record":
            model.record(op.t, op)
        elif op.op == "release" and op.probe and op.generation == model.generation:
            model.in_flight -= 1
    seen: dict[tuple[int, str], list[tuple[State, State, float]]] = defaultdict(list)
    for _, instance, ev in r.events:
        if isinstance(ev, BreakerChanged):
            seen[(instance, ev.tenant_id)].append((ev.old, ev.new, r.seconds(ev.at)))
    for key in sorted(set(models) | set(seen)):
        expected = models[key].transitions if key in models else []
        observed = seen.get(key, [])
        out.checked += 1
        for i in range(max(len(expected), len(observed))):
            w = expected[i] if i < len(expected) else None
            g = observed[i] if i < len(observed) else None
            if w is not None and g is not None and w[:2] == g[:2] and abs(w[2] - g[2]) <= 1e-5:
                continue
            if w is not None and g is None and w[1] is State.HALF_OPEN:
                continue  # nobody asked the breaker after its recovery time: no event yet
            out.fail(
                _Violation(
                    f"breaker transition #{i + 1}: expected {_fmt(w)}, saw {_fmt(g)}",
                    key[1],
                    None,
                    f"dispatcher-{key[0]}",
                    {"expected_at": w[2] if w else -1.0, "seen_at": g[2] if g else -1.0},
                    (key[1], "breaker"),
                )
            )
            break
    opens = sum(m.opens_at_threshold for m in models.values())
    probes = sum(m.probes_granted for m in models.values())
    expired = sum(m.expired for m in models.values())
    out.notes.append(
        f"{opens} opened at exactly the threshold, {expired} failures aged out of the window, "
        f"{probes} probes, {len({k[1] for k in models})} tenants modelled independently"
    )
    return out


def _fmt(tr: tuple[State, State, float] | None) -> str:
    return "nothing" if tr is None else f"{tr[0]}->{tr[1]} at t={tr[2]:.6f}"


# --- quotas ----------------------------------------------------------------------------------


def _quotas(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    r = run.records
    out = _Outcome()
    global_max = r.settings.n8n_max_concurrency
    crash_times = sorted(at for at, _, _ in r.crashes)
    points: dict[str, list[tuple[float, int, int, int]]] = defaultdict(list)
    for e in r.journal:
        end = e.finished_t
        if end is None:
            later = [c for c in crash_times if c >= e.t]
            end = later[0] if later else r.end
        # At one instant: ends of earlier calls, then each call's start (and, if it took no
        # time, its own end right after it), in arrival order.
        points[e.tenant].append((e.t, 1, e.seq, 0))
        points[e.tenant].append((end, 0, e.seq, 0) if end > e.t else (end, 1, e.seq, 1))
    peaks: dict[str, int] = {}
    for tenant, pts in points.items():
        pts.sort()
        limit = min(r.settings.tenant(tenant).concurrency_limit, global_max)
        out.checked += 1
        if limit > global_max:
            out.fail(_Violation(f"limit {limit} above the global maximum {global_max}", tenant))
        level = peak = 0
        for t, kind, seq, closing in pts:
            level += 1 if kind and not closing else -1
            if level > peak:
                peak = level
                if peak > limit:
                    out.fail(
                        _Violation(
                            f"{peak} calls in flight at n8n, above the tenant's limit {limit}",
                            tenant,
                            None,
                            f"n8n call #{seq}",
                            {"at": t},
                            (tenant, "attempt"),
                        )
                    )
                    break
        peaks[tenant] = peak
    top = max(peaks.values(), default=0)
    out.notes.append(f"peak in flight per tenant {top}, global max {global_max}")
    return out


# --- DLQ TTL ---------------------------------------------------------------------------------


def _dlq_ttl(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    r = run.records
    out = _Outcome()
    for p in r.probes:
        out.checked += 1
        if p.phase == "before":
            if not (p.visible_get and p.visible_list):
                out.fail(
                    _Violation(
                        f"entry invisible 1 ms before its expires_at (get={p.visible_get}, "
                        f"list={p.visible_list})",
                        p.tenant,
                        None,
                        p.dlq_id,
                        {"probe": p.t, "expires_at": r.seconds(p.expires_at)},
                        (p.dlq_id,),
                    )
                )
        elif p.visible_get or p.visible_list:
            out.fail(
                _Violation(
                    f"entry still visible at its expires_at (get={p.visible_get}, "
                    f"list={p.visible_list})",
                    p.tenant,
                    None,
                    p.dlq_id,
                    {"probe": p.t, "expires_at": r.seconds(p.expires_at)},
                    (p.dlq_id,),
                )
            )
    purged: set[int] = set()
    lives = r.dlq_lives
    for t, now, count in r.purges:
        out.checked += 1
        now_s = r.seconds(now)
        expected = [
            i
            for i, life in enumerate(lives)
            if i not in purged
            and life.created <= t
            and life.expires <= now_s + _EPS
            and not (life.retried is not None and life.retried <= t)
        ]
        if len(expected) != count:
            first = lives[expected[0]].dlq_id if expected else None
            out.fail(
                _Violation(
                    f"purge at t={t:.3f} removed {count} entries, {len(expected)} had expired",
                    None,
                    None,
                    first,
                    {"purge": t},
                    ("dlq-purge",),
                )
            )
        purged.update(expected)
    redispatched: dict[str, float] = {}
    for t, _, ev in r.events:
        if isinstance(ev, _WORKED_ON):
            redispatched.setdefault(ev.outbox_id, t)
    rows = {row.id: row for row in r.retried_rows}
    back_in_dlq = {e.source_outbox_id: e for e in r.dlq_entries.values() if e.source_outbox_id}
    for retry in r.retries:
        if retry.new_outbox_id is None:
            continue
        out.checked += 1
        new = retry.new_outbox_id
        if new not in redispatched and not _crashed_after(r, retry.t):
            out.fail(
                _Violation(
                    "manual retry made an outbox row nobody attempted",
                    retry.tenant,
                    None,
                    new,
                    {"retry": retry.t},
                    (new,),
                )
            )
            continue
        row = rows.get(new)
        again = back_in_dlq.get(new)
        stored_count: int | None = None
        stored_key: str | None = None
        if row is not None:
            stored_count, stored_key = row.retry_count, row.idempotency_key
        elif again is not None:
            stored_count, stored_key = again.retry_count, again.idempotency_key
        if stored_count != retry.retry_count + 1 or stored_key != retry.idempotency_key:
            out.fail(
                _Violation(
                    f"manual retry recorded retry_count={stored_count} key={stored_key}, expected "
                    f"{retry.retry_count + 1} and {retry.idempotency_key}",
                    retry.tenant,
                    None,
                    new,
                    {"retry": retry.t},
                    (new,),
                )
            )
    out.notes.append(
        f"{len(r.probes)} visibility probes, {len(r.purges)} purges, "
        f"{len(r.retries)} manual retries"
    )
    return out


def _crashed_after(r: Any, t: float) -> bool:
    return any(at >= t for at, _, _ in r.crashes)


# --- outcome bounds --------------------------------------------------------------------------


def _outcome_bounds(run: SimRun, params: Mapping[str, Any]) -> _Outcome:
    f = run.figures
    out = _Outcome()
    enqueued = max(1.0, f["deliveries_enqueued"])
    checks: list[tuple[str, float, bool]] = []
    for bound, raw in params.items():
        value = float(raw)
        if bound == "min_delivered_ratio":
            actual = f["delivered"] / enqueued
            checks.append((bound, actual, actual >= value))
        elif bound == "max_dead_lettered":
            checks.append((bound, f["dead_lettered"], f["dead_lettered"] <= value))
        elif bound == "max_dead_lettered_ratio":
            actual = f["dead_lettered"] / enqueued
            checks.append((bound, actual, actual <= value))
        elif bound == "all_delivered_within":
            actual = f["time_until_all_delivered"]
            checks.append((bound, actual, 0 <= actual <= value))
        elif bound == "max_duplicate_calls":
            checks.append((bound, f["n8n_duplicate_calls"], f["n8n_duplicate_calls"] <= value))
        elif bound == "min_events":
            checks.append((bound, f["events_generated"], f["events_generated"] >= value))
        elif bound == "min_tenants":
            checks.append((bound, f["tenants"], f["tenants"] >= value))
    for bound, actual, ok in checks:
        out.checked += 1
        if not ok:
            out.fail(_Violation(f"{bound}: bound {params[bound]}, actual {actual:g}"))
    out.notes.append(", ".join(f"{b}={a:g}" for b, a, _ in checks))
    return out


CHECKERS: Final[Mapping[str, Checker]] = {
    "nothing_lost": _nothing_lost,
    "no_double_processing": _no_double,
    "backoff_bounds": _backoff,
    "breaker_thresholds": _breakers,
    "quotas": _quotas,
    "dlq_ttl": _dlq_ttl,
    "outcome_bounds": _outcome_bounds,
}
"""Checkers over one run; `determinism` is checked by running twice (see `harness.chaos`)."""


def check_run(run: SimRun, names: Iterable[str] | None = None) -> list[InvariantResult]:
    """Check a run against the scenario's invariants (or `names`), in a fixed order."""
    wanted = run.scenario.invariants if names is None else {n: {} for n in names}
    results = []
    for name, checker in CHECKERS.items():
        if name not in wanted:
            continue
        outcome = checker(run, wanted[name])
        results.append(_result(run, name, outcome))
    return results


def _result(run: SimRun, name: str, outcome: _Outcome) -> InvariantResult:
    notes = "; ".join(n for n in outcome.notes if n)
    if not outcome.violations:
        details = f"held over {outcome.checked} checks" + (f" ({notes})" if notes else "")
        return InvariantResult(name, True, outcome.checked, details)
    v = outcome.violations[0]
    needles = v.needles or tuple(x for x in (v.tenant,) if x)
    story = tuple(run.trace.grep(*needles, limit=12)) if needles else ()
    example = Counterexample(
        invariant=name,
        message=v.message,
        tenant=v.tenant,
        event_id=v.event_id,
        ref=v.ref,
        times=dict(v.times),
        story=story,
        command=reproduce_command(run),
    )
    details = (
        f"BROKEN: {len(outcome.violations)} violation(s) in {outcome.checked} checks; "
        f"first: {v.message}"
    )
    return InvariantResult(name, False, outcome.checked, details, example)
