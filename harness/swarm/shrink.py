"""Shrinking: a failing scenario document cut down to a smaller one that still fails the same way.

Greedy delta debugging over the scenario *document*: `candidates(doc)` proposes smaller
documents, biggest cuts first (drop a tenant group, halve the events, drop a fault, halve the
simulated time, ...); `shrink` takes the first candidate that is still a valid scenario and
still fails (the caller's `fails`, which reruns it and checks the same invariant), and starts
over from it, until no candidate fails or the budget of reruns is spent. Every accepted step
makes `size(doc)` strictly smaller, so it ends.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.sim.scenario import ScenarioError
from harness.swarm.generate import Doc, scenario_of

__all__ = ["Shrunk", "candidates", "shrink", "size"]


@dataclass(frozen=True, slots=True)
class Shrunk:
    """What shrinking found: the smallest failing document and how it got there."""

    doc: Doc
    runs: int
    """Reruns spent (each candidate that was a valid scenario cost one)."""
    steps: int
    """Candidates accepted."""


def size(doc: Doc) -> dict[str, float]:
    """How big a scenario is: tenants, events, faults, simulated hours."""
    tenants = sum(int(g.get("count", 1)) for g in doc.get("tenants", []))
    traffic = doc.get("traffic", {})
    events = int(traffic.get("events", 100)) + sum(
        int(b["events"]) for b in traffic.get("bursts", [])
    )
    rules = doc.get("n8n", {}).get("faults", {}).get("rules", [])
    faults = (
        sum(len(r) for r in rules)
        + len(doc.get("stripe", {}))
        + len(doc.get("crashes", []))
        + len(doc.get("dlq", {}).get("retries", []))
        + len(doc.get("settings", {}))
    )
    hours = (float(traffic.get("duration", 3600.0)) + float(doc.get("settle", 3600.0))) / 3600
    return {"tenants": tenants, "events": events, "faults": faults, "hours": round(hours, 4)}


def _weight(doc: Doc) -> float:
    """`size` summed, plus a little per tenant config key and mix entry (so dropping them
    counts as progress without showing in the size)."""
    s = size(doc)
    configs = sum(len(g.get("config", {})) for g in doc.get("tenants", []))
    mix = len(doc.get("traffic", {}).get("mix", {}))
    return s["tenants"] + s["events"] + s["faults"] + s["hours"] + 0.01 * (configs + mix)


def _with(doc: Doc, edit: Callable[[Doc], None]) -> Doc:
    out = copy.deepcopy(doc)
    edit(out)
    return out


def _drops(doc: Doc, path: tuple[Any, ...]) -> Iterator[Doc]:
    """One candidate per item of the list or mapping at `path`, without that item."""
    node: Any = doc
    for key in path:
        if (isinstance(node, dict) and key in node) or (
            isinstance(node, list) and isinstance(key, int) and key < len(node)
        ):
            node = node[key]
        else:
            return
    if not isinstance(node, list | dict):
        return
    keys = list(range(len(node))) if isinstance(node, list) else list(node)
    for k in reversed(keys):

        def drop(d: Doc, k: Any = k) -> None:
            target: Any = d
            for key in path:
                target = target[key]
            del target[k]

        yield _with(doc, drop)


_SECTIONS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("settings",), {}),
    (("stripe",), {}),
    (("crashes",), []),
    (("traffic", "bursts"), []),
    (("dlq", "retries"), []),
    (("n8n", "faults", "rules"), []),
)
"""Whole sections emptied in one cut (cheaper than one item at a time when none matters)."""


def _emptied(doc: Doc) -> Iterator[Doc]:
    for path, empty in _SECTIONS:
        node: Any = doc
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node:
            yield _with(doc, _setter(path[:-1], path[-1], copy.deepcopy(empty)))


def candidates(doc: Doc) -> Iterator[Doc]:
    """Smaller documents, biggest cuts first."""
    yield from _emptied(doc)
    groups = doc.get("tenants", [])
    if len(groups) > 1:
        yield from _drops(doc, ("tenants",))
    for i, g in enumerate(groups):
        if int(g.get("count", 1)) > 1:
            yield _with(doc, _setter(("tenants", i), "count", int(g["count"]) // 2))
    events = int(doc.get("traffic", {}).get("events", 100))
    for smaller in dict.fromkeys((events // 2, events * 3 // 4, events - 1)):
        if 0 <= smaller < events:
            yield _with(doc, _setter(("traffic",), "events", smaller))
    yield from _drops(doc, ("traffic", "bursts"))
    yield from _drops(doc, ("crashes",))
    rules = doc.get("n8n", {}).get("faults", {}).get("rules", [])
    yield from _drops(doc, ("n8n", "faults", "rules"))
    for i in range(len(rules)):
        yield from _drops(doc, ("n8n", "faults", "rules", i))
    yield from _drops(doc, ("stripe",))
    yield from _drops(doc, ("dlq", "retries"))
    yield from _drops(doc, ("settings",))
    yield from _halve_time(doc)
    for i, g in enumerate(groups):
        if "config" in g:
            yield from _drops(doc, ("tenants", i, "config"))
    yield from _drops(doc, ("traffic", "mix"))


def _setter(path: tuple[Any, ...], key: str, value: Any) -> Callable[[Doc], None]:
    """An edit setting `key` to `value` in the mapping at `path` (created when missing)."""

    def edit(d: Doc) -> None:
        node: Any = d
        for k in path:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
        node[key] = value

    return edit


def _halve_time(doc: Doc) -> Iterator[Doc]:
    duration = float(doc.get("traffic", {}).get("duration", 3600.0))
    if duration > 1:
        yield _with(doc, _setter(("traffic",), "duration", duration / 2))
    settle = float(doc.get("settle", 3600.0))
    if settle > 0:
        yield _with(doc, _setter((), "settle", 0.0))
    if settle > 1:
        yield _with(doc, _setter((), "settle", settle / 2))


def _valid(doc: Doc) -> bool:
    try:
        scenario_of(doc)
    except ScenarioError:
        return False
    return True


def shrink(doc: Doc, fails: Callable[[Doc], bool], *, budget: int = 200) -> Shrunk:
    """The smallest document reachable from `doc` by accepted cuts that still `fails`,
    rerunning at most `budget` candidates."""
    runs = steps = 0
    current = doc
    improved = True
    while improved and runs < budget:
        improved = False
        weight = _weight(current)
        for candidate in candidates(current):
            if _weight(candidate) >= weight or not _valid(candidate):
                continue
            if runs >= budget:
                break
            runs += 1
            if fails(candidate):
                current, steps, improved = candidate, steps + 1, True
                break
    return Shrunk(current, runs, steps)
