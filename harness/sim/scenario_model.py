"""The scenario format's data: what a chaos run simulates, as frozen dataclasses.

`harness.sim.scenario` loads them from YAML (through `harness.sim.scenario_parser`, with the
keys of `harness.sim.scenario_spec`); this module holds only the shapes and their constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from harness.data import data_path
from harness.errors import InputError
from harness.fakes.faults import FaultProfile
from reliability.backoff import Strategy
from reliability.config import Settings

__all__ = [
    "CATALOGUE",
    "CATALOGUE_SHOWN_AS",
    "DEFAULT_INVARIANTS",
    "EVENT_TYPES",
    "INVARIANTS",
    "INVARIANT_BOUNDS",
    "OUTCOME_BOUNDS",
    "Burst",
    "Comparison",
    "Crash",
    "Cron",
    "DlqPlan",
    "Scenario",
    "ScenarioError",
    "StripeFaults",
    "TenantGroup",
    "Traffic",
]

CATALOGUE: Final = data_path("catalogue")
"""The default catalogue (packaged): every `*.yaml` file here is one scenario."""

CATALOGUE_SHOWN_AS: Final = "scenarios/catalogue"
"""Where results and reports say a catalogue scenario lives: its folder in the repository."""

INVARIANTS: Final = (
    "nothing_lost",
    "no_double_processing",
    "backoff_bounds",
    "breaker_thresholds",
    "quotas",
    "dlq_ttl",
    "outcome_bounds",
    "exactly_once_effect",
    "determinism",
)
"""The checkers, one per promise of docs/design.md (`outcome_bounds` checks the scenario's own
bounds on figures; `exactly_once_effect` is n8n's side: at most one effect per idempotency key,
which needs the workflows' Remove Duplicates nodes (`n8n.dedupe`); `determinism` reruns the
scenario and compares trace hashes)."""

DEFAULT_INVARIANTS: Final = INVARIANTS[:-2]
"""Checked unless a scenario says otherwise (`exactly_once_effect` holds only with
`n8n.dedupe: true`, and `determinism` costs a second run: ask for them)."""
INVARIANT_BOUNDS: Final[Mapping[str, Mapping[str, str]]] = {
    "nothing_lost": {"checkpoints": "mid-run checkpoints at which nothing may be missing"},
    "backoff_bounds": {"tolerance": "seconds a retry may stray from its computed bounds"},
}
"""The bounds an invariant takes, with what each means (`outcome_bounds` has its own)."""
OUTCOME_BOUNDS: Final = frozenset(
    {
        "min_delivered_ratio",
        "max_dead_lettered",
        "max_dead_lettered_ratio",
        "all_delivered_within",
        "max_duplicate_calls",
        "min_events",
        "min_tenants",
    }
)
EVENT_TYPES: Final = (
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)


class ScenarioError(InputError):
    """A scenario that cannot be used; names the file and the key path."""


@dataclass(frozen=True, slots=True)
class TenantGroup:
    """`count` tenants configured alike; ids from `id` (a `{i}` template when count > 1)."""

    ids: tuple[str, ...]
    config: Mapping[str, Any]
    """The seed's tenant JSON minus `tenant_id` (concurrency_limit, retry_policy, ...)."""
    weight: float = 1.0
    """This group's share of the traffic, split evenly over its tenants."""


@dataclass(frozen=True, slots=True)
class Burst:
    """`events` extra events arriving within `spread` seconds from `at` (many clients at once)."""

    at: float
    events: int
    spread: float = 0.0


@dataclass(frozen=True, slots=True)
class Traffic:
    """Stripe events to send: how many, over how long, in what shape and mix."""

    events: int = 100
    duration: float = 3600.0
    start: float = 0.0
    shape: str = "uniform"
    """`uniform` (sorted uniform arrivals), `poisson` (exponential gaps) or `diurnal`."""
    mix: tuple[tuple[str, float], ...] = tuple((t, 1.0) for t in EVENT_TYPES)
    bursts: tuple[Burst, ...] = ()


@dataclass(frozen=True, slots=True)
class StripeFaults:
    """Delivery faults of the fake Stripe, as probabilities per event (0 = off)."""

    duplicates: float = 0.0
    """A second delivery of the same event later (re-signed, fresh `t`): must be deduped."""
    duplicate_delay: tuple[float, float] = (1.0, 600.0)
    out_of_order: float = 0.0
    """The delivery is held back by up to `out_of_order_delay`, so later events overtake it."""
    out_of_order_delay: tuple[float, float] = (1.0, 120.0)
    replays: float = 0.0
    """The captured request is replayed later with its old `t`: must be refused (stale)."""
    replay_delay: tuple[float, float] = (400.0, 3600.0)
    resigned_old: float = 0.0
    """The event is re-signed with a fresh `t` later: must be deduped."""
    resigned_delay: tuple[float, float] = (600.0, 86_400.0)
    bad_signatures: float = 0.0
    """An extra forged request (tampered, no v1, unparsable, missing): must be refused."""
    concurrent_duplicates: float = 0.0
    """A burst of `burst_copies` identical deliveries at the same instant: one processes."""
    burst_copies: int = 5
    retry_schedule: tuple[float, ...] = (60.0, 600.0, 3600.0, 10_800.0)
    """Stripe's retries (seconds) when our endpoint did not answer 2xx (it was down)."""


@dataclass(frozen=True, slots=True)
class Crash:
    """Kill the dispatcher at `at` (in-flight deliveries cancelled, leases left in the store),
    restart a fresh one at `restart` (fresh in-memory breakers and quotas)."""

    at: float
    restart: float
    instance: int = 1
    """Which service instance (1 .. `Scenario.instances`) is killed; the others run on."""


@dataclass(frozen=True, slots=True)
class Cron:
    """The external scheduler calling the drain endpoint."""

    interval: float = 60.0
    batch: int = 100
    budget: float = 10.0


@dataclass(frozen=True, slots=True)
class DlqPlan:
    """Manual DLQ retries and TTL probes."""

    retries: tuple[tuple[float, int], ...] = ()
    """(at, count): at `at`, retry the `count` oldest visible entries by hand."""
    probes: int = 50
    """How many dead letters get visibility probes just before and at their `expires_at`."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """Run variants of the scenario side by side (`herd`), two replay guards (`replay`), the
    AWS jitter study's OCC model at several client counts (`aws-occ`), or the workflows with
    and without their Remove Duplicates nodes (`dedupe`)."""

    kind: str
    strategies: tuple[Strategy, ...] = (
        Strategy.NONE,
        Strategy.ADDITIVE,
        Strategy.FULL,
        Strategy.EQUAL,
        Strategy.DECORRELATED,
    )
    budget: tuple[bool, ...] = (False, True)
    bucket: float = 1.0
    """Seconds per arrivals bucket at n8n (peak arrivals are per bucket, scaled to per second)."""
    clients: tuple[int, ...] = tuple(range(10, 200, 10))
    """aws-occ: the client counts (the post's simulator runs 10 to 190 in steps of 10)."""
    runs: int = 20
    """aws-occ: independent runs averaged per (strategy, clients) point."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One chaos scenario, validated."""

    name: str
    file: str
    description: str
    seed: int
    settings: Settings
    tenants: tuple[str, ...]
    weights: tuple[float, ...]
    traffic: Traffic
    n8n_faults: FaultProfile
    stripe: StripeFaults
    crashes: tuple[Crash, ...]
    cron: Cron
    dlq: DlqPlan
    store_url: str
    settle: float
    """Simulated seconds after the traffic ends in which drains go on (retries finish)."""
    invariants: Mapping[str, Mapping[str, Any]]
    comparison: Comparison | None = None
    settings_overrides: Mapping[str, str] = field(default_factory=dict)
    instances: int = 1
    """Service instances sharing the store, each with its own dispatcher (breakers, quotas,
    budget) and crashes; Stripe and cron reach them through a round-robin balancer."""
    n8n_dedupe: bool = False
    """Whether the sample workflows' Remove Duplicates nodes run (`n8n.dedupe`); off, they are
    disabled and every execution takes effect."""

    @property
    def end(self) -> float:
        """The last simulated second of the run."""
        return self.traffic.start + self.traffic.duration + self.settle
