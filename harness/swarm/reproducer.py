"""Scenario documents written as catalogue YAML files, and read back the same.

`dump(doc)` writes a scenario document (the mapping a catalogue file holds) as YAML that
`harness.sim.scenario.load_scenario` reads back into the same `Scenario`; `reproducer_text`
adds the header a shrunk failure carries: where it came from, what it breaks, how big it is,
and the one command line that replays it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from harness.swarm.generate import Doc

__all__ = ["dump", "reproducer_text"]


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the document's order, no aliases (each value written out)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Doc) -> str:
    """The document as YAML (keys in their order; reads back to the same values)."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def reproducer_text(
    doc: Doc, *, broken: Sequence[str], size: Mapping[str, float], command: str, origin: str
) -> str:
    """A shrunk failure as a catalogue file: a comment header, then the scenario."""
    header = [
        f"# {origin}",
        f"# Breaks: {', '.join(broken)}.",
        "# Size: "
        f"{int(size['tenants'])} tenant(s), {int(size['events'])} event(s), "
        f"{int(size['faults'])} fault/setting item(s), {size['hours']:g} simulated hour(s).",
        f"# Reproduce: {command}",
    ]
    return "\n".join(header) + "\n" + dump(doc)
