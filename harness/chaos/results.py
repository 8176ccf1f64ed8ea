"""Run a scenario to a verdict, and write verdicts as JSON and JUnit XML.

`run_scenario` simulates a scenario (every variant of a herd comparison), checks its
invariants, reruns it for the determinism check, and builds the comparison table. `write_json`
and `write_junit` (through the report's JUnit renderer) write what the CI gate and the report
read; the JSON shape is documented in `docs/results-schema.md`. Everything but `generated_at`,
`environment` and `wall_seconds` is byte-identical for the same seed.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from harness.chaos.dedupe import VARIANT_FIGURES, dedupe_comparison
from harness.chaos.invariants import check_run, reproduce_command
from harness.chaos.occ_study import occ_comparison
from harness.chaos.variants import iter_variants
from harness.outputs import write_text_atomic
from harness.report.junit import render_junit
from harness.report.model import ChaosResults, Report
from harness.report.reading import results_from
from harness.sim import Hooks, Progress, SimRun, simulate
from harness.sim.occ import occ_point, occ_table
from harness.sim.scenario import Scenario
from harness.verdict import InvariantResult
from reliability.backoff import Strategy
from reliability.redact import Redactor

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "ScenarioOutcome",
    "budget_words",
    "render_counterexample",
    "results_document",
    "run_scenario",
    "write_json",
    "write_junit",
]

SCHEMA: Final = "reliability-harness/chaos-results"
SCHEMA_VERSION: Final = 2
"""2 since issue 19: `null` for "no --seed" and "never", `step06_*` figures, the herd's
`check_held`; the report still reads 1."""
_MAX_ARRIVALS: Final = 1000
_HERD_COLUMNS: Final = (
    "strategy",
    "budget",
    "peak_arrivals_per_s",
    "peak_retries_per_s",
    "n8n_calls",
    "time_until_all_delivered",
    "delivered",
    "dead_lettered",
    "retries",
)

_HERD_FIGURES: Final = (
    "peak_arrivals_per_s",
    "peak_retries_per_s",
    "n8n_calls",
    "time_until_all_delivered",
    "dead_lettered",
)
"""The figures each herd variant reports under its label."""


@dataclass(frozen=True, slots=True)
class ModelRun:
    """What a model scenario measured, in place of the simulator's runs."""

    trace_hash: str
    simulated_seconds: float
    figures: Mapping[str, float | None]


@dataclass(slots=True)
class ScenarioOutcome:
    """One scenario's verdict and numbers (every variant included)."""

    scenario: Scenario
    seed: int
    command: str
    store: str
    runs: list[SimRun]
    invariants: list[InvariantResult]
    comparison: dict[str, Any] | None = None
    wall_seconds: float = 0.0
    extra_notes: list[str] = field(default_factory=list)
    model: ModelRun | None = None
    """A scenario that runs a model instead of the service (aws-occ): its own numbers."""

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.invariants)

    @property
    def trace_hash(self) -> str:
        if self.model is not None:
            return self.model.trace_hash
        if len(self.runs) == 1:
            return self.runs[0].trace_hash
        h = hashlib.sha256()
        for r in self.runs:
            h.update(f"{r.label}:{r.trace_hash}\n".encode())
        return h.hexdigest()

    @property
    def simulated_seconds(self) -> float:
        if self.model is not None:
            return self.model.simulated_seconds
        return sum(r.simulated_seconds for r in self.runs)

    @property
    def figures(self) -> dict[str, float | None]:
        if self.model is not None:
            return dict(self.model.figures)
        if len(self.runs) == 1:
            return dict(self.runs[0].figures)
        out: dict[str, float | None] = {}
        c = self.scenario.comparison
        if c is not None and c.kind == "dedupe":  # figure by figure: the variants side by side
            for k in VARIANT_FIGURES:
                for r in self.runs:
                    out[f"{r.label}.{k}"] = r.figures[k]
        else:
            for r in self.runs:
                for k in _HERD_FIGURES:
                    out[f"{r.label}.{k}"] = r.figures[k]
        first = self.runs[0].figures
        for k in ("tenants", "events_generated", "events_accepted"):
            out[k] = first[k]
        return out

    def series(self) -> dict[str, list[dict[str, Any]]]:
        if self.model is not None:
            return {}
        if len(self.runs) == 1:
            return self.runs[0].series
        merged: dict[str, list[dict[str, Any]]] = {
            "retry_delays": [],
            "breaker_timeline": [],
            "dlq_depth": [],
            "dlq_purges": [],
            "arrivals": [],
            "table_rows": [],
        }
        for r in self.runs:
            for key, rows in r.series.items():
                limit = _MAX_ARRIVALS if key == "arrivals" else 400
                merged[key].extend({**row, "variant": r.label} for row in rows[:limit])
        return merged

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "name": s.name,
            "file": s.file,
            "description": " ".join(s.description.split()),
            "seed": self.seed,
            "command": self.command,
            "store": self.store,
            "simulated_seconds": round(self.simulated_seconds, 6),
            "wall_seconds": round(self.wall_seconds, 3),
            "trace_hash": self.trace_hash,
            "passed": self.passed,
            "invariants": [i.to_json() for i in self.invariants],
            "figures": self.figures,
            "series": self.series(),
            "comparison": self.comparison,
        }


def _store_label(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    return "embedded"


def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    store_url: str | None = None,
    hooks: Hooks | None = None,
    progress: Callable[[str], Progress | None] | None = None,
    determinism: bool | None = None,
) -> ScenarioOutcome:
    """Simulate `scenario` (all variants), check its invariants, compare, verdict."""
    run_seed = scenario.seed if seed is None else seed
    if scenario.comparison is not None and scenario.comparison.kind == "aws-occ":
        return _run_occ(scenario, run_seed)
    url = store_url or scenario.store_url
    hooks = hooks if hooks is not None else Hooks()
    runs: list[SimRun] = []
    for label, variant, settings in iter_variants(scenario):
        bar = progress(label) if progress is not None else None
        runs.append(
            simulate(
                variant,
                seed=run_seed,
                store_url=url,
                settings=settings,
                label=label,
                hooks=hooks,
                progress=bar,
            )
        )
    invariants = _merge([check_run(r) for r in runs], [r.label for r in runs])
    check_det = "determinism" in scenario.invariants if determinism is None else determinism
    if check_det:
        first = runs[0]
        again = simulate(
            first.scenario,
            seed=run_seed,
            store_url=url,
            settings=first.records.settings,
            label=first.label,
            hooks=hooks,
            keep_trace=False,
        )
        same = again.trace_hash == first.trace_hash
        details = (
            f"two runs with seed {run_seed}: {first.trace_hash[:16]} "
            f"{'==' if same else '!='} {again.trace_hash[:16]} "
            f"({first.trace.count} trace lines)"
        )
        invariants.append(InvariantResult("determinism", same, 2, details))
    comparison: dict[str, Any] | None
    if scenario.comparison is not None and scenario.comparison.kind == "dedupe":
        comparison, shown = dedupe_comparison(runs)
        invariants.append(shown)
    else:
        comparison = _comparison(scenario, runs)
    if comparison is not None and comparison.get("kind") == "herd":
        verdict_ok = bool(comparison["check_held"])
        invariants.append(
            InvariantResult(
                "herd_ranking",
                verdict_ok,
                len(comparison["rows"]),
                str(comparison["verdict"]),
            )
        )
    command = reproduce_command(runs[0])
    return ScenarioOutcome(
        scenario=scenario,
        seed=run_seed,
        command=command,
        store=_store_label(url),
        runs=runs,
        invariants=invariants,
        comparison=comparison,
        wall_seconds=sum(r.wall_seconds for r in runs),
    )


def _run_occ(scenario: Scenario, seed: int) -> ScenarioOutcome:
    """The aws-occ scenario: the OCC model per strategy and client count, its verdict against
    the published shape, and a determinism check (the smallest point run twice)."""
    c = scenario.comparison
    assert c is not None
    started = time.perf_counter()
    points = occ_table(c.strategies, c.clients, c.runs, seed)
    comparison = occ_comparison(points, c.clients)
    rows_text = json.dumps(comparison["rows"], separators=(",", ":"))
    first = occ_point(c.strategies[0], min(c.clients), c.runs, seed)
    same = first == next(
        p for p in points if p.strategy == first.strategy and p.clients == first.clients
    )
    invariants = [
        InvariantResult(
            "occ_shape", bool(comparison["matches_study"]), len(points), comparison["verdict"]
        ),
        InvariantResult(
            "determinism",
            same,
            2,
            f"{first.strategy} at {first.clients} clients run twice with seed {seed}: "
            + ("the same calls and completion time" if same else "different numbers"),
        ),
    ]
    # The post's headline count when it was run, else the largest.
    shown = 100 if 100 in c.clients else max(c.clients)
    figures: dict[str, float | None] = {"runs_per_point": float(c.runs)}
    for p in points:
        if p.clients == shown:
            figures[f"{p.strategy}.calls_at_{shown}_clients"] = p.calls
            figures[f"{p.strategy}.time_to_finish_at_{shown}_clients"] = p.completion_s
    return ScenarioOutcome(
        scenario=scenario,
        seed=seed,
        command=f"reliability-harness chaos --scenario {scenario.name} --seed {seed}",
        store="none (a model of the published experiment)",
        runs=[],
        invariants=invariants,
        comparison=comparison,
        wall_seconds=time.perf_counter() - started,
        model=ModelRun(
            trace_hash=hashlib.sha256(rows_text.encode()).hexdigest(),
            simulated_seconds=sum(p.completion_s * p.runs for p in points),
            figures=figures,
        ),
    )


def _merge(
    results: Sequence[list[InvariantResult]], labels: Sequence[str]
) -> list[InvariantResult]:
    if len(results) == 1:
        return list(results[0])
    merged: list[InvariantResult] = []
    # By name: a variant may promise fewer invariants (the dedupe comparison's plain run).
    names = list(dict.fromkeys(r.name for rs in results for r in rs))
    for name in names:
        labelled = [
            (label, r)
            for label, rs in zip(labels, results, strict=True)
            for r in rs
            if r.name == name
        ]
        group = [r for _, r in labelled]
        first = group[0]
        broken = [(label, r) for label, r in labelled if not r.passed]
        checked = sum(r.checked for r in group)
        if broken:
            label, r = broken[0]
            merged.append(
                InvariantResult(
                    first.name,
                    False,
                    checked,
                    f"{label}: {r.details}",
                    r.counterexample,
                )
            )
        else:
            merged.append(
                InvariantResult(
                    first.name,
                    True,
                    checked,
                    f"held in all {len(group)} variants, {checked} checks"
                    if len(group) == len(results)
                    else "; ".join(f"{lb}: {r.details}" for lb, r in labelled),
                )
            )
    return merged


# --- comparisons -----------------------------------------------------------------------------


def _comparison(scenario: Scenario, runs: Sequence[SimRun]) -> dict[str, Any] | None:
    c = scenario.comparison
    if c is None:
        return None
    if c.kind == "replay":
        f = runs[0].figures
        columns = ["guard", "deliveries", "events", "replays_accepted", "legitimate_dropped"]
        table: list[list[Any]] = [
            [
                "Step 06: last_processed_event_id ledger only",
                f["stripe_requests"],
                f["events_generated"],
                f["step06_replays_accepted"],
                f["step06_legitimate_dropped"],
            ],
            [
                "fixed: processed-event set (tenant, event id) + 300 s tolerance",
                f["stripe_requests"],
                f["events_generated"],
                f["fixed_replays_accepted"],
                f["fixed_legitimate_dropped"],
            ],
        ]
        return {"kind": "replay", "columns": columns, "rows": table}
    rows: list[list[Any]] = []
    for r in runs:
        settings = r.records.settings
        f = r.figures
        rows.append(
            [
                settings.n8n_backoff_strategy.value,
                settings.n8n_retry_budget_enabled,
                f["peak_arrivals_per_s"],
                f["peak_retries_per_s"],
                f["n8n_calls"],
                f["time_until_all_delivered"],
                f["delivered"],
                f["dead_lettered"],
                f["retries"],
            ]
        )
    held, verdict = _herd_verdict(rows)
    return {
        "kind": "herd",
        "columns": list(_HERD_COLUMNS),
        "rows": rows,
        "check_held": held,
        "verdict": verdict + budget_words(rows),
    }


def budget_words(rows: Sequence[Sequence[Any]]) -> str:
    """What the retry budget changed, as averages per strategy with the budget on and off.

    Only what the rows hold: dead letters with the budget off (retries exhausted) show that not
    every dead letter with it on is the budget's doing, so none is attributed to it."""
    on = [r for r in rows if r[1] is True]
    off = [r for r in rows if r[1] is False]
    if not on or not off:
        return ""

    def mean(rs: Sequence[Sequence[Any]], i: int) -> float:
        return sum(float(r[i]) for r in rs) / len(rs)

    return (
        f". With the retry budget on (it refuses retries while a tenant's failure ratio is "
        f"high), calls average {mean(on, 4):,.0f} per strategy (budget off: {mean(off, 4):,.0f}) "
        f"and {mean(on, 7):,.0f} deliveries per strategy end in the DLQ for a manual retry "
        f"(budget off: {mean(off, 7):,.0f})"
    )


def _herd_verdict(rows: Sequence[list[Any]]) -> tuple[bool, str]:
    """What the herd measured, ranked by calls to n8n with the retry budget off, and its own
    check: no jitter is the worst on calls and on retry peak, and every real jitter (full, equal,
    decorrelated) makes fewer calls than no jitter. The AWS study appears only as context: its
    model differs (see scenario aws-occ, which reproduces it)."""
    plain = {r[0]: r for r in rows if r[1] is False}
    needed = {Strategy.NONE.value, Strategy.FULL.value, Strategy.DECORRELATED.value}
    if not needed <= plain.keys():
        return True, "not enough strategies without the retry budget to rank"
    calls = {k: float(v[4]) for k, v in plain.items()}
    peaks = {k: float(v[3]) for k, v in plain.items()}
    ranked = sorted(calls, key=lambda k: (calls[k], k))
    order = " < ".join(f"{k} {calls[k]:,.0f}" for k in ranked)
    none_worst = calls["none"] == max(calls.values()) and peaks["none"] == max(peaks.values())
    jitter = [k for k in ("full", "equal", "decorrelated") if k in calls]
    jitter_better = all(calls[k] < calls["none"] for k in jitter)
    held = none_worst and jitter_better
    check = (
        f"no jitter is the worst on calls and on retry peak ({peaks['none']:,.0f}/s in the "
        "busiest second)"
        if none_worst
        else "no jitter is NOT the worst on both calls and retry peak"
    )
    if not jitter_better:
        check += "; some real jitter makes as many calls as no jitter"
    context = (
        "For context: the AWS OCC model (clients contending on one item, reproduced in scenario "
        "aws-occ) ranks full jitter lowest on work, equal above it and decorrelated close to "
        "full; the herd is a different model (many tenants, a rate-limited n8n that recovers, "
        "breakers), and its order among the jitters differs"
        if ranked[0] != "full"
        else "For context: the AWS OCC model (reproduced in scenario aws-occ) also ranks full "
        "jitter lowest on work"
    )
    return held, (
        f"Calls to n8n with the retry budget off, fewest first: {order}; {check}. {context}"
    )


# --- writing ---------------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    try:
        version = metadata.version("reliability-harness")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "package_version": version,
    }


def results_document(
    scenarios: Sequence[ScenarioOutcome | Mapping[str, Any]],
    *,
    seed: int | None,
    command: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The JSON document (see docs/results-schema.md) from outcomes or their `to_json()`."""
    when = now if now is not None else datetime.now(UTC)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generated_at": when.isoformat(timespec="seconds"),
        "environment": _environment(),
        "seed": seed,
        "command": command,
        "scenarios": [
            s.to_json() if isinstance(s, ScenarioOutcome) else dict(s) for s in scenarios
        ],
    }


def write_json(path: str | Path, document: Mapping[str, Any]) -> None:
    """Write atomically (a temporary file, then a rename): never a half-written result."""
    redacted = Redactor().value(dict(document))
    write_text_atomic(path, json.dumps(redacted, indent=2, ensure_ascii=False) + "\n")


def write_junit(path: str | Path, document: Mapping[str, Any]) -> None:
    """The results document as JUnit XML, written atomically by the report's one JUnit writer
    (one testsuite per scenario, one testcase per invariant; a broken one is a <failure>)."""
    # Through JSON text: the reader validates exactly what results.json holds.
    parsed = json.loads(json.dumps(Redactor().value(dict(document))))
    results = results_from(parsed, Path(path).with_name("results.json"))
    if not isinstance(results, ChaosResults):
        raise TypeError("write_junit takes a chaos results document")
    report = Report(chaos=(results,), load=())
    write_text_atomic(path, render_junit(report, generated_at=str(document["generated_at"])))


def render_counterexample(example: Mapping[str, Any]) -> str:
    """A counterexample's JSON form as the readable block the command line prints."""
    lines = [f"  {example['invariant']}: {example['message']}"]
    if example.get("tenant") or example.get("event_id") or example.get("ref"):
        lines.append(
            f"    tenant={example.get('tenant')} event={example.get('event_id')} "
            f"ref={example.get('ref')}"
        )
    times = example.get("times") or {}
    if times:
        lines.append("    times: " + ", ".join(f"{k}={float(v):.6f}" for k, v in times.items()))
    lines += [f"    | {line}" for line in example.get("story", [])]
    lines.append(f"    reproduce: {example.get('command', '')}")
    return "\n".join(lines)
