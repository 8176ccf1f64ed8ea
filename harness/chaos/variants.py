"""A scenario's variants: one run per backoff strategy and retry-budget setting in a herd
comparison, the workflows with and without their Remove Duplicates nodes in a dedupe
comparison, else the scenario itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Final

from harness.sim.scenario import Scenario
from reliability.backoff import Strategy
from reliability.config import Settings

__all__ = ["EFFECT_INVARIANT", "WITHOUT_DEDUPE", "WITH_DEDUPE", "herd_settings", "iter_variants"]

WITH_DEDUPE: Final = "dedupe"
WITHOUT_DEDUPE: Final = "no dedupe"
EFFECT_INVARIANT: Final = "exactly_once_effect"


def herd_settings(base: Settings, strategy: Strategy, budget: bool) -> Settings:
    """The scenario's settings with one backoff strategy and the retry budget on or off."""
    return replace(base, n8n_backoff_strategy=strategy, n8n_retry_budget_enabled=budget)


def iter_variants(scenario: Scenario) -> Iterator[tuple[str, Scenario, Settings]]:
    """(label, scenario, settings) per variant: the herd comparison's strategies, each with the
    budget off and on; the dedupe comparison's workflows with their Remove Duplicates nodes
    and without (where `exactly_once_effect` is not promised: the comparison expects it
    broken there, see `harness.chaos.dedupe`)."""
    comparison = scenario.comparison
    if comparison is not None and comparison.kind == "dedupe":
        yield WITH_DEDUPE, replace(scenario, n8n_dedupe=True), scenario.settings
        promised = {k: v for k, v in scenario.invariants.items() if k != EFFECT_INVARIANT}
        plain = replace(scenario, n8n_dedupe=False, invariants=promised)
        yield WITHOUT_DEDUPE, plain, scenario.settings
        return
    if comparison is None or comparison.kind != "herd":
        yield scenario.name, scenario, scenario.settings
        return
    for strategy in comparison.strategies:
        for budget in comparison.budget:
            label = f"{strategy.value}{'+budget' if budget else ''}"
            yield label, scenario, herd_settings(scenario.settings, strategy, budget)
