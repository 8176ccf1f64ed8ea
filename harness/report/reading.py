"""Read and validate the results a report is built from (chaos and load results files).

The file is read by the harness's one input reader (`harness.inputs.read_json`); every problem
names the file and the key (`scenarios[2].invariants[0].passed`), so a truncated, hand-edited or
newer-version file is rejected before anything is rendered or written.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, cast

from harness.inputs import Reader, read_json
from harness.outputs import redacted
from harness.report.model import (
    CHAOS_SCHEMA,
    LOAD_SCHEMA,
    RESULTS_FILENAME,
    SUPPORTED_VERSIONS,
    BreakerPoint,
    Cell,
    ChaosResults,
    Check,
    Comparison,
    Invariant,
    JSONValue,
    LoadPoint,
    LoadResults,
    LoadStat,
    Report,
    ResultsError,
    RetryDelay,
    Scenario,
    Series,
    Threshold,
    TimePoint,
)

__all__ = ["load_report", "load_results", "resolve_results_path", "results_from"]


def _strategy(name: str) -> str:
    """A backoff strategy's current name: `seed` is what results before the rename called the
    additive strategy (in reports "seed" means only the random seed)."""
    return "additive" if name == "seed" else name


def _results_error(source: str, key: str, problem: str) -> ResultsError:
    where = "" if key in ("", "(file)") else f" key '{key}':"
    return ResultsError(f"{source}:{where} {problem}")


class _Reader(Reader):
    """Typed access to one results document; every error names the file and the key path."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), _results_error)
        self.path = path

    def obj(self, value: JSONValue, key: str) -> dict[str, JSONValue]:
        if not isinstance(value, dict):
            self.fail(key, f"expected an object, got {_kind(value)}")
        return value

    def arr(self, value: JSONValue, key: str) -> list[JSONValue]:
        if not isinstance(value, list):
            self.fail(key, f"expected an array, got {_kind(value)}")
        return value

    def get(self, o: dict[str, JSONValue], name: str, key: str) -> JSONValue:
        if name not in o:
            self.fail(_join(key, name), "missing")
        return o[name]

    def str_(self, o: dict[str, JSONValue], name: str, key: str, default: str | None = None) -> str:
        if default is not None and o.get(name) is None:
            return default
        v = self.get(o, name, key)
        if not isinstance(v, str):
            self.fail(_join(key, name), f"expected a string, got {_kind(v)}")
        return v

    def bool_(self, o: dict[str, JSONValue], name: str, key: str) -> bool:
        v = self.get(o, name, key)
        if not isinstance(v, bool):
            self.fail(_join(key, name), f"expected true or false, got {_kind(v)}")
        return v

    def int_(self, o: dict[str, JSONValue], name: str, key: str, default: int | None = None) -> int:
        if default is not None and o.get(name) is None:
            return default
        v = self.get(o, name, key)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(_join(key, name), f"expected an integer, got {_kind(v)}")
        return v

    def num(
        self, o: dict[str, JSONValue], name: str, key: str, default: float | None = None
    ) -> float:
        if default is not None and o.get(name) is None:
            return default
        v = self.get(o, name, key)
        return self.finite(v, _join(key, name))

    def opt_num(self, o: dict[str, JSONValue], name: str, key: str) -> float | None:
        """A number that may be null (a statistic without data)."""
        if o.get(name) is None:
            self.get(o, name, key)
            return None
        return self.num(o, name, key)

    def command(self, o: dict[str, JSONValue], key: str) -> str:
        """A command line recorded as a string or as an argv array."""
        v = o.get("command")
        if v is None:
            return ""
        if isinstance(v, str):
            return v
        k = _join(key, "command")
        parts = self.arr(v, k)
        if not all(isinstance(p, str) for p in parts):
            self.fail(k, "expected a string or an array of strings")
        return shlex.join(str(p) for p in parts)

    def finite(self, v: JSONValue, key: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.fail(key, f"expected a number, got {_kind(v)}")
        f = float(v)
        if not math.isfinite(f):
            self.fail(key, f"expected a finite number, got {v!r}")
        return f

    def objects(self, o: dict[str, JSONValue], name: str, key: str) -> list[dict[str, JSONValue]]:
        """An optional array of objects (missing or null -> empty)."""
        v = o.get(name)
        if v is None:
            return []
        k = _join(key, name)
        return [self.obj(e, f"{k}[{i}]") for i, e in enumerate(self.arr(v, k))]

    def text_map(self, o: dict[str, JSONValue], name: str, key: str) -> dict[str, str]:
        v = o.get(name)
        if v is None:
            return {}
        k = _join(key, name)
        m = self.obj(v, k)
        return {
            str(n): x if isinstance(x, str) else json.dumps(x, sort_keys=True) for n, x in m.items()
        }


def _kind(v: JSONValue) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def resolve_results_path(path: Path) -> Path:
    """A results file, or `DIR/results.json` when given a directory."""
    if path.is_dir():
        candidate = path / RESULTS_FILENAME
        if not candidate.is_file():
            raise ResultsError(f"{path}: a directory without {RESULTS_FILENAME}")
        return candidate
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    return path


def load_results(path: Path) -> ChaosResults | LoadResults:
    """Read and validate one results file (or directory holding `results.json`)."""
    file = resolve_results_path(path)
    # Results written before redaction existed may hold a secret: no report repeats it.
    return results_from(redacted(read_json(file, str(file), _results_error)), file)


def results_from(doc: object, path: Path) -> ChaosResults | LoadResults:
    """Validate an already parsed results document; errors name `path`."""
    r = _Reader(path)
    top = r.obj(cast(JSONValue, doc), "")
    schema = top.get("schema")
    if schema not in (CHAOS_SCHEMA, LOAD_SCHEMA):
        r.fail("schema", f"expected {CHAOS_SCHEMA!r} or {LOAD_SCHEMA!r}, got {_kind(schema)}")
    version = top.get("schema_version")
    readable = SUPPORTED_VERSIONS[str(schema)]
    if isinstance(version, bool) or version not in readable:
        versions = " and ".join(str(v) for v in readable)
        r.fail(
            "schema_version",
            f"this report reads version {versions} of {schema}, got {_kind(version)}; "
            "regenerate the results with this version of reliability-harness",
        )
    if schema == CHAOS_SCHEMA:
        return _chaos(r, top)
    return _load(r, top)


def load_report(paths: Sequence[Path]) -> Report:
    """Read every input; chaos and load results may come in any order."""
    if not paths:
        raise ResultsError("no results given")
    chaos: list[ChaosResults] = []
    load: list[LoadResults] = []
    for p in paths:
        res = load_results(p)
        if isinstance(res, ChaosResults):
            chaos.append(res)
        else:
            load.append(res)
    return Report(chaos=tuple(chaos), load=tuple(load))


def _invariant(r: _Reader, o: dict[str, JSONValue], key: str) -> Invariant:
    ce = o.get("counterexample")
    checked = o.get("checked")
    return Invariant(
        name=r.str_(o, "name", key),
        passed=r.bool_(o, "passed", key),
        details=r.str_(o, "details", key, default=""),
        checked=None if checked is None else r.int_(o, "checked", key),
        counterexample=None if ce is None else r.obj(ce, _join(key, "counterexample")),
    )


def _group_variant(r: _Reader, e: dict[str, JSONValue], ek: str) -> tuple[str, str]:
    """(line, variant) of a series row: from `strategy` and `budget`, or a `variant` label.

    A herd variant label is `<strategy>` or `<strategy>+budget`; the part after `+` becomes the
    variant ("budget on"), the part before the line.
    """
    group = _strategy(r.str_(e, "strategy", ek, default=""))
    variant = ""
    budget = e.get("budget")
    if budget is not None:
        if not isinstance(budget, bool):
            r.fail(_join(ek, "budget"), f"expected true or false, got {_kind(budget)}")
        variant = "budget on" if budget else "budget off"
    label = r.str_(e, "variant", ek, default="")
    if label:
        base, _, rest = label.partition("+")
        group = group or _strategy(base)
        if not variant:
            variant = f"{rest} on" if rest == "budget" else rest
    return group, variant


def _points(
    r: _Reader, o: dict[str, JSONValue], name: str, value: str, key: str
) -> tuple[TimePoint, ...]:
    k = _join(key, name)
    out: list[TimePoint] = []
    for i, e in enumerate(r.objects(o, name, key)):
        ek = f"{k}[{i}]"
        group, variant = _group_variant(r, e, ek)
        out.append(
            TimePoint(
                t=r.num(e, "t", ek),
                value=r.num(e, value, ek),
                group=group,
                variant=variant,
                bucket=None if e.get("bucket") is None else r.num(e, "bucket", ek),
            )
        )
    return tuple(out)


def _series(r: _Reader, v: JSONValue, key: str) -> Series:
    if v is None:
        return Series()
    o = r.obj(v, key)
    delays = tuple(
        RetryDelay(
            strategy=_strategy(r.str_(e, "strategy", f"{key}.retry_delays[{i}]")),
            attempt=r.int_(e, "attempt", f"{key}.retry_delays[{i}]"),
            delay=r.num(e, "delay", f"{key}.retry_delays[{i}]"),
            low=r.num(e, "low", f"{key}.retry_delays[{i}]"),
            high=r.num(e, "high", f"{key}.retry_delays[{i}]"),
        )
        for i, e in enumerate(r.objects(o, "retry_delays", key))
    )
    breaker = tuple(
        BreakerPoint(
            tenant=r.str_(e, "tenant", f"{key}.breaker_timeline[{i}]"),
            t=r.num(e, "t", f"{key}.breaker_timeline[{i}]"),
            state=r.str_(e, "state", f"{key}.breaker_timeline[{i}]").lower(),
            variant=r.str_(e, "variant", f"{key}.breaker_timeline[{i}]", default=""),
        )
        for i, e in enumerate(r.objects(o, "breaker_timeline", key))
    )
    return Series(
        retry_delays=delays,
        breaker_timeline=breaker,
        dlq_depth=_points(r, o, "dlq_depth", "depth", key),
        dlq_purges=_points(r, o, "dlq_purges", "count", key),
        arrivals=_points(r, o, "arrivals", "count", key),
    )


def _comparison(r: _Reader, v: JSONValue, key: str) -> Comparison | None:
    if v is None:
        return None
    o = r.obj(v, key)
    kind = r.str_(o, "kind", key)
    cols_key = _join(key, "columns")
    columns = tuple(
        c if isinstance(c, str) else _bad(r, f"{cols_key}[{i}]", "a string", c)
        for i, c in enumerate(r.arr(r.get(o, "columns", key), cols_key))
    )
    rows_key = _join(key, "rows")
    rows: list[tuple[Cell, ...]] = []
    for i, row in enumerate(r.arr(r.get(o, "rows", key), rows_key)):
        cells = r.arr(row, f"{rows_key}[{i}]")
        if len(cells) != len(columns):
            r.fail(f"{rows_key}[{i}]", f"has {len(cells)} cells for {len(columns)} columns")
        got = [_cell(r, c, f"{rows_key}[{i}][{j}]") for j, c in enumerate(cells)]
        rows.append(
            tuple(
                _strategy(c) if col == "strategy" and isinstance(c, str) else c
                for col, c in zip(columns, got, strict=True)
            )
        )
    matches = o.get("matches_study")
    if matches is not None and not isinstance(matches, bool):
        r.fail(_join(key, "matches_study"), f"expected true or false, got {_kind(matches)}")
    return Comparison(
        kind=kind,
        columns=columns,
        rows=tuple(rows),
        verdict=r.str_(o, "verdict", key, default=""),
        matches_study=matches,
        checks=_checks(r, o, key),
    )


def _checks(r: _Reader, o: dict[str, JSONValue], key: str) -> tuple[Check, ...]:
    """The optional `checks` list: `{"claim": str, "held": bool, "numbers": str}` each."""
    checks_key = _join(key, "checks")
    out: list[Check] = []
    for i, c in enumerate(r.objects(o, "checks", key)):
        at = f"{checks_key}[{i}]"
        held = c.get("held")
        if not isinstance(held, bool):
            r.fail(_join(at, "held"), f"expected true or false, got {_kind(held)}")
        out.append(Check(r.str_(c, "claim", at), held, r.str_(c, "numbers", at, default="")))
    return tuple(out)


def _bad(r: _Reader, key: str, expected: str, v: JSONValue) -> NoReturn:
    r.fail(key, f"expected {expected}, got {_kind(v)}")


def _cell(r: _Reader, v: JSONValue, key: str) -> Cell:
    if isinstance(v, float):
        return r.finite(v, key)
    if v is not None and not isinstance(v, str | bool | int):
        r.fail(key, f"expected a string, number, boolean or null, got {_kind(v)}")
    return v


def _figures(r: _Reader, o: dict[str, JSONValue], key: str) -> dict[str, float | None]:
    v = o.get("figures")
    if v is None:
        return {}
    k = _join(key, "figures")
    return {
        name: None if x is None else r.finite(x, f"{k}.{name}") for name, x in r.obj(v, k).items()
    }


def _chaos(r: _Reader, top: dict[str, JSONValue]) -> ChaosResults:
    seed = None if top.get("seed") is None else r.int_(top, "seed", "")
    r.arr(r.get(top, "scenarios", ""), "scenarios")
    scenarios: list[Scenario] = []
    for i, s in enumerate(r.objects(top, "scenarios", "")):
        k = f"scenarios[{i}]"
        wall = s.get("wall_seconds")
        scenarios.append(
            Scenario(
                name=r.str_(s, "name", k),
                passed=r.bool_(s, "passed", k),
                invariants=tuple(
                    _invariant(r, inv, f"{k}.invariants[{j}]")
                    for j, inv in enumerate(r.objects(s, "invariants", k))
                ),
                seed=r.int_(s, "seed", k, default=seed),
                command=r.command(s, k),
                file=r.str_(s, "file", k, default=""),
                description=r.str_(s, "description", k, default=""),
                store=r.str_(s, "store", k, default=""),
                simulated_seconds=r.num(s, "simulated_seconds", k, default=0.0),
                wall_seconds=None if wall is None else r.num(s, "wall_seconds", k),
                trace_hash=r.str_(s, "trace_hash", k, default=""),
                figures=_figures(r, s, k),
                series=_series(r, s.get("series"), _join(k, "series")),
                comparison=_comparison(r, s.get("comparison"), _join(k, "comparison")),
            )
        )
    return ChaosResults(
        path=r.path,
        generated_at=r.str_(top, "generated_at", "", default=""),
        environment=r.text_map(top, "environment", ""),
        seed=seed,
        command=r.command(top, ""),
        scenarios=tuple(scenarios),
    )


def _load(r: _Reader, top: dict[str, JSONValue]) -> LoadResults:
    stats = tuple(
        LoadStat(
            name=r.str_(e, "name", f"stats[{i}]"),
            method=r.str_(e, "method", f"stats[{i}]", default=""),
            requests=r.int_(e, "requests", f"stats[{i}]"),
            failures=r.int_(e, "failures", f"stats[{i}]"),
            rps=r.opt_num(e, "rps", f"stats[{i}]"),
            p50=r.opt_num(e, "p50", f"stats[{i}]"),
            p95=r.opt_num(e, "p95", f"stats[{i}]"),
            p99=r.opt_num(e, "p99", f"stats[{i}]"),
            max=r.opt_num(e, "max", f"stats[{i}]"),
        )
        for i, e in enumerate(r.objects(top, "stats", ""))
    )
    history = tuple(
        LoadPoint(
            t=r.num(e, "t", f"history[{i}]"),
            rps=r.opt_num(e, "rps", f"history[{i}]"),
            p50=r.opt_num(e, "p50", f"history[{i}]"),
            p95=r.opt_num(e, "p95", f"history[{i}]"),
            users=r.int_(e, "users", f"history[{i}]", default=0),
        )
        for i, e in enumerate(r.objects(top, "history", ""))
    )
    thresholds = tuple(
        Threshold(
            name=r.str_(e, "name", f"threshold_results[{i}]"),
            limit=r.opt_num(e, "limit", f"threshold_results[{i}]"),
            value=r.opt_num(e, "value", f"threshold_results[{i}]"),
            passed=r.bool_(e, "passed", f"threshold_results[{i}]"),
        )
        for i, e in enumerate(r.objects(top, "threshold_results", ""))
    )
    cfg = top.get("config")
    thr = top.get("thresholds")
    return LoadResults(
        path=r.path,
        generated_at=r.str_(top, "generated_at", "", default=""),
        environment=r.text_map(top, "environment", ""),
        command=r.command(top, ""),
        config={} if cfg is None else r.obj(cfg, "config"),
        thresholds={} if thr is None else r.obj(thr, "thresholds"),
        stats=stats,
        history=history,
        invariants=tuple(
            _invariant(r, e, f"invariants[{i}]")
            for i, e in enumerate(r.objects(top, "invariants", ""))
        ),
        threshold_results=thresholds,
        passed=r.bool_(top, "passed", ""),
    )
