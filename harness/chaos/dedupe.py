"""The dedupe comparison: one scenario run with the workflows' Remove Duplicates nodes and
without them, side by side: duplicates sent against duplicate effects.

The dispatcher sends some deliveries more than once (a call that timed out, a crash, a lost
lease); the same calls reach n8n in both variants. With the node, `exactly_once_effect` is
promised (checked as every invariant is); without it the comparison expects that invariant
broken, and checks that it is: a scenario whose duplicates never took effect twice without
dedupe would show nothing about the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from harness.chaos.invariants import check_run
from harness.chaos.variants import EFFECT_INVARIANT, WITHOUT_DEDUPE
from harness.sim import SimRun
from harness.verdict import InvariantResult

__all__ = ["COLUMNS", "VARIANT_FIGURES", "dedupe_comparison"]

VARIANT_FIGURES: Final = (
    "n8n_duplicate_calls",
    "n8n_duplicate_effects",
    "n8n_calls",
    "delivered",
    "dead_lettered",
)
"""The figures each variant reports under its label (`dedupe.n8n_duplicate_effects`), the
variants side by side, duplicates sent and their effects first (the summary shows the first)."""
COLUMNS: Final = ("workflows", "duplicates_sent", "duplicate_effects", "n8n_calls", "delivered")
_NAME: Final = f"{EFFECT_INVARIANT}_without_dedupe"


def dedupe_comparison(runs: Sequence[SimRun]) -> tuple[dict[str, Any], InvariantResult]:
    """The comparison table (one row per variant) and the check that, without the node, the
    duplicates took effect (`exactly_once_effect` broken, as expected)."""
    rows: list[list[Any]] = []
    for r in runs:
        f = r.figures
        label = "with Remove Duplicates" if r.scenario.n8n_dedupe else "without Remove Duplicates"
        rows.append(
            [
                label,
                f["n8n_duplicate_calls"],
                f["n8n_duplicate_effects"],
                f["n8n_calls"],
                f["delivered"],
            ]
        )
    plain = next(r for r in runs if r.label == WITHOUT_DEDUPE)
    shown = check_run(plain, [EFFECT_INVARIANT])[0]
    held = not shown.passed
    with_node, without = rows[0], rows[1]
    verdict = (
        f"Duplicates sent to n8n: {with_node[1]:g} with Remove Duplicates, {without[1]:g} "
        f"without; duplicate effects: {with_node[2]:g} with it, {without[2]:g} without"
    )
    details = (
        f"expected broken without Remove Duplicates, and broken: {shown.details}"
        if held
        else f"expected broken without Remove Duplicates, but it held: {shown.details}; "
        "no duplicate took effect twice, so the scenario shows nothing about the node"
    )
    table = {"kind": "dedupe", "columns": list(COLUMNS), "rows": rows, "verdict": verdict}
    return table, InvariantResult(_NAME, held, shown.checked, details)
