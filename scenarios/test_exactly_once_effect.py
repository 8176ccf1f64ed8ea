"""exactly_once_effect: with the sample workflows' Remove Duplicates node, every delivery takes
effect at n8n once, however often the dispatcher sent it; without the node (or with a layer
that defeats it) the duplicates take effect again, and the checker says so."""

from __future__ import annotations

import json
from typing import Any

import httpx

from harness.chaos.invariants import check_run
from harness.chaos.results import run_scenario
from harness.sim import Hooks, simulate
from harness.sim.scenario import find_scenario
from harness.sim.workflows import effects
from reliability.dispatch import Dispatcher
from scenarios.conftest import make

# n8n slower than the dispatcher's 3 s deadline on about half of the calls: the calls cut off
# ran the workflow all the same, and their retries carry the same key.
_SLOW = {"faults": {"rules": [{"latency": {"uniform": {"min": 0.5, "max": 6.0}}}]}}
_SETTINGS = {"N8N_CONNECT_TIMEOUT_MS": 1000, "N8N_READ_TIMEOUT_MS": 2000, "N8N_MAX_RETRIES": 8}


def _scenario(dedupe: bool) -> Any:
    return make(
        settings=_SETTINGS,
        traffic={"events": 40, "duration": 300},
        n8n={**_SLOW, "dedupe": dedupe},
        crashes=[{"at": 150, "restart": 170}],
        invariants={"only": ["exactly_once_effect"]},
    )


class _FreshBodyKey(httpx.AsyncBaseTransport):
    """A layer bug: each call's body carries a new `idempotency_key` (the header keeps the
    delivery's), so n8n's Remove Duplicates node never sees a key twice."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._calls += 1
        body = json.loads(request.content)
        body["idempotency_key"] = f"{body['idempotency_key']}#{self._calls}"
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        rebuilt = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=json.dumps(body).encode(),
            extensions=request.extensions,
        )
        return await self._inner.handle_async_request(rebuilt)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _fresh_body_keys(*args: Any, **kwargs: Any) -> Dispatcher:
    return Dispatcher(*args, **{**kwargs, "transport": _FreshBodyKey(kwargs["transport"])})


def test_with_the_node_every_duplicate_sent_takes_no_effect() -> None:
    run = simulate(_scenario(dedupe=True))
    journal = run.records.journal
    assert run.figures["n8n_duplicate_calls"] > 5  # the dispatcher did send duplicates
    assert sum(e.dropped for e in journal) > 5  # ... and n8n's node dropped them
    assert all(e.ran for e in journal if e.dropped)
    assert max(effects(journal).values()) == 1
    assert run.figures["n8n_duplicate_effects"] == 0
    (result,) = check_run(run)
    assert result.passed, result.details
    assert "Remove Duplicates on" in result.details


def test_without_the_node_the_same_duplicates_take_effect_again() -> None:
    with_node = simulate(_scenario(dedupe=True))
    run = simulate(_scenario(dedupe=False))
    assert [e.idempotency_key for e in run.records.journal] == [
        e.idempotency_key for e in with_node.records.journal
    ]  # the same calls reach n8n
    assert not any(e.dropped for e in run.records.journal)
    assert run.figures["n8n_duplicate_effects"] > 5
    (result,) = check_run(run)
    assert not result.passed
    ce = result.counterexample
    assert ce is not None
    assert "took effect 2 times at n8n (no Remove Duplicates node" in ce.message
    assert ce.ref is not None
    assert any(ce.ref in line for line in ce.story)
    assert ce.times["first"] < ce.times["second"]


def test_a_layer_that_changes_the_body_key_on_retries_is_caught() -> None:
    run = simulate(_scenario(dedupe=True), hooks=Hooks(dispatcher=_fresh_body_keys))
    assert not any(e.dropped for e in run.records.journal)  # the node is bypassed
    (result,) = check_run(run)
    assert not result.passed
    assert result.counterexample is not None
    assert "n8n.dedupe is false" not in result.counterexample.message


def test_the_catalogue_scenario_shows_both_variants() -> None:
    outcome = run_scenario(find_scenario("duplicate-effects"))
    assert outcome.passed, [i.details for i in outcome.invariants if not i.passed]
    assert [r.label for r in outcome.runs] == ["dedupe", "no dedupe"]
    by_name = {i.name: i for i in outcome.invariants}
    assert by_name["exactly_once_effect"].passed
    assert by_name["exactly_once_effect_without_dedupe"].passed  # broken there, as expected
    assert "BROKEN" in by_name["exactly_once_effect_without_dedupe"].details
    assert by_name["determinism"].passed
    comparison = outcome.comparison
    assert comparison is not None
    assert comparison["kind"] == "dedupe"
    rows = {
        row[0]: dict(zip(comparison["columns"], row, strict=True)) for row in comparison["rows"]
    }
    with_node = rows["with Remove Duplicates"]
    without = rows["without Remove Duplicates"]
    assert with_node["duplicates_sent"] == without["duplicates_sent"] > 0
    assert with_node["duplicate_effects"] == 0
    assert without["duplicate_effects"] > 0
    again = run_scenario(find_scenario("duplicate-effects"), determinism=False)
    assert again.trace_hash == outcome.trace_hash


def test_a_dedupe_comparison_without_duplicates_shows_nothing_and_fails() -> None:
    # No slow n8n, no crash: nothing is sent twice, so the plain variant cannot break the
    # invariant, and the comparison says the scenario shows nothing about the node.
    scenario = make(
        traffic={"events": 20, "duration": 120},
        comparison={"kind": "dedupe"},
        invariants={"only": ["exactly_once_effect"]},
    )
    outcome = run_scenario(scenario)
    shown = {i.name: i for i in outcome.invariants}["exactly_once_effect_without_dedupe"]
    assert not shown.passed
    assert "but it held" in shown.details
    assert not outcome.passed
