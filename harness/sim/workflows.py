"""The n8n workflows a simulated run calls, and what took effect at n8n.

A run calls the sample workflows of `n8n/workflows/` (the fake's defaults). Each has a Remove
Duplicates node behind its Webhook node, keyed on the delivery's `idempotency_key`. A scenario
chooses with `n8n.dedupe` whether that node runs (`true`: the samples as shipped) or is switched
off (`false`, the default: what a workflow without dedupe does, every execution takes effect). A
switched-off node is `disabled`, as in n8n's editor: it passes its items through and leaves no
history, so every call runs the whole workflow and is answered as a first call.

`effects` counts, per idempotency key (the delivery's, as the call's header carried it), the
calls whose execution took effect: the fake's journal says for each call whether its workflow
ran and whether a Remove Duplicates node dropped its item. Counting per call, not per dedupe
value, also catches a sender whose retries carry another key in the body than in the header.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from harness.fakes.journal import JournalEntry
from harness.fakes.n8n import DEFAULT_WORKFLOWS
from harness.fakes.n8n_export import Workflow, load_workflows, parse_workflow
from harness.fakes.n8n_nodes import REMOVE_DUPLICATES

__all__ = ["effects", "sample_workflows"]


@functools.cache
def sample_workflows(dedupe: bool) -> tuple[Workflow, ...]:
    """The sample workflows, with their Remove Duplicates nodes enabled or disabled (loaded
    once per process: workflows are frozen, each fake keeps its own history)."""
    loaded = load_workflows(DEFAULT_WORKFLOWS)
    if dedupe:
        return loaded
    return tuple(
        parse_workflow(_disable_dedupe(w.raw), source=w.source, active=w.active) for w in loaded
    )


def _disable_dedupe(raw: Mapping[str, Any]) -> dict[str, Any]:
    nodes = [
        {**node, "disabled": True} if node.get("type") == REMOVE_DUPLICATES else node
        for node in raw["nodes"]
    ]
    return {**raw, "nodes": nodes}


def effects(journal: Iterable[JournalEntry]) -> dict[str, int]:
    """Per idempotency key, the calls whose execution took effect: the workflow ran and no
    Remove Duplicates node dropped the item (`JournalEntry.ran`, `JournalEntry.dropped`)."""
    out: dict[str, int] = {}
    for e in journal:
        if e.idempotency_key is not None and e.ran and not e.dropped:
            out[e.idempotency_key] = out.get(e.idempotency_key, 0) + 1
    return out
