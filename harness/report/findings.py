"""The front-page findings: where the Step 06 design fails, what the fixed design does.

Each finding takes its numbers from the comparison tables and figures in the results; nothing
here is a hard-coded measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from harness.report.analysis import fmt_value, humanize, numeric_columns, row_label, words
from harness.report.model import Cell, Comparison, Report, Scenario
from harness.report.scales import fmt_num

__all__ = ["STEP06", "Finding", "findings"]

STEP06: Final = (
    "The Step 06 design is the original design this project improves on: the n8n workflows and "
    "the service configuration it shipped with (its three workflows are in n8n/, its settings "
    "are the N8N_* variables). Each finding says where it fails, what the fixed design in "
    "reliability/ does instead, and the numbers that show it."
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One statement for the front page: the Step 06 design's behaviour, the fix, the numbers."""

    key: str
    title: str
    step06_design: str
    fixed_design: str
    evidence: tuple[tuple[str, str], ...]
    """(what, value) pairs, each taken from the results."""
    source: str
    """Where the numbers come from (scenario, random seed), or why there are none."""
    measured: bool


def _num(cell: Cell) -> float | None:
    if isinstance(cell, bool) or not isinstance(cell, int | float):
        return None
    return float(cell)


def _find_col(comparison: Comparison, *needles: str) -> int | None:
    nums = numeric_columns(comparison)
    for i in nums:
        name = comparison.columns[i].lower()
        if all(n in name for n in needles):
            return i
    return None


def _first(*options: int | None) -> int | None:
    return next((o for o in options if o is not None), None)


def _name(row: Sequence[Cell]) -> str:
    return next((c.lower() for c in row if isinstance(c, str)), "")


def _find_scenario(report: Report, kind: str) -> tuple[Scenario, Comparison] | None:
    for s in report.scenarios:
        if s.comparison is not None and s.comparison.kind == kind:
            return s, s.comparison
    return None


def _source(s: Scenario) -> str:
    return f"scenario {s.name}, random seed {s.seed}" + (f": {s.command}" if s.command else "")


def _row_metrics(comparison: Comparison, row: Sequence[Cell]) -> str:
    parts = [
        f"{words(comparison.columns[i])} {fmt_value(comparison.columns[i], _num(row[i]))}"
        for i in numeric_columns(comparison)
    ]
    return ", ".join(parts)


def _pick(
    comparison: Comparison,
    prefixes: Sequence[str],
    needles: Sequence[str],
    not_row: Sequence[Cell] | None = None,
) -> Sequence[Cell] | None:
    """The row whose label starts with a prefix, else the first one containing a needle."""
    rows = [r for r in comparison.rows if r is not not_row]
    labels = [row_label(comparison, r).lower() for r in rows]
    for row, label in zip(rows, labels, strict=True):
        if label.startswith(tuple(prefixes)):
            return row
    for row, label in zip(rows, labels, strict=True):
        if any(n in label for n in needles):
            return row
    return None


def _replay_from_figures(
    report: Report,
) -> tuple[Scenario, tuple[tuple[str, str], ...], str] | None:
    """The replay numbers from `step06_*`/`fixed_*` figures (`seed_*` in results written before
    the rename), when no comparison table exists."""
    for s in report.scenarios:
        f = s.figures
        f = {(f"step06_{k[5:]}" if k.startswith("seed_") else k): v for k, v in f.items()}
        keys = [k for k in f if k.startswith(("step06_", "fixed_")) and "replay" in k]
        if not keys:
            continue
        parts: list[str] = []
        evidence: list[tuple[str, str]] = []
        for who in ("step06", "fixed"):
            mine = [(k, v) for k, v in f.items() if k.startswith(f"{who}_")]
            evidence += [(humanize(k), fmt_num(v)) for k, v in mine]
            acc = next((v for k, v in mine if "replay" in k and "accept" in k), None)
            drop = next((v for k, v in mine if "drop" in k), None)
            bits = []
            if acc is not None:
                bits.append(f"{fmt_num(acc)} replayed events accepted")
            if drop is not None:
                bits.append(f"{fmt_num(drop)} legitimate events dropped")
            if bits:
                name = "Step 06" if who == "step06" else who
                parts.append(f"{name} design: {' and '.join(bits)}")
        return s, tuple(evidence), "; ".join(parts)
    return None


def _replay_finding(report: Report) -> Finding:
    title = "Replay protection: a last-event-id ledger is not a dedupe"
    step06_words = (
        "The Step 06 design remembers only the last processed `event.id` per tenant "
        "(`stripe_event_ledger.last_processed_event_id`). Stripe does not order its deliveries, "
        "so an older event replayed later is not recognised, and a legitimate event that "
        "arrives out of order can be mistaken for one already seen."
    )
    fixed_words = (
        "The fixed design keeps that table for compatibility but dedupes on a set of processed "
        "events keyed by (tenant, event id), kept longer than Stripe's 3-day retry window, "
        "and rejects signatures whose timestamp is outside a 300 s tolerance."
    )
    found = _find_scenario(report, "replay")
    if found is None:
        from_figures = _replay_from_figures(report)
        if from_figures is not None:
            fs, fig_evidence, sentence = from_figures
            return Finding(
                "replay-ledger",
                title,
                f"{step06_words} Measured, {sentence}.",
                fixed_words,
                fig_evidence,
                _source(fs),
                True,
            )
        return Finding(
            "replay-ledger",
            title,
            step06_words,
            fixed_words,
            (),
            "Not measured: these results hold no replay comparison scenario.",
            measured=False,
        )
    s, c = found
    step06_row = _pick(c, ("step 06", "seed"), ("last", "ledger"))
    fixed_row = _pick(c, ("fixed",), ("set", "processed"), not_row=step06_row)
    evidence: list[tuple[str, str]] = []
    accepted = _first(_find_col(c, "replay"), _find_col(c, "accept"))
    dropped = _first(_find_col(c, "drop"), _find_col(c, "lost"))
    sentences: list[str] = []
    for who, row in (("Step 06 design", step06_row), ("fixed design", fixed_row)):
        if row is None:
            continue
        evidence.append((f"{who} ({row_label(c, row)})", _row_metrics(c, row)))
        bits: list[str] = []
        if accepted is not None and (v := _num(row[accepted])) is not None:
            bits.append(f"{fmt_num(v)} replayed events accepted")
        if dropped is not None and (v := _num(row[dropped])) is not None:
            bits.append(f"{fmt_num(v)} legitimate events dropped")
        if bits:
            sentences.append(f"{who}: {' and '.join(bits)}")
    if step06_row is None and fixed_row is None:
        evidence = [(row_label(c, r), _row_metrics(c, r)) for r in c.rows]
    if sentences:
        step06_words += " Measured, " + "; ".join(sentences) + "."
    return Finding(
        "replay-ledger", title, step06_words, fixed_words, tuple(evidence), _source(s), True
    )


_HARDLY: Final = 0.9
"""The additive jitter "hardly spreads a herd" when it saves under 10 % of no jitter's calls."""


def _herd_title(c: Comparison, rows: Sequence[Sequence[Cell]]) -> str:
    """The finding's title: a claim about the additive jitter only when the numbers make it."""
    col = _find_col(c, "calls")
    calls = {_name(r): _num(r[col]) for r in rows} if col is not None else {}
    additive, none = calls.get("additive"), calls.get("none")
    if additive is None or none is None or none <= 0:
        return "Jitter: the Step 06 design's additive 0.1 x base jitter against real jitter"
    if additive >= _HARDLY * none:
        return (
            "Jitter: the Step 06 design's additive 0.1 x base jitter hardly spreads a herd "
            f"({fmt_num(additive)} calls to n8n against no jitter's {fmt_num(none)})"
        )
    return (
        "Jitter: the Step 06 design's additive 0.1 x base jitter, "
        f"{fmt_num(additive)} calls to n8n against no jitter's {fmt_num(none)}"
    )


def _herd_finding(report: Report) -> Finding:
    title = "Jitter: the Step 06 design's additive 0.1 x base jitter against real jitter"
    step06_words = (
        "The Step 06 design waits `base * 2^attempt + random() * 0.1 * base`: the random part "
        "is a tenth of the base delay, so clients that failed together retry together, in "
        "near-lockstep."
    )
    fixed_words = (
        "The fixed design offers full, equal and decorrelated jitter (delays spread over the "
        "whole backoff window) and a retry budget; the herd scenario measures peak arrivals "
        "per second at n8n and total calls for each."
    )
    found = _find_scenario(report, "herd")
    if found is None:
        return Finding(
            "additive-jitter",
            title,
            step06_words,
            fixed_words,
            (),
            "Not measured: these results hold no herd comparison scenario.",
            measured=False,
        )
    s, c = found
    rows = list(c.rows)
    budget = next((i for i, col in enumerate(c.columns) if "budget" in col.lower()), None)
    if budget is not None:
        rows = [r for r in rows if not r[budget]] or rows
    title = _herd_title(c, rows)
    evidence = tuple((row_label(c, r), _row_metrics(c, r)) for r in c.rows)
    cond = " with the retry budget off" if budget is not None else ""
    sentences: list[str] = []
    for needles in (("peak", "retr"), ("peak", "arriv"), ("calls",)):
        col = _find_col(c, *needles)
        if col is None:
            continue
        ranked = sorted((r for r in rows if _num(r[col]) is not None), key=_by_column(col))
        order = ", ".join(f"{_name(r)} {fmt_num(_num(r[col]) or 0.0)}" for r in ranked)
        sentences.append(f"{humanize(c.columns[col])}: {order}")
    if sentences:
        step06_words += f" Measured at n8n{cond}, worst first: " + "; ".join(sentences) + "."
    if c.verdict:
        fixed_words += f" The herd scenario's verdict: {c.verdict}"
        if not c.verdict.endswith("."):
            fixed_words += "."
    else:
        fixed_words += _study_sentence(c, rows)
    return Finding("additive-jitter", title, step06_words, fixed_words, evidence, _source(s), True)


def _by_column(col: int) -> Callable[[Sequence[Cell]], tuple[float, str]]:
    """Sort key: largest value in column `col` first, then by name."""

    def key(row: Sequence[Cell]) -> tuple[float, str]:
        return (-(_num(row[col]) or 0.0), _name(row))

    return key


def _study_sentence(c: Comparison, rows: Sequence[Sequence[Cell]]) -> str:
    """Without the producer's verdict: the ranking by total calls (else peak), stated as such;
    no comparison with a study the table does not reproduce."""
    col = _first(_find_col(c, "calls"), _find_col(c, "peak"))
    if col is None:
        return ""
    value = {_name(r): _num(r[col]) for r in rows}
    ranked = sorted((k for k, v in value.items() if v is not None), key=lambda k: (value[k], k))
    if not ranked:
        return ""
    order = " < ".join(f"{k} {fmt_num(value[k])}" for k in ranked)
    return f" Ranked by {humanize(c.columns[col])}, fewest first: {order}."


_SECRET_WORDS: Final = ("secret", "timing", "cron", "forbidden", "bearer")


def _secret_finding(report: Report) -> Finding:
    title = "Cron secret: `secret === expected` leaks timing; a query-string secret leaks to logs"
    step06_words = (
        'The Step 06 design checks `url.searchParams.get("secret") === exp`. String equality '
        "stops at the first differing character, so response time tells an attacker how much "
        "of a guess is right; and a secret in the query string is written to access logs, proxy "
        "logs and browser history."
    )
    fixed_words = (
        "The fixed design compares in constant time (`hmac.compare_digest`), also accepts "
        "`Authorization: Bearer <secret>` (the usual cron convention) and never logs the secret."
    )
    evidence: list[tuple[str, str]] = []
    sources: list[str] = []
    for s in report.scenarios:
        hits = [(k, v) for k, v in s.figures.items() if any(w in k.lower() for w in _SECRET_WORDS)]
        for k, v in hits:
            evidence.append((f"{s.name}: {humanize(k)}", fmt_num(v)))
        if hits:
            sources.append(_source(s))
    for lr in report.load:
        for st in lr.stats:
            if any(w in st.name.lower() for w in ("weekly-recap", "cron")):
                evidence.append(
                    (
                        f"load: {st.method} {st.name}".replace("  ", " "),
                        f"{st.requests:,} requests, {st.failures:,} failures, "
                        f"p95 {fmt_num(st.p95)} ms",
                    )
                )
                if lr.command not in sources:
                    sources.append(f"load run: {lr.command}" if lr.command else "load run")
    if not evidence:
        return Finding(
            "cron-secret",
            title,
            step06_words,
            fixed_words,
            (),
            "Not measured by these results: this is a code-level finding; the load test's cron "
            "user exercises the endpoint (run `reliability-harness load` and add its results).",
            measured=False,
        )
    fixed_words += " Measured: " + "; ".join(f"{w}: {v}" for w, v in evidence) + "."
    return Finding(
        "cron-secret", title, step06_words, fixed_words, tuple(evidence), "; ".join(sources), True
    )


def _dlq_finding(report: Report) -> Finding | None:
    def relevance(s: Scenario) -> int:
        named = any(w in s.name.lower() for w in ("dlq", "ttl"))
        purged = any(p.value > 0 for p in s.series.dlq_purges)
        return (0 if named else 2) + (0 if purged else 1)

    for s in sorted(report.scenarios, key=relevance):
        purges = [p for p in s.series.dlq_purges if p.value > 0]
        if not purges and not s.series.dlq_depth:
            continue
        evidence: list[tuple[str, str]] = [
            ("cleanup calls that removed expired entries", fmt_num(len(purges))),
            ("expired entries removed", fmt_num(sum(p.value for p in purges))),
        ]
        if s.series.dlq_depth:
            evidence.append(
                ("largest visible DLQ depth", fmt_num(max(p.value for p in s.series.dlq_depth)))
            )
        for k, v in s.figures.items():
            if "ttl" in k.lower() or "dlq" in k.lower():
                evidence.append((humanize(k), fmt_num(v)))
        ttl = [i for i in s.invariants if "ttl" in i.name.lower() or "dlq" in i.name.lower()]
        held = ", ".join(
            [f"{w} {v}" for w, v in evidence]
            + [f"{i.name} {'held' if i.passed else 'BROKEN'}" for i in ttl]
        )
        return Finding(
            "dlq-timer",
            "DLQ expiry: no hourly timer needed",
            "The Step 06 design cleans the dead-letter queue 'every hour', which needs a "
            "background timer that the rest of the design removed, and leaves expired entries "
            "visible until then.",
            "The fixed design filters every read on `expires_at` (an entry is invisible from its "
            "expiry on) and lets cron/drain calls remove expired rows, guarded so concurrent "
            "instances don't collide." + (f" In this run: {held}." if held else ""),
            tuple(evidence),
            _source(s),
            True,
        )
    return None


def findings(report: Report) -> list[Finding]:
    """The front-page findings, in the order the design lists them."""
    out = [_replay_finding(report), _herd_finding(report), _secret_finding(report)]
    dlq = _dlq_finding(report)
    if dlq is not None:
        out.append(dlq)
    return out
