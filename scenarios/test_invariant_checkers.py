"""Every checker can fail: injected bugs are caught, with a counterexample and a command."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from harness.chaos.invariants import check_run
from harness.chaos.results import run_scenario
from harness.sim import Hooks, simulate
from reliability.config import Settings
from reliability.dispatch import Dispatcher
from reliability.store import Store
from scenarios.conftest import make


class _LosesRows:
    """A store that silently deletes every 10th new outbox row right after accepting it."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self._n = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def accept_event(self, tenant_id: str, event_id: str, deliveries: Any, **kw: Any) -> Any:
        result = await self._inner.accept_event(tenant_id, event_id, deliveries, **kw)
        self._n += 1
        if result.new and self._n % 10 == 0:
            db = self._inner._live()  # type: ignore[attr-defined]
            db.execute("DELETE FROM outbox WHERE id = ?", (result.outbox_ids[0],))
        return result


def test_nothing_lost_catches_a_dropped_row() -> None:
    clean = simulate(make())
    assert check_run(clean, ["nothing_lost"])[0].passed
    run = simulate(make(), hooks=Hooks(store=lambda s: _LosesRows(s)))
    (result,) = check_run(run, ["nothing_lost"])
    assert not result.passed
    ce = result.counterexample
    assert ce is not None
    assert ce.tenant is not None
    assert ce.event_id is not None
    assert "neither delivered, pending nor in the DLQ" in ce.message
    assert ce.command.startswith("reliability-harness chaos --scenario")
    assert "accepted" in ce.times


_SLOW_N8N = {"faults": {"rules": [{"latency": {"fixed": 5.0}}]}}


def test_quotas_catches_a_dispatcher_over_its_limit() -> None:
    scenario = make(
        tenants=[{"id": "t", "config": {"concurrency_limit": 2}}],
        traffic={"events": 200, "duration": 60},
        n8n=_SLOW_N8N,
    )
    assert check_run(simulate(scenario), ["quotas"])[0].passed

    def unlimited(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
        tenants = {t: replace(c, concurrency_limit=1000) for t, c in settings.tenants.items()}
        loose = replace(settings, n8n_max_concurrency=1000, tenants=tenants)
        return Dispatcher(loose, *args, **kwargs)

    run = simulate(scenario, hooks=Hooks(dispatcher=unlimited))
    (result,) = check_run(run, ["quotas"])
    assert not result.passed
    assert result.counterexample is not None
    assert "above the tenant's limit 2" in result.counterexample.message


def test_determinism_catches_an_unseeded_random_source() -> None:
    def unseeded(*args: Any, **kwargs: Any) -> Dispatcher:
        return Dispatcher(*args, **{**kwargs, "rng": random.Random()})

    scenario = make(
        settings={"N8N_BACKOFF_STRATEGY": "full"},
        n8n={"faults": {"rules": [{"status": {"500": 0.3}}]}},
    )
    assert run_scenario(scenario, determinism=True).passed
    outcome = run_scenario(scenario, determinism=True, hooks=Hooks(dispatcher=unseeded))
    det = [i for i in outcome.invariants if i.name == "determinism"]
    assert det
    assert not det[0].passed
    assert "!=" in det[0].details


def test_outcome_bounds_fail_when_a_bound_is_not_met() -> None:
    scenario = make(
        n8n={"faults": {"rules": [{"status": {"400": 0.5}}]}},
        invariants={"only": ["outcome_bounds"], "outcome_bounds": {"max_dead_lettered": 0}},
    )
    (result,) = check_run(simulate(scenario))
    assert not result.passed
    assert "max_dead_lettered" in result.details


def test_quotas_catches_a_dispatcher_ignoring_the_clamp() -> None:
    """The tenant's own limit is 5, clamped to N8N_MAX_CONCURRENCY = 2: a dispatcher that keeps
    5 is caught (the old checker compared the clamped limit with the clamp, which never fails)."""
    scenario = make(
        tenants=[{"id": "t", "config": {"concurrency_limit": 2}}],
        settings={"N8N_MAX_CONCURRENCY": "2", "N8N_DEFAULT_CONCURRENCY": "2"},
        traffic={"events": 200, "duration": 60},
        n8n=_SLOW_N8N,
    )
    assert check_run(simulate(scenario), ["quotas"])[0].passed

    def unclamped(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
        tenants = {t: replace(c, concurrency_limit=5) for t, c in settings.tenants.items()}
        return Dispatcher(
            replace(settings, n8n_max_concurrency=5, tenants=tenants), *args, **kwargs
        )

    (result,) = check_run(simulate(scenario, hooks=Hooks(dispatcher=unclamped)), ["quotas"])
    assert not result.passed
    assert result.counterexample is not None
    assert "above the tenant's limit 2" in result.counterexample.message


_FLAKY_N8N = {"faults": {"rules": [{"status": {"500": 0.4}}]}}


def test_backoff_bounds_catches_delays_from_other_rules() -> None:
    scenario = make(n8n=_FLAKY_N8N)
    assert check_run(simulate(scenario), ["backoff_bounds"])[0].passed

    def slower(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
        base, cap = settings.n8n_base_delay_ms, settings.n8n_max_delay_ms
        wrong = replace(settings, n8n_base_delay_ms=3 * base, n8n_max_delay_ms=3 * cap)
        return Dispatcher(wrong, *args, **kwargs)

    (result,) = check_run(simulate(scenario, hooks=Hooks(dispatcher=slower)), ["backoff_bounds"])
    assert not result.passed
    assert result.counterexample is not None


def test_breaker_thresholds_catches_a_wrong_threshold() -> None:
    scenario = make(n8n={"faults": {"rules": [{"status": {"500": 0.8}}]}})
    assert check_run(simulate(scenario), ["breaker_thresholds"])[0].passed

    def eager(settings: Settings, *args: Any, **kwargs: Any) -> Dispatcher:
        threshold = max(1, settings.n8n_circuit_breaker_threshold - 1)
        tenants = {
            t: replace(c, circuit_breaker_threshold=None) for t, c in settings.tenants.items()
        }
        wrong = replace(settings, n8n_circuit_breaker_threshold=threshold, tenants=tenants)
        return Dispatcher(wrong, *args, **kwargs)

    run = simulate(scenario, hooks=Hooks(dispatcher=eager))
    (result,) = check_run(run, ["breaker_thresholds"])
    assert not result.passed


class _PurgesEarly:
    """A store whose DLQ purge also removes entries an hour before they expire."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def dlq_purge_expired(self, *, now: datetime) -> int:
        return await self._inner.dlq_purge_expired(now=now + timedelta(hours=1))


def test_dlq_ttl_catches_a_purge_of_unexpired_entries() -> None:
    scenario = make(
        settings={
            "N8N_MAX_RETRIES": "0",
            "N8N_DLQ_CLEANUP_INTERVAL_MS": "1000",
            "N8N_DLQ_TTL_HOURS": "0.01",
        },
        n8n={"faults": {"rules": [{"status": {"400": 0.5}}]}},
    )
    assert check_run(simulate(scenario), ["dlq_ttl"])[0].passed
    (result,) = check_run(simulate(scenario, hooks=Hooks(store=_PurgesEarly)), ["dlq_ttl"])
    assert not result.passed
    assert result.counterexample is not None
    # Caught by a probe (gone before its expires_at) or by the purge count, whichever is first.
    message = result.counterexample.message
    assert "before its expires_at" in message or "purge at" in message


class _ForgetsDeliveries:
    """A store that marks every 10th completed row undone again: a drain delivers it twice."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self._n = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def complete(self, outbox_id: str, lease_token: str, **kw: Any) -> bool:
        done = await self._inner.complete(outbox_id, lease_token, **kw)
        self._n += 1
        if done and self._n % 10 == 0:
            db = self._inner._live()  # type: ignore[attr-defined]
            db.execute("UPDATE outbox SET done_at = NULL WHERE id = ?", (outbox_id,))
        return done


def test_no_double_processing_catches_a_delivery_completed_twice() -> None:
    scenario = make()
    assert check_run(simulate(scenario), ["no_double_processing"])[0].passed
    run = simulate(scenario, hooks=Hooks(store=_ForgetsDeliveries))
    (result,) = check_run(run, ["no_double_processing"])
    assert not result.passed
    assert result.counterexample is not None
    assert "completed twice" in result.counterexample.message
