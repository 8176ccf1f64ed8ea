"""The service's OpenAPI 3.1 document, written by hand so every answer and code is spelled out.

`openapi_document()` returns a fresh dict; the app serves it at `/openapi.json` and the tests
fuzz the live server against it with schemathesis.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from reliability.dispatch import DrainReport
from reliability.errors import ErrorCode

__all__ = ["ERROR_CODES", "openapi_document"]

ERROR_CODES: dict[str, str] = {
    "NO_SECRET_SET": "CRON_SECRET is not configured (500, the seed's contract).",
    "FORBIDDEN": "Wrong or missing cron secret, or wrong admin token (403).",
    "UNAUTHORIZED": "No `Authorization: Bearer` admin token (401).",
    "ADMIN_DISABLED": "RELIABILITY_ADMIN_TOKEN is not configured: the admin API is off (503).",
    "MALFORMED_HEADER": "Stripe-Signature missing or unparsable, or without a v1 entry (400).",
    "BAD_SIGNATURE": "No v1 signature matches the body under the tenant's secrets (400).",
    "STALE_TIMESTAMP": "Signature timestamp older than 300 s or over 300 s in the future (400).",
    "INVALID_JSON": "The signed body is not a Stripe event object (400).",
    "UNKNOWN_TENANT": (
        "No such tenant, or the tenant has no signing secret (400). Only with "
        "RELIABILITY_REVEAL_UNKNOWN_TENANT=true: by default such a request is answered exactly "
        "as a wrong signature is (MALFORMED_HEADER or BAD_SIGNATURE), so tenant ids cannot be "
        "enumerated; logs and metrics carry UNKNOWN_TENANT."
    ),
    "REQUEST_TIMEOUT": (
        "The request headers (RELIABILITY_HEADER_TIMEOUT_MS) or body "
        "(RELIABILITY_BODY_TIMEOUT_MS) did not arrive in time; the connection is closed (408)."
    ),
    "BUSY": "The connection cap is reached and no idle connection can give way (503).",
    "PAYLOAD_TOO_LARGE": "The body is over RELIABILITY_BODY_LIMIT_BYTES (413).",
    "STORE_UNAVAILABLE": "The database did not answer; nothing was written (503).",
    "INVALID_PARAMETER": "A query parameter is missing its expected form (400).",
    "INVALID_CURSOR": "The pagination cursor is not one this API issued (400).",
    "NOT_FOUND": "No such route, or no such unexpired DLQ entry (404).",
    "METHOD_NOT_ALLOWED": "The route exists for other methods (405).",
    "INTERNAL_ERROR": "An unexpected error (500); the logs say more.",
}
"""Every `code` an error answer can carry."""


def _error(*codes: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ok", "code"],
        "properties": {
            "ok": {"const": False},
            "code": {"type": "string", "enum": list(codes)},
            "message": {"type": "string"},
        },
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str, *codes: str) -> dict[str, Any]:
    return _json(_error(*codes), description)


def _ok(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    props = {"ok": {"const": True}, **properties}
    return {
        "type": "object",
        "required": ["ok", *(required or list(properties))],
        "properties": props,
    }


_SECRET_QUERY = {
    "name": "secret",
    "in": "query",
    "required": False,
    "description": "The cron secret (or send `Authorization: Bearer <secret>`).",
    "schema": {"type": "string"},
}
_CRON_ERRORS = {
    "403": _err("Wrong or missing secret.", "FORBIDDEN"),
    "500": _err("CRON_SECRET is not set.", "NO_SECRET_SET"),
}
_ADMIN_ERRORS = {
    "401": {
        **_err("No bearer token.", "UNAUTHORIZED"),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "403": _err("Wrong token.", "FORBIDDEN"),
    "503": _err(
        "Admin API disabled, or the store is unavailable.", "ADMIN_DISABLED", "STORE_UNAVAILABLE"
    ),
}
_FILTER_PARAMS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }
    for name, description, schema in (
        ("tenant_id", "Only this tenant.", {"type": "string", "minLength": 1, "maxLength": 200}),
        ("workflow", "Only this workflow.", {"type": "string", "minLength": 1, "maxLength": 200}),
        (
            "error_code",
            "Only this error code.",
            {"type": "string", "enum": [c.value for c in ErrorCode]},
        ),
    )
]
_DLQ_ID = {
    "name": "dlq_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_ATTEMPT_ERROR = {
    "type": "object",
    "required": ["attempt", "at", "code", "message"],
    "properties": {
        "attempt": {"type": "integer"},
        "at": _TIMESTAMP,
        "code": {"type": "string"},
        "message": {"type": "string"},
    },
}
_DLQ_ENTRY = {
    "type": "object",
    "required": [
        "id",
        "tenant_id",
        "workflow_name",
        "payload",
        "error_message",
        "error_code",
        "retry_count",
        "created_at",
        "expires_at",
        "idempotency_key",
        "source_outbox_id",
        "original_created_at",
        "event_id",
        "errors",
    ],
    "properties": {
        "id": {"type": "string"},
        "tenant_id": {"type": "string"},
        "workflow_name": {"type": "string"},
        "payload": {"type": "object"},
        "error_message": {"type": ["string", "null"]},
        "error_code": {"type": "string", "enum": [c.value for c in ErrorCode]},
        "retry_count": {"type": "integer", "minimum": 0},
        "created_at": _TIMESTAMP,
        "expires_at": _TIMESTAMP,
        "idempotency_key": {"type": "string"},
        "source_outbox_id": {"type": ["string", "null"]},
        "original_created_at": {"type": ["string", "null"], "format": "date-time"},
        "event_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": _ATTEMPT_ERROR},
    },
}
_COUNT = {"type": "integer", "minimum": 0}
_BEARER: list[dict[str, list[str]]] = [{"adminToken": []}]
_DRAIN_FIELDS = tuple(f.name for f in fields(DrainReport))


def openapi_document() -> dict[str, Any]:
    """The complete document: every route, every status, every error body and its codes."""
    paths: dict[str, Any] = {
        "/api/weekly-recap": {
            "get": {
                "summary": "Light cron reachability check (no database, no work).",
                "operationId": "weeklyRecap",
                "tags": ["cron"],
                "parameters": [_SECRET_QUERY],
                "responses": {
                    "200": _json(
                        _ok({"message": {"const": "cron reachable"}}), "The secret matched."
                    ),
                    **_CRON_ERRORS,
                },
            }
        },
        "/api/cron/drain": {
            "post": {
                "summary": "Deliver due outbox rows and purge expired dead letters (bounded).",
                "operationId": "cronDrain",
                "tags": ["cron"],
                "parameters": [
                    _SECRET_QUERY,
                    {
                        "name": "batch",
                        "in": "query",
                        "required": False,
                        "description": "Rows claimed per round (default 100).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "budget_seconds",
                        "in": "query",
                        "required": False,
                        "description": "Time budget in seconds (default 10).",
                        "schema": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": 60,
                        },
                    },
                ],
                "responses": {
                    "200": _json(
                        _ok(dict.fromkeys(_DRAIN_FIELDS, _COUNT)),
                        "What the drain did.",
                    ),
                    "400": _err("A bad batch or budget.", "INVALID_PARAMETER"),
                    **_CRON_ERRORS,
                    "503": _err("The store is unavailable.", "STORE_UNAVAILABLE"),
                },
            }
        },
        "/api/stripe/webhook/{tenant_id}": {
            "post": {
                "summary": "Stripe webhook intake: verify, dedupe, enqueue; answers before n8n.",
                "operationId": "stripeWebhook",
                "tags": ["stripe"],
                "parameters": [
                    {
                        "name": "tenant_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {
                        "name": "Stripe-Signature",
                        "in": "header",
                        "required": False,
                        "description": "`t=<unix>,v1=<hex>[,v1=<hex>...]` (v0 ignored).",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "description": "The Stripe event, signed byte for byte.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "200": _json(
                        _ok(
                            {
                                "duplicate": {"type": "boolean"},
                                "deliveries": _COUNT,
                            },
                            ["duplicate"],
                        ),
                        "Accepted (`duplicate: false`, deliveries enqueued) or a duplicate "
                        "(`duplicate: true`, nothing dispatched).",
                    ),
                    "400": _err(
                        "Refused; nothing stored.",
                        "MALFORMED_HEADER",
                        "BAD_SIGNATURE",
                        "STALE_TIMESTAMP",
                        "INVALID_JSON",
                        "UNKNOWN_TENANT",
                    ),
                    "404": _err("No such route.", "NOT_FOUND"),
                    "408": _err("The body did not arrive in time.", "REQUEST_TIMEOUT"),
                    "413": _err("Body over the limit.", "PAYLOAD_TOO_LARGE"),
                    "503": _err(
                        "The store is unavailable; Stripe will retry.", "STORE_UNAVAILABLE"
                    ),
                },
            }
        },
        "/api/admin/dlq": {
            "get": {
                "summary": "List unexpired dead letters, newest first (keyset pagination).",
                "operationId": "dlqList",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [
                    *_FILTER_PARAMS,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "`next_cursor` of the previous page (opaque).",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(
                        _ok(
                            {
                                "entries": {"type": "array", "items": _DLQ_ENTRY},
                                "next_cursor": {"type": ["string", "null"]},
                            }
                        ),
                        "One page.",
                    ),
                    "400": _err("A bad filter or cursor.", "INVALID_PARAMETER", "INVALID_CURSOR"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/api/admin/dlq/retry": {
            "post": {
                "summary": "Retry every unexpired dead letter matching the filters (up to limit).",
                "operationId": "dlqRetryMany",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [
                    *_FILTER_PARAMS,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {
                    "200": _json(
                        _ok(
                            {
                                "retried": _COUNT,
                                "skipped": _COUNT,
                                "outbox_ids": {"type": "array", "items": {"type": "string"}},
                            }
                        ),
                        "Taken back into the outbox; delivery starts after the answer.",
                    ),
                    "400": _err("A bad filter.", "INVALID_PARAMETER"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/api/admin/dlq/purge": {
            "post": {
                "summary": "Delete expired dead letters now.",
                "operationId": "dlqPurge",
                "tags": ["admin"],
                "security": _BEARER,
                "responses": {
                    "200": _json(_ok({"purged": _COUNT}), "How many were deleted."),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/api/admin/dlq/{dlq_id}": {
            "get": {
                "summary": "One unexpired dead letter.",
                "operationId": "dlqGet",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [_DLQ_ID],
                "responses": {
                    "200": _json(_ok({"entry": _DLQ_ENTRY}), "The entry."),
                    "404": _err("No such unexpired entry.", "NOT_FOUND"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/api/admin/dlq/{dlq_id}/retry": {
            "post": {
                "summary": "Take one dead letter back into the outbox and deliver it.",
                "operationId": "dlqRetry",
                "tags": ["admin"],
                "security": _BEARER,
                "parameters": [_DLQ_ID],
                "responses": {
                    "200": _json(_ok({"outbox_id": {"type": "string"}}), "Re-enqueued."),
                    "404": _err("Gone, expired, or another retry won.", "NOT_FOUND"),
                    **_ADMIN_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics.",
                "operationId": "metrics",
                "tags": ["ops"],
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness (no I/O).",
                "operationId": "healthz",
                "tags": ["ops"],
                "responses": {"200": _json(_ok({}), "The process answers.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the database answers.",
                "operationId": "readyz",
                "tags": ["ops"],
                "responses": {
                    "200": _json(_ok({}), "Ready."),
                    "503": _err("The database did not answer.", "STORE_UNAVAILABLE"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "operationId": "openapi",
                "tags": ["ops"],
                "responses": {
                    "200": _json({"type": "object"}, "The OpenAPI document."),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "reliability reference service",
            "version": "0.1.0",
            "description": (
                "Cron check, Stripe webhook intake, outbox drain, DLQ admin and metrics. "
                'Every error answer is JSON `{"ok": false, "code": ..., "message"?: ...}`; '
                "codes: " + ", ".join(ERROR_CODES) + "."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "RELIABILITY_ADMIN_TOKEN",
                }
            },
            "schemas": {"Error": _error(*ERROR_CODES), "DlqEntry": _DLQ_ENTRY},
        },
    }
