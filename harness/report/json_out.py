"""`report.json`: the report's verdicts, findings and chart data, with its own schema version.

Documented in docs/report.md. Everything except the top-level `generated` object is a function
of the results' deterministic parts; keys are sorted so the bytes are too.
"""

from __future__ import annotations

import json
from typing import Any, Final

from harness.report import analysis as an
from harness.report.findings import findings
from harness.report.model import Invariant, LoadResults, Report, Scenario
from harness.report.options import BUILT_IN, ReportOptions

__all__ = ["REPORT_SCHEMA", "REPORT_SCHEMA_VERSION", "render_json", "report_dict"]

REPORT_SCHEMA: Final = "reliability-harness/report"
REPORT_SCHEMA_VERSION: Final = 2
"""2 since issue 19: findings carry `step06_design` (was `seed_design`), the report its `title`,
comparisons their `checks`."""


def _invariant(i: Invariant) -> dict[str, Any]:
    return {
        "name": i.name,
        "passed": i.passed,
        "checked": i.checked,
        "details": i.details,
        "counterexample": None if i.counterexample is None else dict(i.counterexample),
    }


def _scenario(s: Scenario) -> dict[str, Any]:
    return {
        "name": s.name,
        "file": s.file,
        "description": s.description,
        "seed": s.seed,
        "command": s.command,
        "store": s.store,
        "simulated_seconds": s.simulated_seconds,
        "trace_hash": s.trace_hash,
        "passed": s.passed,
        "invariants": [_invariant(i) for i in s.invariants],
        "figures": dict(s.figures),
        "retry_delays": [
            {
                "strategy": g.strategy,
                "count": g.count,
                "outside_bounds": g.outside,
                "attempts": [
                    {
                        "attempt": a.attempt,
                        "count": a.count,
                        "low": a.low,
                        "high": a.high,
                        "min": a.minimum,
                        "median": a.median,
                        "max": a.maximum,
                        "outside_bounds": a.outside,
                    }
                    for a in g.attempts
                ],
            }
            for g in an.delays_by_strategy(s.series.retry_delays)
        ],
        "breakers": [
            {
                "tenant": tenant,
                "segments": [{"from": a, "to": b, "state": st} for a, b, st in segs],
            }
            for tenant, segs in an.breaker_lanes(s.series.breaker_timeline, s.simulated_seconds)
        ],
        "dlq": {
            "depth": [{"t": p.t, "depth": p.value} for p in s.series.dlq_depth],
            "purges": [{"t": p.t, "count": p.value} for p in s.series.dlq_purges],
        },
        "arrivals": [
            {
                "line": g,
                "bucket_seconds": bucket,
                "peak_per_second": max((v for _, v in pts), default=0.0),
                "total": sum(v for _, v in pts) * bucket,
            }
            for g, bucket, pts in an.arrival_rates(s.series.arrivals)
        ],
        "comparison": None
        if s.comparison is None
        else {
            "kind": s.comparison.kind,
            "columns": list(s.comparison.columns),
            "rows": [list(r) for r in s.comparison.rows],
            "checks": [
                {"claim": c.claim, "held": c.held, "numbers": c.numbers}
                for c in s.comparison.checks
            ],
        },
    }


def _load(lr: LoadResults) -> dict[str, Any]:
    return {
        "command": lr.command,
        "passed": lr.passed,
        "config": dict(lr.config),
        "thresholds": dict(lr.thresholds),
        "stats": [
            {
                "name": st.name,
                "method": st.method,
                "requests": st.requests,
                "failures": st.failures,
                "rps": st.rps,
                "p50": st.p50,
                "p95": st.p95,
                "p99": st.p99,
                "max": st.max,
            }
            for st in lr.stats
        ],
        "threshold_results": [
            {"name": t.name, "limit": t.limit, "value": t.value, "passed": t.passed}
            for t in lr.threshold_results
        ],
        "invariants": [_invariant(i) for i in lr.invariants],
    }


def report_dict(
    report: Report, *, generated_at: str, generator: str, options: ReportOptions = BUILT_IN
) -> dict[str, Any]:
    """The report as plain JSON data (without the built-in findings under `--no-findings`)."""
    t = an.totals(report)
    return {
        "title": options.title,
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "passed": t.passed,
        "totals": {
            "scenarios": t.scenarios,
            "scenarios_passed": t.scenarios_passed,
            "invariants": t.invariants,
            "invariants_passed": t.invariants_passed,
            "load_runs": t.load_runs,
            "load_runs_passed": t.load_runs_passed,
        },
        "findings": [
            {
                "key": f.key,
                "title": f.title,
                "step06_design": f.step06_design,
                "fixed_design": f.fixed_design,
                "evidence": [{"what": w, "value": v} for w, v in f.evidence],
                "source": f.source,
                "measured": f.measured,
            }
            for f in (findings(report) if options.findings else [])
        ],
        "chaos": [
            {
                "seed": c.seed,
                "command": c.command,
                "scenarios": [_scenario(s) for s in c.scenarios],
            }
            for c in report.chaos
        ],
        "load": [_load(lr) for lr in report.load],
        "generated": {
            "generated_at": generated_at,
            "generator": generator,
            "inputs": [
                {
                    "path": str(r.path),
                    "generated_at": r.generated_at,
                    "environment": dict(r.environment),
                }
                for r in report.inputs
            ],
            "wall_seconds": [
                {"scenario": s.name, "wall_seconds": s.wall_seconds}
                for s in report.scenarios
                if s.wall_seconds is not None
            ],
        },
    }


def render_json(
    report: Report, *, generated_at: str, generator: str, options: ReportOptions = BUILT_IN
) -> str:
    """`report.json`'s text: sorted keys, two-space indent, trailing newline."""
    data = report_dict(report, generated_at=generated_at, generator=generator, options=options)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
