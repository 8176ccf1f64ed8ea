"""A scenario's variants: one run per backoff strategy and retry-budget setting in a herd
comparison, else the scenario itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from harness.sim.scenario import Scenario
from reliability.backoff import Strategy
from reliability.config import Settings

__all__ = ["herd_settings", "iter_variants"]


def herd_settings(base: Settings, strategy: Strategy, budget: bool) -> Settings:
    """The scenario's settings with one backoff strategy and the retry budget on or off."""
    return replace(base, n8n_backoff_strategy=strategy, n8n_retry_budget_enabled=budget)


def iter_variants(scenario: Scenario) -> Iterator[tuple[str, Settings]]:
    """The herd comparison's variants: every strategy, each with the budget off and on."""
    comparison = scenario.comparison
    if comparison is None or comparison.kind != "herd":
        yield scenario.name, scenario.settings
        return
    for strategy in comparison.strategies:
        for budget in comparison.budget:
            label = f"{strategy.value}{'+budget' if budget else ''}"
            yield label, herd_settings(scenario.settings, strategy, budget)
