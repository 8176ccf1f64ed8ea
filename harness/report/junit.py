"""`junit.xml` for CI test views: one testsuite per scenario, one testcase per invariant.

A broken invariant is a `<failure>` carrying its details, counterexample and the command that
reproduces it. Wall-clock times live only in the delimited environment comments, so the rest of
the file is deterministic (test viewers treat the missing `time` attributes as zero).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from harness.report.html import ENV_BEGIN, ENV_END
from harness.report.model import Invariant, LoadResults, Report, Scenario

__all__ = ["render_junit"]

_ENV_OPEN: Final = f"{ENV_BEGIN}: wall-clock time; ignored by the reproducibility check -->"


def _text(s: str) -> str:
    # XML 1.0 forbids most control characters even escaped; replace them.
    clean = "".join(c if c in "\t\n\r" or ord(c) >= 0x20 else "\ufffd" for c in s)
    return escape(clean)


def _attr(s: str) -> str:
    return quoteattr("".join(c if c in "\t\n\r" or ord(c) >= 0x20 else "\ufffd" for c in s))


def _case(classname: str, inv: Invariant, reproduce: str) -> Iterator[str]:
    head = f"    <testcase classname={_attr(classname)} name={_attr(inv.name)}"
    body: list[str] = []
    if not inv.passed:
        text = inv.details
        if inv.counterexample is not None:
            ce = json.dumps(inv.counterexample, indent=2, sort_keys=True, ensure_ascii=False)
            text += f"\n\nCounterexample:\n{ce}"
        if reproduce:
            text += f"\n\nReproduce: {reproduce}"
        msg = inv.details.splitlines()[0] if inv.details else f"{inv.name} broken"
        body.append(
            f'      <failure message={_attr(msg)} type="InvariantBroken">'
            f"{_text(text.strip())}</failure>"
        )
    elif inv.details or inv.checked is not None:
        checked = "" if inv.checked is None else f"checked {inv.checked}: "
        body.append(f"      <system-out>{_text(checked + inv.details)}</system-out>")
    if not body:
        yield head + "/>"
        return
    yield head + ">"
    yield from body
    yield "    </testcase>"


def _props(pairs: list[tuple[str, str]], env: list[tuple[str, str]]) -> Iterator[str]:
    yield "    <properties>"
    for k, v in pairs:
        yield f"      <property name={_attr(k)} value={_attr(v)}/>"
    yield f"      {_ENV_OPEN}"
    for k, v in env:
        yield f"      <property name={_attr(k)} value={_attr(v)}/>"
    yield f"      {ENV_END}"
    yield "    </properties>"


def _scenario_cases(s: Scenario) -> list[Invariant]:
    invs = list(s.invariants)
    if not invs:
        return [Invariant("scenario", s.passed, "no invariants were checked")]
    if not s.passed and all(i.passed for i in invs):
        invs.append(Invariant("scenario", False, "the scenario failed with every invariant held"))
    return invs


def _load_cases(lr: LoadResults) -> list[Invariant]:
    invs = list(lr.invariants) + [
        Invariant(
            f"threshold {t.name}",
            t.passed,
            f"measured {t.value!r} against the limit {t.limit!r}",
        )
        for t in lr.threshold_results
    ]
    if not invs:
        return [Invariant("load run", lr.passed, "no checks were recorded")]
    if not lr.passed and all(i.passed for i in invs):
        invs.append(Invariant("load run", False, "the load run failed with every check passed"))
    return invs


def _suite(
    name: str,
    invs: list[Invariant],
    props: list[tuple[str, str]],
    env: list[tuple[str, str]],
    reproduce: str,
) -> Iterator[str]:
    failures = sum(1 for i in invs if not i.passed)
    yield (
        f'  <testsuite name={_attr(name)} tests="{len(invs)}" failures="{failures}" '
        'errors="0" skipped="0">'
    )
    yield from _props(props, env)
    for inv in invs:
        yield from _case(name, inv, reproduce)
    yield "  </testsuite>"


def render_junit(report: Report, *, generated_at: str) -> str:
    """The JUnit XML document."""
    suites: list[str] = []
    tests = failures = 0
    for s in report.scenarios:
        invs = _scenario_cases(s)
        tests += len(invs)
        failures += sum(1 for i in invs if not i.passed)
        env = [] if s.wall_seconds is None else [("wall_seconds", f"{s.wall_seconds:.3f}")]
        props = [
            ("seed", str(s.seed)),
            ("command", s.command),
            ("file", s.file),
            ("store", s.store),
            ("simulated_seconds", repr(s.simulated_seconds)),
            ("trace_hash", s.trace_hash),
        ]
        suites += _suite(f"chaos.{s.name}", invs, props, env, s.command)
    for n, lr in enumerate(report.load):
        invs = _load_cases(lr)
        tests += len(invs)
        failures += sum(1 for i in invs if not i.passed)
        name = "load" if len(report.load) == 1 else f"load.{n + 1}"
        env = [("generated_at", lr.generated_at)]
        suites += _suite(name, invs, [("command", lr.command)], env, lr.command)
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="reliability-harness" tests="{tests}" failures="{failures}" errors="0">',
        f"  {_ENV_OPEN}",
        f"  <!-- generated at {_text(generated_at).replace('--', '- -')} -->",
        f"  {ENV_END}",
    ]
    return "\n".join([*head, *suites, "</testsuites>"]) + "\n"
