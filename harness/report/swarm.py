"""The swarm part of a report: many shards' swarm entries merged into one summary.

Reads only what results files hold (the `swarm` section of `results.json`, see
docs/results-schema.md), so shards run on different machines merge into one report: counts per
invariant, the distribution of the generated parameters and fault kinds, what the runs covered
(and what no run reached), and every failure with its shrunk reproducer. The summary depends
only on the set of entries, never on how they were split into shards or in which order the
files come: two shards merged give the same summary as one run over the same seeds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from harness.report import html_blocks as hb
from harness.report.jinja import render_section

__all__ = [
    "SWARM_VERSION",
    "add_swarm_section",
    "merge_entries",
    "read_swarm_sections",
    "render_swarm_html",
    "render_swarm_markdown",
    "swarm_summary",
]

SWARM_VERSION: Final = 1
"""Version of the `swarm` section of results.json."""


def merge_entries(sections: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every entry of every swarm section, once per seed (a seed run twice counts once: the
    same seed gives the same run), in seed order."""
    by_seed: dict[int, dict[str, Any]] = {}
    for section in sections:
        for entry in section.get("entries", []):
            by_seed.setdefault(int(entry["seed"]), dict(entry))
    return [by_seed[s] for s in sorted(by_seed)]


def _bucket(value: float) -> str:
    """Powers of two: `0`, `1`, `2-3`, `4-7`, ..."""
    n = int(value)
    if n <= 1:
        return str(max(n, 0))
    low = 1 << (n.bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def swarm_summary(
    entries: Sequence[Mapping[str, Any]], expected: Sequence[str] = ()
) -> dict[str, Any]:
    """Counts per invariant, parameter and kind distributions, coverage, failures."""
    invariants: dict[str, dict[str, int]] = {}
    kinds: Counter[str] = Counter()
    params: dict[str, Counter[str]] = {}
    covered: Counter[str] = Counter()
    failures = []
    for e in entries:
        for name, verdict in e["invariants"].items():
            row = invariants.setdefault(name, {"runs": 0, "held": 0, "broken": 0, "checked": 0})
            row["runs"] += 1
            row["held" if verdict["passed"] else "broken"] += 1
            row["checked"] += int(verdict["checked"])
        kinds.update(e["kinds"])
        for key, value in e["params"].items():
            shown = (
                _bucket(value)
                if isinstance(value, int | float) and not isinstance(value, bool)
                else str(value)
            )
            params.setdefault(key, Counter())[shown] += 1
        covered.update(e["coverage"])
        if not e["passed"]:
            failures.append(
                {
                    "seed": e["seed"],
                    "broken": list(e["broken"]),
                    "command": e["command"],
                    "details": _first_details(e),
                    "reproducer": e.get("reproducer"),
                }
            )
    return {
        "runs": len(entries),
        "passed": sum(1 for e in entries if e["passed"]),
        "seeds": _ranges([int(e["seed"]) for e in entries]),
        "invariants": dict(sorted(invariants.items())),
        "kinds": dict(sorted(kinds.items())),
        "params": {k: dict(sorted(v.items())) for k, v in sorted(params.items())},
        "coverage": dict(sorted(covered.items())),
        "unreached": [item for item in expected if not covered.get(item)],
        "failures": failures,
    }


def _first_details(entry: Mapping[str, Any]) -> str:
    outcome = entry.get("outcome") or {}
    for inv in outcome.get("invariants", []):
        if not inv["passed"]:
            return str(inv["details"])
    return ""


def _ranges(seeds: Sequence[int]) -> str:
    """`1-100, 205` for the seeds covered."""
    spans: list[list[int]] = []
    for s in sorted(set(seeds)):
        if spans and spans[-1][1] == s - 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def render_swarm_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as a Markdown section."""
    lines = [
        "## Swarm",
        "",
        f"{summary['runs']} generated runs (seeds {summary['seeds'] or 'none'}), "
        f"{summary['passed']} with every invariant holding.",
        "",
        "| invariant | runs | held | broken | facts checked |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in summary["invariants"].items():
        lines.append(
            f"| `{name}` | {row['runs']} | {row['held']} | {row['broken']} | {row['checked']} |"
        )
    lines += ["", "Fault kinds enabled (runs): " + _pairs(summary["kinds"]), ""]
    for key, counts in summary["params"].items():
        lines.append(f"- {key}: {_pairs(counts)}")
    lines += ["", "Coverage (times reached over all runs): " + _pairs(summary["coverage"]), ""]
    if summary["unreached"]:
        lines += ["Not reached by any run: " + ", ".join(summary["unreached"]), ""]
    if summary["failures"]:
        lines += ["### Failures", ""]
    for f in summary["failures"]:
        lines.append(f"- seed {f['seed']}: {', '.join(f['broken'])}: {f['details']}")
        lines.append(f"  - rerun: `{f['command']}`")
        rep = f["reproducer"]
        if rep:
            s = rep["size"]
            lines.append(
                f"  - shrunk to {int(s['tenants'])} tenant(s), {int(s['events'])} event(s), "
                f"{int(s['faults'])} fault/setting item(s), {s['hours']:g} h: `{rep['command']}`"
            )
    return "\n".join(lines) + "\n"


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def render_swarm_html(summary: Mapping[str, Any]) -> str:
    """The summary as an HTML section (no scripts, like the rest of the report)."""
    rows: list[list[hb.Rich]] = [
        [(hb.Code(name),), str(r["runs"]), str(r["held"]), str(r["broken"]), str(r["checked"])]
        for name, r in summary["invariants"].items()
    ]
    blocks: list[hb.Block] = [
        hb.Para(
            f"{summary['runs']} generated runs (seeds {summary['seeds'] or 'none'}), "
            f"{summary['passed']} with every invariant holding."
        ),
        hb.table(
            "Invariants over the swarm's runs",
            ("invariant", "runs", "held", "broken", "facts checked"),
            rows,
            numeric=(1, 2, 3, 4),
        ),
        hb.Para(f"Fault kinds enabled (runs): {_pairs(summary['kinds'])}"),
        hb.Bullets([f"{k}: {_pairs(v)}" for k, v in summary["params"].items()]),
        hb.Para(f"Coverage (times reached over all runs): {_pairs(summary['coverage'])}"),
    ]
    if summary["unreached"]:
        blocks.append(hb.Para(f"Not reached by any run: {', '.join(summary['unreached'])}"))
    if summary["failures"]:
        blocks.append(hb.Heading(3, "Failures"))
        items: list[hb.Rich] = []
        for f in summary["failures"]:
            rep = f["reproducer"]
            shrunk: tuple[hb.Inline, ...] = ("; shrunk: ", hb.Code(rep["command"])) if rep else ()
            items.append(
                (
                    f"seed {f['seed']}: {', '.join(f['broken'])}: {f['details']}; rerun: ",
                    hb.Code(f["command"]),
                    *shrunk,
                )
            )
        blocks.append(hb.Bullets(items))
    return str(render_section(hb.Section("swarm", "Swarm", blocks)))


def read_swarm_sections(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The `swarm` sections of the results files among `paths` (files or folders holding a
    `results.json`); files without one (catalogue runs, load results) give none."""
    sections = []
    for path in paths:
        file = path / "results.json" if path.is_dir() else path
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # the report's own reader has already said what is wrong with it
        if isinstance(doc, dict) and isinstance(doc.get("swarm"), dict):
            sections.append(doc["swarm"])
    return sections


def add_swarm_section(
    files: Mapping[str, str], sections: Sequence[Mapping[str, Any]], expected: Sequence[str]
) -> dict[str, str]:
    """The report's files with the merged swarm summary added to the Markdown summary and
    the HTML page (unchanged when no input was a swarm)."""
    out = dict(files)
    if not sections:
        return out
    summary = swarm_summary(merge_entries(sections), expected)
    if "summary.md" in out:
        out["summary.md"] = out["summary.md"].rstrip("\n") + "\n\n" + render_swarm_markdown(summary)
    page = out.get("index.html")
    if page is not None and "</main>" in page:
        head, tail = page.rsplit("</main>", 1)
        out["index.html"] = head + render_swarm_html(summary) + "</main>" + tail
    return out
