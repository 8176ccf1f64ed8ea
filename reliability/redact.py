"""One redaction for everything the service and the harness write: logs, errors, results, reports.

`Redactor(secrets)(text)` replaces with `[REDACTED]`:

- the password of a URL's user-info (`postgresql://user:pw@host` -> `user:[REDACTED]@host`);
- the value of every `key=value` pair whose key looks secret (`secret`, `token`, `password`,
  `api_key`, ...) after percent-decoding the key, so `s%65cret=` counts; a value runs to the next
  `&`, whitespace, `#` or quote, so a `;` inside it (which the cron check keeps) is redacted too;
- the value after a command-line flag that looks secret (`--secret X`, `--admin-token=X`);
- `Authorization` values and bearer tokens;
- every configured secret value wherever it appears, also percent-encoded (any mix of literal and
  `%XX` characters, either hex case, `+` for a space).

Over-redaction is the accepted cost: a harmless value under a secret-looking key is hidden too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["REDACTED", "Redactor", "looks_secret", "redact", "redact_argv"]

REDACTED = "[REDACTED]"

_SECRET_WORDS = (
    "secret",
    "secrets",
    "token",
    "password",
    "passwd",
    "pwd",
    "apikey",
    "key",
    "auth",
    "authorization",
    "credential",
    "credentials",
)
"""A key, variable or flag name is secret when one of its words (split at anything but letters
and digits) is, or ends with, one of these: `CRON_SECRET`, `access_token`, `clientSecret`, but
not `secretary`."""

_NOT_SECRET_SUFFIXES = ("-file", "_file", "-header", "_header")
"""A flag or key naming where a secret lives (`--secret-file`) is not the secret itself."""

_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s\"'<>]*)@")
_PAIR = re.compile(r"(?P<key>(?<![\w%.+-])[\w%.+-]+)=(?P<value>[^&\s#\"'<>]*)")
_FLAG = re.compile(r"(?P<flag>(?<!\S)--?[A-Za-z][\w-]*)(?P<sep>=|\s+)(?P<value>[^\s\"']+)")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*)([\"']?)[^\"'\r\n,}]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?!\[REDACTED\])[^\s\"',}]+")


def looks_secret(name: str) -> bool:
    """Whether a key, variable or flag name (percent-encoded or not) names a secret value."""
    lowered = unquote_plus(name).lower().lstrip("-")
    if lowered.endswith(_NOT_SECRET_SUFFIXES):
        return False
    words = _WORD_SPLIT.split(lowered.replace("api_key", "apikey").replace("api-key", "apikey"))
    return any(w.endswith(_SECRET_WORDS) for w in words if w)


def _encoded_pattern(secret: str) -> str:
    """A regex matching `secret` with any of its characters percent-encoded (or `+` for ' ')."""
    parts: list[str] = []
    for ch in secret:
        options = [re.escape(ch)]
        encoded = "".join(
            "%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in f"{b:02X}")
            for b in ch.encode("utf-8", "surrogatepass")
        )
        options.append(encoded)
        if ch == " ":
            options.append(r"\+")
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


def _userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match.group("info").partition(":")
    if not sep:
        return match.group(0)
    return f"{match.group('scheme')}{user}:{REDACTED}@"


def _pair(match: re.Match[str]) -> str:
    key, value = match.group("key"), match.group("value")
    if not value:
        return match.group(0)
    if looks_secret(key):
        return f"{key}={REDACTED}"
    if ";" not in value:
        return match.group(0)
    # `a=1;token=x`: some parsers split on ';' too, so each part is judged as a pair of its own.
    head, _, rest = value.partition(";")
    return f"{key}={head};" + ";".join(_PAIR.sub(_pair, part) for part in rest.split(";"))


def _flag(match: re.Match[str]) -> str:
    if not looks_secret(match.group("flag")) or match.group("value").startswith("-"):
        return match.group(0)
    return f"{match.group('flag')}{match.group('sep')}{REDACTED}"


class Redactor:
    """Scrubs text of secret-looking values and of the configured `secrets` (see the module)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is removed whole.
        known = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._secrets = re.compile("|".join(_encoded_pattern(s) for s in known)) if known else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        text = _USERINFO.sub(_userinfo, text)
        text = _PAIR.sub(_pair, text)
        text = _FLAG.sub(_flag, text)
        text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)

    def value(self, value: Any) -> Any:
        """Redact strings (also inside lists, tuples and dicts); leave other values alone."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, tuple | list):
            return type(value)(self.value(v) for v in value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def argv(self, argv: Sequence[str]) -> list[str]:
        """A command line with secret values replaced: `--secret X` and `--secret=X` alike."""
        out: list[str] = []
        hide_next = False
        for arg in argv:
            if hide_next and not arg.startswith("-"):
                out.append(REDACTED)
                hide_next = False
                continue
            hide_next = arg.startswith("-") and "=" not in arg and looks_secret(arg)
            out.append(self(arg))
        return out


_PLAIN = Redactor()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` scrubbed by a `Redactor` of `secrets` (see the module docstring)."""
    return (Redactor(secrets) if secrets else _PLAIN)(text)


def redact_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """A command line scrubbed by a `Redactor` of `secrets`, flag values included."""
    return (Redactor(secrets) if secrets else _PLAIN).argv(argv)
