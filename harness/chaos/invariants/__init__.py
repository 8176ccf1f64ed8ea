"""The invariant checkers: one module per invariant of the design, over a run's records.

Each checker reads the `Records` of a `SimRun` (what the fake Stripe got back, the dispatcher's
events, every breaker call, the calls at the fake n8n, store snapshots, DLQ probes) and returns
its `Findings`; `check_run` turns them into `InvariantResult`s, each broken one with a small
counterexample (tenant, event, times, the trace lines that led there) and the command line that
reproduces it. `determinism` is checked by running a scenario twice (`harness.chaos.results`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from harness.chaos.invariants._base import Checker, Findings
from harness.chaos.invariants.backoff import check_backoff_bounds
from harness.chaos.invariants.bounds import check_outcome_bounds
from harness.chaos.invariants.breakers import check_breaker_thresholds
from harness.chaos.invariants.dlq_ttl import check_dlq_ttl
from harness.chaos.invariants.double import check_no_double_processing
from harness.chaos.invariants.effect import check_exactly_once_effect
from harness.chaos.invariants.lost import check_nothing_lost
from harness.chaos.invariants.quotas import check_quotas
from harness.sim import SimRun
from harness.sim.scenario import CATALOGUE, display_path
from harness.verdict import Counterexample, InvariantResult
from reliability.redact import redact

__all__ = [
    "CHECKERS",
    "Counterexample",
    "InvariantResult",
    "check_run",
    "reproduce_command",
]

CHECKERS: Final[Mapping[str, Checker]] = {
    "nothing_lost": check_nothing_lost,
    "no_double_processing": check_no_double_processing,
    "backoff_bounds": check_backoff_bounds,
    "breaker_thresholds": check_breaker_thresholds,
    "quotas": check_quotas,
    "dlq_ttl": check_dlq_ttl,
    "outcome_bounds": check_outcome_bounds,
    "exactly_once_effect": check_exactly_once_effect,
}
"""Checkers over one run, in the order results list them."""


def reproduce_command(run: SimRun) -> str:
    """The command line that replays this run exactly."""
    file = run.scenario.file
    builtin = display_path(CATALOGUE / Path(file).name) == file
    target = Path(file).stem if builtin else file
    cmd = f"reliability-harness chaos --scenario {target} --seed {run.seed}"
    if run.store_url.startswith(("postgresql://", "postgres://")):
        cmd += f" --database-url {redact(run.store_url)}"
    return cmd


def check_run(run: SimRun, names: Iterable[str] | None = None) -> list[InvariantResult]:
    """Check a run against the scenario's invariants (or `names`), in a fixed order."""
    wanted = run.scenario.invariants if names is None else {n: {} for n in names}
    return [
        _result(run, name, checker(run, wanted[name]))
        for name, checker in CHECKERS.items()
        if name in wanted
    ]


def _result(run: SimRun, name: str, findings: Findings) -> InvariantResult:
    notes = "; ".join(n for n in findings.notes if n)
    if not findings.violations:
        details = f"held over {findings.checked} checks" + (f" ({notes})" if notes else "")
        return InvariantResult(name, True, findings.checked, details)
    v = findings.violations[0]
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
        f"BROKEN: {len(findings.violations)} violation(s) in {findings.checked} checks; "
        f"first: {v.message}"
    )
    return InvariantResult(name, False, findings.checked, details, example)
