"""The scenario format: what a chaos run simulates, as frozen data loaded from YAML.

A scenario names its tenants (the seed's tenant JSON shape, with counts), global settings
overrides (the environment variables), traffic (events, rate shape, event-type mix, duration in
simulated seconds), an n8n fault profile (`harness.fakes.faults`' format), Stripe delivery faults,
crash points, the cron drain cadence, the store, and the invariants to check with their bounds
(merged over the defaults; `only:` or `disable:` says otherwise). Every error names the file and
the key path (`traffic.mix.invoice.paid: ...`), a YAML syntax error the file, line and column.

The shapes live in `harness.sim.scenario_model`, the validation in `harness.sim.scenario_parser`,
and the keys with their meanings in `harness.sim.scenario_spec` (which the JSON Schema of
`reliability-harness schema scenario` is made from); this module loads files.
"""

from __future__ import annotations

from pathlib import Path

from harness.inputs import read_document
from harness.sim.scenario_model import (
    CATALOGUE,
    CATALOGUE_SHOWN_AS,
    DEFAULT_INVARIANTS,
    INVARIANTS,
    Burst,
    Comparison,
    Crash,
    Cron,
    DlqPlan,
    Scenario,
    ScenarioError,
    StripeFaults,
    TenantGroup,
    Traffic,
)
from harness.sim.scenario_parser import Parser, parse_instances
from harness.sim.scenario_spec import keys

__all__ = [
    "CATALOGUE",
    "DEFAULT_INVARIANTS",
    "INVARIANTS",
    "Burst",
    "Comparison",
    "Crash",
    "Cron",
    "DlqPlan",
    "Scenario",
    "ScenarioError",
    "StripeFaults",
    "TenantGroup",
    "Traffic",
    "display_path",
    "find_scenario",
    "load_catalogue",
    "load_scenario",
    "parse_scenario",
]


def load_catalogue(directory: str | Path = CATALOGUE) -> list[Scenario]:
    """Every `*.yaml` scenario in `directory`, sorted by file name."""
    files = sorted(Path(directory).glob("*.yaml"))
    return [load_scenario(f) for f in files]


def find_scenario(name_or_file: str, directory: str | Path = CATALOGUE) -> Scenario:
    """A scenario by catalogue name (`smoke`) or by path to a YAML file."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_scenario(path)
    candidate = Path(directory) / f"{name_or_file}.yaml"
    if candidate.exists():
        return load_scenario(candidate)
    known = ", ".join(sorted(p.stem for p in Path(directory).glob("*.yaml")))
    raise ScenarioError(str(name_or_file), "(name)", f"no such scenario; known: {known}")


def display_path(path: str | Path) -> str:
    """A scenario file as results and commands show it, so reports do not depend on where the
    package or the checkout lies: a catalogue file as `scenarios/catalogue/<name>.yaml`, a file
    under the working directory relative to it, any other as given."""
    resolved = Path(path).resolve()
    if resolved.parent == CATALOGUE.resolve():
        return f"{CATALOGUE_SHOWN_AS}/{resolved.name}"
    if resolved.is_relative_to(Path.cwd()):
        return resolved.relative_to(Path.cwd()).as_posix()
    return str(path)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    source = display_path(path)
    return parse_scenario(read_document(path, source, ScenarioError), source=source)


def parse_scenario(data: object, *, source: str = "<scenario>") -> Scenario:
    """Validate a scenario given as parsed YAML (a mapping)."""
    p = Parser(source)
    top = p.mapping("(top level)", data, keys("top"))
    name = p.string("name", top.get("name", Path(source).stem))
    description = p.string("description", top.get("description", name))
    seed = p.integer("seed", top.get("seed", 0), minimum=0)
    overrides = p.settings_overrides(top.get("settings", {}))
    settings = p.settings(overrides)
    tenants, weights, settings = p.tenants(top.get("tenants"), settings)
    traffic = p.traffic(top.get("traffic", {}))
    faults, dedupe = p.n8n(top.get("n8n", {}))
    stripe = p.stripe(top.get("stripe", {}))
    instances = parse_instances(p, top.get("instances", 1))
    crashes = p.crashes(top.get("crashes", []), instances)
    cron = p.cron(top.get("cron", {}))
    dlq = p.dlq(top.get("dlq", {}))
    store_url = p.store(top.get("store", {}))
    settle = p.number("settle", top.get("settle", 3600.0), minimum=0.0)
    invariants = p.invariants(top.get("invariants"))
    comparison = p.comparison(top.get("comparison"))
    end = traffic.start + traffic.duration + settle
    for i, crash in enumerate(crashes):
        if crash.restart > end:
            p.fail(f"crashes[{i}].restart", f"{crash.restart:g} is after the run ends ({end:g})")
    return Scenario(
        name=name,
        file=source,
        description=description,
        seed=seed,
        settings=settings,
        tenants=tenants,
        weights=weights,
        traffic=traffic,
        n8n_faults=faults,
        n8n_dedupe=dedupe,
        stripe=stripe,
        crashes=crashes,
        cron=cron,
        dlq=dlq,
        store_url=store_url,
        settle=settle,
        invariants=invariants,
        comparison=comparison,
        settings_overrides=overrides,
        instances=instances,
    )
