"""The scenario format's keys, types, defaults and meanings: one table, two readers.

The parser (`harness.sim.scenario_parser`) takes each section's allowed keys from `SECTIONS`;
`scenario_schema()` turns the same table into the JSON Schema that `reliability-harness schema
scenario` prints and `docs/schema/scenario.schema.json` holds, so editors (yaml-language-server)
validate and complete scenario files with the parser's own vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harness.fakes.fault_schema import fault_profile_parts
from harness.jsonschema import (
    Field,
    Schema,
    array,
    boolean,
    document,
    enum,
    integer,
    map_of,
    number,
    obj,
    string,
)
from harness.sim.scenario_model import (
    DEFAULT_INVARIANTS,
    EVENT_TYPES,
    INVARIANT_BOUNDS,
    INVARIANTS,
    OUTCOME_BOUNDS,
)
from reliability.backoff import Strategy

__all__ = ["MAX_INSTANCES", "SECTIONS", "SHAPES", "STRATEGIES", "keys", "scenario_schema"]

MAX_INSTANCES: Final = 16
"""The most service instances a scenario may run."""
SHAPES: Final = ("uniform", "poisson", "diurnal")
STRATEGIES: Final = tuple(s.value for s in Strategy)

_SECONDS: Final = number(minimum=0)
_POSITIVE: Final = number(exclusive_minimum=0)
_PROBABILITY: Final = number(minimum=0, maximum=1)
_SPAN: Final = array(number(minimum=0), min_items=2, max_items=2)


def _p(description: str) -> Field:
    return Field(_PROBABILITY, description, 0.0)


def _span(description: str, default: tuple[float, float]) -> Field:
    return Field(_SPAN, f"{description}: [min, max] seconds", list(default))


SECTIONS: Final[Mapping[str, Mapping[str, Field]]] = {
    "top": {
        "name": Field(string(), "The scenario's name (default: the file name)"),
        "description": Field(string(), "What it shows, for people"),
        "seed": Field(integer(minimum=0), "The run's seed: same seed, same trace", 0),
        "settings": Field(
            map_of({"type": ["string", "number", "boolean"]}),
            "Service settings (the N8N_* / RELIABILITY_* variables of the seed's .env)",
        ),
        "tenants": Field(
            array({"$ref": "#/$defs/tenant_group"}, min_items=1),
            "Tenant groups; every group is `count` tenants configured alike",
            required=True,
        ),
        "traffic": Field({"$ref": "#/$defs/traffic"}, "The Stripe events to send"),
        "n8n": Field({"$ref": "#/$defs/n8n"}, "The fake n8n"),
        "stripe": Field({"$ref": "#/$defs/stripe"}, "Stripe delivery faults, per event"),
        "instances": Field(
            integer(minimum=1, maximum=MAX_INSTANCES),
            "Service instances sharing the store (own breakers, quotas, crashes), behind a"
            " round-robin balancer",
            1,
        ),
        "crashes": Field(array({"$ref": "#/$defs/crash"}), "Dispatcher kills and restarts"),
        "cron": Field({"$ref": "#/$defs/cron"}, "The external scheduler calling drain"),
        "dlq": Field({"$ref": "#/$defs/dlq"}, "Manual DLQ retries and TTL probes"),
        "store": Field({"$ref": "#/$defs/store"}, "Where the run's data lives"),
        "settle": Field(_SECONDS, "Simulated seconds of drains after the traffic ends", 3600.0),
        "invariants": Field({"$ref": "#/$defs/invariants"}, "What is checked"),
        "comparison": Field({"$ref": "#/$defs/comparison"}, "Variants run side by side"),
    },
    "tenant_group": {
        "id": Field(string(), "Tenant id, or a template with `{i}` (e.g. `t-{i:03d}`)"),
        "count": Field(integer(minimum=1), "How many tenants", 1),
        "config": Field(
            {"type": "object", "not": {"required": ["tenant_id"]}},
            "The seed's tenant JSON without tenant_id (concurrency_limit, max_retries, ...)",
        ),
        "weight": Field(_POSITIVE, "This group's share of the traffic", 1.0),
    },
    "traffic": {
        "events": Field(integer(minimum=0), "Events over the duration", 100),
        "duration": Field(_POSITIVE, "Simulated seconds the events arrive over", 3600.0),
        "start": Field(_SECONDS, "Simulated second the traffic starts at", 0.0),
        "shape": Field(enum(SHAPES), "Arrival shape", "uniform"),
        "mix": Field(
            map_of(_POSITIVE, keys=enum(EVENT_TYPES)),
            "Event types and their weights (default: all alike)",
        ),
        "bursts": Field(array({"$ref": "#/$defs/burst"}), "Extra events arriving at once"),
    },
    "burst": {
        "at": Field(_SECONDS, "Simulated second", required=True),
        "events": Field(integer(minimum=1), "Extra events", required=True),
        "spread": Field(_SECONDS, "Seconds they spread over", 0.0),
    },
    "n8n": {
        "faults": Field(
            {"$ref": "#/$defs/fault_profile"}, "A fault profile (as in the faults schema)"
        ),
        "dedupe": Field(
            boolean(),
            "Run the sample workflows' Remove Duplicates node (true: as shipped) or switch it "
            "off (false: every execution takes effect)",
            False,
        ),
    },
    "stripe": {
        "duplicates": _p("A second delivery of the event later: deduped"),
        "duplicate_delay": _span("How much later", (1.0, 600.0)),
        "out_of_order": _p("The delivery is held back so later events overtake it"),
        "out_of_order_delay": _span("Held back by", (1.0, 120.0)),
        "replays": _p("The captured request replayed later with its old t: refused"),
        "replay_delay": _span("How much later (after the 300 s tolerance)", (400.0, 3600.0)),
        "resigned_old": _p("The event re-signed later with a fresh t: deduped"),
        "resigned_delay": _span("How much later", (600.0, 86_400.0)),
        "bad_signatures": _p("An extra forged request: refused"),
        "concurrent_duplicates": _p("A burst of identical deliveries at one instant"),
        "burst_copies": Field(integer(minimum=2), "Copies in such a burst", 5),
        "retry_schedule": Field(
            array(_POSITIVE),
            "Stripe's retry delays when we did not answer 2xx, seconds",
            [60.0, 600.0, 3600.0, 10_800.0],
        ),
    },
    "crash": {
        "at": Field(_SECONDS, "Simulated second the dispatcher is killed", required=True),
        "restart": Field(_SECONDS, "Simulated second a fresh one starts", required=True),
        "instance": Field(integer(minimum=1), "Which instance is killed (1 .. instances)", 1),
    },
    "cron": {
        "interval": Field(_POSITIVE, "Seconds between drain calls", 60.0),
        "batch": Field(integer(minimum=1), "Rows per drain", 100),
        "budget": Field(_POSITIVE, "Seconds a drain may take", 10.0),
    },
    "dlq": {
        "retries": Field(array({"$ref": "#/$defs/dlq_retry"}), "Manual retries of entries"),
        "probes": Field(integer(minimum=0), "Dead letters probed at their expiry", 50),
    },
    "dlq_retry": {
        "at": Field(_SECONDS, "Simulated second", required=True),
        "count": Field(integer(minimum=1), "How many of the oldest visible entries", 1),
    },
    "store": {
        "url": Field(
            string(pattern="^(sqlite|postgresql|postgres)://"),
            "sqlite://:memory:, sqlite:///file.db or postgresql://...",
            "sqlite://:memory:",
        ),
    },
    "comparison": {
        "kind": Field(
            enum(["herd", "replay", "aws-occ", "dedupe"]), "What is compared", required=True
        ),
        "strategies": Field(array(enum(STRATEGIES)), "herd: backoff strategies", list(STRATEGIES)),
        "budget": Field(array(boolean()), "herd: retry budget off/on", [False, True]),
        "bucket": Field(_POSITIVE, "herd: seconds per arrivals bucket", 1.0),
        "clients": Field(
            array(integer(minimum=1)), "aws-occ: client counts", list(range(10, 200, 10))
        ),
        "runs": Field(integer(minimum=1), "aws-occ: runs averaged per point", 20),
    },
}
"""Every section of a scenario file and its keys."""


def keys(section: str) -> frozenset[str]:
    """The keys the parser allows in `section`."""
    return frozenset(SECTIONS[section])


def _invariant(name: str) -> Schema:
    if name == "outcome_bounds":
        figures = sorted(OUTCOME_BOUNDS)
        bounds: Schema = obj(
            {b: Field(number(minimum=0), "Bound on the run's figures") for b in figures}
        )
    else:
        own = INVARIANT_BOUNDS.get(name, {})
        bounds = obj({b: Field(number(minimum=0), meaning) for b, meaning in own.items()})
    return {
        "description": f"true or bounds: check {name}; false: do not",
        "anyOf": [{"type": ["boolean", "null"]}, bounds],
    }


def _invariants() -> Schema:
    names = array(enum(INVARIANTS))
    props: dict[str, Any] = {
        "only": {**names, "description": "Check exactly these (instead of the defaults)"},
        "disable": {**names, "description": "Check the defaults except these"},
    }
    props.update({name: _invariant(name) for name in INVARIANTS})
    default = ", ".join(DEFAULT_INVARIANTS)
    return {
        "description": f"Merged over the defaults ({default}); a list means `only`",
        "anyOf": [
            names,
            {"type": "object", "additionalProperties": False, "properties": props},
        ],
    }


def scenario_schema() -> Schema:
    """The scenario file's JSON Schema."""
    defs: dict[str, Schema] = {
        name: obj(fields) for name, fields in SECTIONS.items() if name != "top"
    }
    defs["invariants"] = _invariants()
    profile, profile_defs = fault_profile_parts(prefix="fault_")
    defs["fault_profile"] = profile
    defs.update(profile_defs)
    body = obj(SECTIONS["top"], "A chaos scenario for `reliability-harness chaos --scenario`.")
    return document("reliability-harness scenario", body, defs)
