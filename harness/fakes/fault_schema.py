"""The JSON Schema of a fault profile (`harness.fakes.faults`: files, markers, `PUT /__faults`).

Written from the parser's rules (`parse_profile`); `tests/test_schemas.py` holds the two
together: every shipped profile validates and parses, and each key the schema names is accepted
by the parser while an unknown key or a wrongly typed value is refused by both.
"""

from __future__ import annotations

from typing import Final

from harness.fakes.faults import CONNECTION_FAULTS
from harness.jsonschema import (
    Field,
    Schema,
    any_of,
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

__all__ = ["fault_profile_parts", "faults_schema"]

_PROBABILITY: Final = number(minimum=0, maximum=1)
_SECONDS: Final = number(minimum=0)
_SCOPE: Final = Field(
    enum(["tenant", "global"]),
    "Count per (workflow path, tenant) or across all calls the rule matches",
    "tenant",
)


def _action() -> Schema:
    return {
        "description": "An HTTP error status (400-599) or a connection fault: "
        + ", ".join(CONNECTION_FAULTS),
        "anyOf": [
            integer(minimum=400, maximum=599),
            {"type": "string", "pattern": "^[45][0-9][0-9]$"},
            enum(CONNECTION_FAULTS),
        ],
    }


def _latency() -> Schema:
    fixed = obj({"fixed": Field(_SECONDS, "Seconds, every call", required=True)})
    uniform = obj(
        {
            "uniform": Field(
                obj(
                    {
                        "min": Field(_SECONDS, "Shortest delay, seconds", required=True),
                        "max": Field(_SECONDS, "Longest delay, seconds", required=True),
                    }
                ),
                "Delays spread evenly between min and max",
                required=True,
            )
        }
    )
    lognormal = obj(
        {
            "lognormal": Field(
                obj(
                    {
                        "median": Field(_SECONDS, "Median delay, seconds", required=True),
                        "sigma": Field(number(minimum=0), "Spread (log scale)", required=True),
                        "max": Field(_SECONDS, "Cap, seconds (default: none)"),
                    }
                ),
                "A long tail: median * exp(sigma * z)",
                required=True,
            )
        }
    )
    return {**any_of(fixed, uniform, lognormal), "description": "Delay before answering"}


def _rule(action_ref: Schema) -> Schema:
    window = obj(
        {
            "start": Field(_SECONDS, "Seconds after the engine started", required=True),
            "end": Field(_SECONDS, "Seconds after the engine started (after start)", required=True),
            "fault": Field(action_ref, "What every call in the window gets", 503),
        }
    )
    flap = obj(
        {
            "up": Field(number(exclusive_minimum=0), "Seconds up", required=True),
            "down": Field(number(exclusive_minimum=0), "Seconds down", required=True),
            "offset": Field(_SECONDS, "Seconds into the cycle at the start", 0.0),
            "fault": Field(action_ref, "What calls get while down", 503),
        }
    )
    rate_limit = obj(
        {
            "rate": Field(number(exclusive_minimum=0), "Tokens per second", required=True),
            "burst": Field(integer(minimum=1), "Bucket depth", 1),
            "scope": _SCOPE,
        }
    )
    fail_first = any_of(
        integer(minimum=0),
        obj(
            {
                "count": Field(integer(minimum=0), "How many calls fail", required=True),
                "fault": Field(action_ref, "What they get", 500),
                "scope": _SCOPE,
            }
        ),
    )
    fields: dict[str, Field] = {
        "path": Field(string(), "Workflow path glob (`weekly-recap`, `*`)", "*"),
        "tenant": Field(string(), "Tenant id glob (from X-Tenant-Id or the body)", "*"),
        "status": Field(
            map_of(_PROBABILITY, keys={"pattern": "^[45][0-9][0-9]$"}),
            "HTTP error statuses and their probabilities",
        ),
        **{
            kind: Field(_PROBABILITY, f"Probability of a `{kind}` connection fault")
            for kind in CONNECTION_FAULTS
        },
        "retry_after": Field(_SECONDS, "Retry-After seconds on 429/503 answers", 1.0),
        "hang_for": Field(number(exclusive_minimum=0), "How long a hang holds, seconds", 600.0),
        "run_before_fault": Field(
            boolean(), "A connection fault strikes after the workflow ran (n8n did the work)", True
        ),
        "latency": Field(_latency(), "Delay before answering"),
        "outages": Field(array(window), "Scheduled outage windows"),
        "flap": Field(flap, "Up/down cycles"),
        "rate_limit": Field(rate_limit, "A token bucket; an empty bucket answers 429"),
        "fail_first": Field(fail_first, "The first N calls fail, then calls pass"),
    }
    return obj(fields, "Faults for the calls whose path and tenant match (first match wins)")


def fault_profile_parts(prefix: str = "") -> tuple[Schema, dict[str, Schema]]:
    """The profile's schema and the `$defs` it refers to, named `<prefix>rule` and
    `<prefix>action` (so another schema can embed them: the scenario's `n8n.faults`)."""
    rule, action = f"{prefix}rule", f"{prefix}action"
    body = obj(
        {
            "seed": Field(integer(), "Seed of the fault draws (default: the fake's seed)"),
            "rules": Field(array({"$ref": f"#/$defs/{rule}"}), "Rules, first match wins", []),
        },
        "A fault profile for the fake n8n: ordered rules, first match wins.",
    )
    return body, {rule: _rule({"$ref": f"#/$defs/{action}"}), action: _action()}


def faults_schema() -> Schema:
    """The fault profile's JSON Schema."""
    body, defs = fault_profile_parts()
    return document("reliability-harness fault profile", body, defs)
