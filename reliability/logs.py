"""Structured logs: one JSON object per line, and no secret ever in one.

`JsonFormatter` writes each record as a JSON object; `RedactingFilter` scrubs a record before any
formatter sees it with the one `reliability.redact.Redactor` (secret-like query values, URL
passwords, `Authorization` values, every configured secret value wherever it appears). Both
plug into uvicorn through `uvicorn_log_config()`, so its access log (which prints the path with
the query string) never carries the cron secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from reliability.redact import REDACTED, Redactor

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "Redactor",
    "log_fields",
    "uvicorn_log_config",
]

_FIELDS = "fields"
_SEEN_MAX = 4096
_ACCESS_LOGGER = "uvicorn.access"


def log_fields(**fields: Any) -> dict[str, Any]:
    """`extra=` for a log call: the fields land as keys of the JSON line (None ones dropped)."""
    return {_FIELDS: {k: v for k, v in fields.items() if v is not None}}


class RedactingFilter(logging.Filter):
    """Scrubs each record in place (message, arguments, structured fields); never drops one.

    Attach it to handlers (not loggers) so records propagated from child loggers pass it too.
    """

    def __init__(self, secrets: Iterable[str] = (), name: str = "") -> None:
        super().__init__(name)
        self._redact = Redactor(secrets)
        self._seen: dict[str, str] = {}
        """Access-log values already scrubbed (paths, clients, methods repeat from line to
        line): the same answer without running every pattern again."""

    def _access_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            return self._redact.value(value)
        scrubbed = self._seen.get(value)
        if scrubbed is None:
            scrubbed = self._redact(value)
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen[value] = scrubbed
        return scrubbed

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == _ACCESS_LOGGER and isinstance(args, tuple):
            # uvicorn's access formatters unpack the arguments: keep their shape.
            record.args = tuple(self._access_value(a) for a in args)
        else:
            # Render first, then scrub: a pattern may span the format string and its arguments.
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = f"{record.msg!s} {args!r}"
            record.msg = self._redact(message)
            record.args = None
        fields = getattr(record, _FIELDS, None)
        if isinstance(fields, dict):
            setattr(record, _FIELDS, self._redact.value(fields))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's fields.

    uvicorn's access records become `client`, `method`, `path`, `http_version`, `status` fields.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        args = record.args
        if record.name == _ACCESS_LOGGER and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            line["msg"] = f"{method} {path} {status}"
            line.update(
                client=client, method=method, path=path, http_version=version, status=status
            )
        else:
            line["msg"] = record.getMessage()
        fields = getattr(record, _FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))


def uvicorn_log_config(
    *,
    secrets: Iterable[str] = (),
    level: str = "INFO",
    stream: IO[str] | None = None,
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn and `reliability`: JSON lines, redacted.

    Pass it as `uvicorn.run(..., log_config=...)`. `secrets` are values to scrub wherever they
    appear (the cron secret, the admin token, API keys, signing secrets).
    """
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["redact"],
        # A string, not the object, so the config pickles into uvicorn's worker processes.
        "stream": stream if stream is not None else "ext://sys.stderr",
    }
    loggers = {
        name: {"handlers": ["json"], "level": level.upper(), "propagate": False}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "reliability")
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactingFilter, "secrets": list(secrets)}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": loggers,
    }
