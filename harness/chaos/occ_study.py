"""The aws-occ comparison: the simulator's OCC model set against the published jitter study.

The AWS Architecture Blog's "Exponential Backoff And Jitter" (Brooker, 2015) found, for N
clients contending on one item: no jitter (and, by the same token, jitter too small to spread
the clients) does far more work than any real jitter; full jitter does the least work; equal
jitter somewhat more than full, and takes much longer; decorrelated close to full.
`shape_checks` states each of those as a test on the reproduced numbers (summed over every
client count, so one noisy point cannot flip a ranking); the scenario fails when any of them
does not hold. The post's own simulator, run at its settings, gives equal jitter 1.01 x full
jitter's calls and 1.34 x its time, summed over its 19 client counts (docs/chaos.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from harness.sim.occ import OccPoint

__all__ = ["FAR_WORSE", "NEAR", "OCC_COLUMNS", "ShapeCheck", "occ_comparison", "shape_checks"]

OCC_COLUMNS: Final = ("strategy", "clients", "calls", "completion_s")
FAR_WORSE: Final = 1.5
"""'Far worse' means at least this many times full jitter's work."""
NEAR: Final = 1.5
"""'Close to full' means at most this many times full jitter's work."""


@dataclass(frozen=True, slots=True)
class ShapeCheck:
    """One statement of the published shape, and whether the reproduction bears it out."""

    claim: str
    held: bool
    numbers: str


def _work(points: Sequence[OccPoint]) -> dict[str, float]:
    total: dict[str, float] = {}
    for p in points:
        total[p.strategy] = total.get(p.strategy, 0.0) + p.calls
    return total


def _time(points: Sequence[OccPoint]) -> dict[str, float]:
    total: dict[str, float] = {}
    for p in points:
        total[p.strategy] = total.get(p.strategy, 0.0) + p.completion_s
    return total


def shape_checks(points: Sequence[OccPoint]) -> list[ShapeCheck]:
    """The published shape, claim by claim, on calls (and, for equal against full jitter,
    completion time) summed over every client count."""
    work = _work(points)
    if "full" not in work:
        return [ShapeCheck("full jitter was run", False, "no full-jitter rows")]
    full = work["full"]

    def ratio(s: str) -> str:
        return f"{s} {work[s]:,.0f} calls = {work[s] / full:.2f} x full ({full:,.0f})"

    checks: list[ShapeCheck] = []
    for s in ("none", "additive"):
        if s in work:
            checks.append(
                ShapeCheck(
                    f"{s} does far more work than full jitter (at least {FAR_WORSE:g} x)",
                    work[s] >= FAR_WORSE * full,
                    ratio(s),
                )
            )
    least = min(work, key=lambda s: (work[s], s))
    checks.append(
        ShapeCheck(
            "full jitter does the least work",
            least == "full",
            ", ".join(f"{s} {work[s]:,.0f}" for s in sorted(work, key=lambda s: (work[s], s))),
        )
    )
    if "equal" in work:
        checks.append(
            ShapeCheck(
                "equal jitter does more work than full", work["equal"] > full, ratio("equal")
            )
        )
    if "decorrelated" in work:
        checks.append(
            ShapeCheck(
                f"decorrelated jitter is close to full (at most {NEAR:g} x its work)",
                work["decorrelated"] <= NEAR * full,
                ratio("decorrelated"),
            )
        )
    time = _time(points)
    if "equal" in time and time["full"] > 0:
        checks.append(
            ShapeCheck(
                "equal jitter takes longer than full to finish",
                time["equal"] > time["full"],
                f"equal {time['equal']:,.1f} s = {time['equal'] / time['full']:.2f} x full "
                f"({time['full']:,.1f} s), completion times summed",
            )
        )
    return checks


def _counts(clients: Sequence[int]) -> str:
    """`19 client counts (10 to 190)`, or the counts themselves when there are few."""
    if len(clients) <= 3:
        return ", ".join(str(n) for n in clients) + " clients"
    return f"{len(clients)} client counts ({min(clients)} to {max(clients)})"


def _verdict(checks: Sequence[ShapeCheck], clients: Sequence[int]) -> str:
    held = [c for c in checks if c.held]
    broken = [c for c in checks if not c.held]
    head = (
        f"Summed over {_counts(clients)}, the numbers "
        + ("reproduce the published shape" if not broken else "diverge from the published shape")
        + f" ({len(held)} of {len(checks)} claims hold)"
    )
    parts = [f"{'holds' if c.held else 'DOES NOT HOLD'}: {c.claim} ({c.numbers})" for c in checks]
    return head + ": " + "; ".join(parts) + "."


def occ_comparison(points: Sequence[OccPoint], clients: Sequence[int]) -> dict[str, Any]:
    """The comparison block of results.json: one row per (strategy, clients), and the verdict."""
    checks = shape_checks(points)
    return {
        "kind": "aws-occ",
        "columns": list(OCC_COLUMNS),
        "rows": [
            [p.strategy, p.clients, round(p.calls, 2), round(p.completion_s, 6)] for p in points
        ],
        "matches_study": all(c.held for c in checks),
        "checks": [{"claim": c.claim, "held": c.held, "numbers": c.numbers} for c in checks],
        "verdict": _verdict(checks, clients),
    }
