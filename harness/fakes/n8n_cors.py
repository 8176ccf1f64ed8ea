"""CORS on n8n's webhooks, and Express's page for a path no route takes.

n8n's webhook handler (`packages/cli/src/webhooks/webhook-request-handler.ts`) refuses methods
outside DELETE, GET, HEAD, PATCH, POST, PUT and OPTIONS with a 500. When the request carries an
`Origin` header it adds `Access-Control-Allow-Methods: OPTIONS, <the path's methods>` and, for
the method asked for (`Access-Control-Request-Method` on a preflight), an
`Access-Control-Allow-Origin` from the Webhook node's `options.allowedOrigins`: the origin
itself when the option is unset, `*` or the origin; else the origin when it is in the
comma-separated list, else the list's first entry. A preflight also gets `Access-Control-Max-Age:
300` and the requested headers back. OPTIONS then answers 204 with no body, whatever the path.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Mapping
from typing import Final

from harness.fakes.n8n_answers import Answer, Headers
from harness.fakes.n8n_export import WebhookSpec

__all__ = ["WEBHOOK_METHODS", "cors_headers", "express_404", "preflight"]

WEBHOOK_METHODS: Final = frozenset({"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"})


def cors_headers(
    origin: str, method: str, requested: str | None, methods: Mapping[str, WebhookSpec]
) -> Headers:
    """The CORS headers n8n sets for a request with `Origin: origin` to a path whose webhooks
    are `methods` (method -> spec); `requested` is a preflight's Access-Control-Request-Method."""
    out: list[tuple[str, str]] = [
        ("Access-Control-Allow-Methods", ", ".join(["OPTIONS", *methods]))
    ]
    wanted = requested if method == "OPTIONS" else method
    spec = methods.get(wanted) if wanted else None
    if spec is not None:
        out.append(("Access-Control-Allow-Origin", _allowed_origin(spec.allowed_origins, origin)))
    return tuple(out)


def _allowed_origin(allowed: str | None, origin: str) -> str:
    if not allowed or allowed == "*" or allowed == origin:
        return origin
    listed = allowed.split(",")  # n8n does not trim the entries
    return origin if origin in listed else listed[0]


def preflight(headers: Headers, requested_headers: str | None) -> Answer:
    """OPTIONS: 204, no body; a preflight with an allowed origin also gets max-age and headers."""
    extra: list[tuple[str, str]] = list(headers)
    if any(name == "Access-Control-Allow-Origin" for name, _ in headers):
        extra.append(("Access-Control-Max-Age", "300"))
        if requested_headers:
            extra.append(("Access-Control-Allow-Headers", requested_headers))
    return Answer(204, tuple(extra), b"")


def express_404(method: str, path: str) -> Answer:
    """Express's final 404 page (`Cannot POST /webhook/`), what n8n leaves unmatched paths to."""
    where = html.escape(urllib.parse.quote(path, safe="/%:@!$&'()*+,;=-._~"))
    body = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Error</title>\n</head>\n<body>\n<pre>Cannot {method} {where}</pre>\n"
        "</body>\n</html>\n"
    )
    headers = (
        ("Content-Security-Policy", "default-src 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Type", "text/html; charset=utf-8"),
    )
    return Answer(404, headers, body.encode())
