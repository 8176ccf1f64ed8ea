"""Request bodies as n8n reads them: content encodings, charsets, and a parser per content type.

n8n (`packages/cli/src/middlewares/body-parser.ts` and `webhooks/webhook-helpers.ts`) reads the
raw body through gunzip (`Content-Encoding: gzip`) or inflate (`deflate`), decodes it with the
`charset` of `Content-Type` (utf-8 by default), then parses it by media type: `application/json`
(`JSON.parse`), `*/xml` and `*+xml` (xml2js), `application/x-www-form-urlencoded` (Node's
querystring, which never fails) and `text/plain` (the text). A Webhook node v2 leaves any other
type unparsed (`body` is `{}`; the fake does not model binary data). A body that fails to parse
answers 422 `{"code":422,"message":"Failed to parse request body","hint":<the parser's
message>}` before the workflow starts; JSON's hint is V8's wording (`json_error`). A body that
fails to decompress answers 500 `There was a problem executing the workflow`.
"""

from __future__ import annotations

import json
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["BodyError", "ParsedBody", "json_error", "parse_body"]

_NODE_ENCODINGS: Final = {
    "utf8": "utf-8", "utf-8": "utf-8", "utf16le": "utf-16-le", "utf-16le": "utf-16-le",
    "ucs2": "utf-16-le", "ucs-2": "utf-16-le", "latin1": "latin-1", "binary": "latin-1",
    "ascii": "latin-1",
}  # fmt: skip
"""The charsets Node's `Buffer.toString` knows (ascii decodes as latin1 there too)."""


@dataclass(frozen=True, slots=True)
class BodyError(Exception):
    """The body could not be read: n8n answers `status` with this message (and hint)."""

    status: int
    message: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedBody:
    value: Any
    content_type: str | None


def media_type(header: str | None) -> tuple[str | None, str]:
    """(lower-case media type, charset) of a Content-Type header; charset utf-8 by default."""
    if not header:
        return None, "utf-8"
    kind, *params = header.split(";")
    charset = "utf-8"
    for param in params:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.strip().lower() or None, charset


def _parsable(kind: str | None) -> bool:
    if kind is None:
        return False
    return (
        kind.startswith(("application/json", "text/plain", "application/x-www-form-urlencoded"))
        or kind.endswith(("/xml", "+xml"))
        or kind == "multipart/form-data"
    )


def parse_body(
    raw: bytes,
    content_type: str | None,
    encoding: str | None,
    utf8_json: Callable[[], tuple[bool, Any]] | None = None,
) -> ParsedBody:
    """The `body` n8n's Webhook node puts in its item, or `BodyError`; `utf8_json` may give
    the raw body already parsed as UTF-8 JSON (the common case, parsed once per request)."""
    kind, charset = media_type(content_type)
    plain = not encoding and charset in ("utf-8", "utf8")
    if kind == "application/json" and raw and plain and utf8_json is not None:
        ok, value = utf8_json()
        if ok:
            return ParsedBody(value, kind)
    if not _parsable(kind):
        return ParsedBody({}, kind)
    raw = _decompress(raw, (encoding or "").strip().lower())
    if not raw:
        return ParsedBody({}, kind)
    if kind == "multipart/form-data":
        return ParsedBody(_multipart(raw, content_type or ""), kind)
    try:
        text = raw.decode(_NODE_ENCODINGS[charset], "replace")
    except KeyError:
        raise _unprocessable(f"Unknown encoding: {charset}") from None
    if kind == "application/json":
        try:
            return ParsedBody(json.loads(text, parse_constant=_no_constant), kind)
        except RecursionError:  # nested deeper than Python's stack: V8's stack gives out too
            raise _unprocessable("Maximum call stack size exceeded") from None
        except ValueError:
            raise _unprocessable(json_error(text)) from None
    if kind is not None and kind.endswith(("/xml", "+xml")):
        return ParsedBody(_xml(text), kind)
    if kind == "application/x-www-form-urlencoded":
        return ParsedBody(_form(text), kind)
    if kind == "text/plain":
        return ParsedBody(text, kind)
    return ParsedBody({}, kind)  # e.g. application/json-patch: parsable prefix, no parser


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python takes NaN and Infinity, JSON.parse does not


def _unprocessable(hint: str) -> BodyError:
    return BodyError(422, "Failed to parse request body", hint)


def _decompress(raw: bytes, encoding: str) -> bytes:
    if encoding not in ("gzip", "deflate"):
        return raw
    try:
        return zlib.decompress(raw, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    except zlib.error:
        # zlib's "incorrect header check" escapes n8n's parser and becomes its generic 500.
        raise BodyError(500, "There was a problem executing the workflow") from None


def _form(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True)[:1000]:
        if name in out:
            before = out[name]
            out[name] = [*before, value] if isinstance(before, list) else [before, value]
        else:
            out[name] = value
    return out


def _xml(text: str) -> Any:
    try:
        root = ET.fromstring(text)  # noqa: S314 - a test double parsing its own test input
    except ET.ParseError as exc:
        raise _unprocessable(str(exc)) from None
    return {_tag(root): _element(root)}


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1].lower()  # xml2js: normalizeTags


def _element(element: ET.Element) -> Any:
    """xml2js with explicitArray false: text, or an object of children, `$` attributes, `_`."""
    text = " ".join((element.text or "").split())
    children: dict[str, Any] = {}
    for child in element:
        value = _element(child)
        tag = _tag(child)
        if tag in children:
            before = children[tag]
            children[tag] = [*before, value] if isinstance(before, list) else [before, value]
        else:
            children[tag] = value
    if not children and not element.attrib:
        return text
    out: dict[str, Any] = {}
    if element.attrib:
        out["$"] = dict(element.attrib)
    if text:
        out["_"] = text
    out.update(children)
    return out


def _multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """Text fields of a multipart/form-data body (files are not modelled)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart() or message.defects:
        raise BodyError(500, "There was a problem executing the workflow")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and part.get_filename() is None:
            payload = part.get_payload(decode=True)
            fields[name] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return fields


# --- V8's JSON.parse messages -----------------------------------------------------------------


def json_error(text: str) -> str:
    """The message V8's `JSON.parse(text)` throws for invalid `text`."""
    if text.strip() in ("NaN", "Infinity", "undefined", "[object Object]"):
        return f'"{text}" is not valid JSON'
    try:
        _Scanner(text).document()
    except _Bad as bad:
        return bad.message
    return "Unexpected end of JSON input"  # Python refused what V8 would take: say the least


class _Bad(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class _Scanner:
    """Walks JSON as V8's parser does, to fail at the same place with the same words."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def fail(self, expected: str | None = None) -> _Bad:
        """V8's message for the token at `pos`: what the parser expected there when it says,
        else the end of input, a number, a string, or the character with its context."""
        text, pos = self.text, self.pos
        if expected is not None:
            return self._at(expected)
        if pos >= len(text):
            return _Bad("Unexpected end of JSON input")
        char = text[pos]
        if char == '"':
            return self._at("Unexpected string")
        if char.isdigit() or char == "-":
            return self._at("Unexpected number")
        return _Bad(f"Unexpected token '{char}', {_context(text, pos)} is not valid JSON")

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n\r":
            self.pos += 1

    def document(self) -> None:
        self.ws()
        self.value()
        self.ws()
        if self.pos < len(self.text):
            raise self._at("Unexpected non-whitespace character after JSON", "")

    def _at(self, message: str, within: str = " in JSON") -> _Bad:
        text, pos = self.text, self.pos
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return _Bad(f"{message}{within} at position {pos} (line {line} column {column})")

    def value(self) -> None:
        self.ws()
        text = self.text
        char = text[self.pos] if self.pos < len(text) else ""
        if char == "{":
            self.members("{", "}", "Expected ',' or '}' after property value")
        elif char == "[":
            self.members("[", "]", "Expected ',' or ']' after array element")
        elif char == '"':
            self.string()
        elif char == "-" or char.isdigit():
            self.number()
        else:
            for word in ("true", "false", "null"):
                if word[0] == char:  # V8 fails at the first character that differs
                    for expected in word:
                        if text[self.pos : self.pos + 1] != expected:
                            raise self.fail()
                        self.pos += 1
                    return
            raise self.fail()

    def members(self, open_: str, close: str, after: str) -> None:
        self.pos += 1
        self.ws()
        if self.text.startswith(close, self.pos):
            self.pos += 1
            return
        first = True
        while True:
            self.ws()
            if open_ == "{":
                if not self.text.startswith('"', self.pos):
                    raise self.fail(
                        "Expected property name or '}'"
                        if first
                        else "Expected double-quoted property name"
                    )
                self.string()
                self.ws()
                if not self.text.startswith(":", self.pos):
                    raise self.fail("Expected ':' after property name")
                self.pos += 1
            self.value()
            self.ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                first = False
                continue
            if self.text.startswith(close, self.pos):
                self.pos += 1
                return
            raise self.fail(after)

    def string(self) -> None:
        self.pos += 1
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return
            if char < " ":
                raise self._at("Bad control character in string literal")
            if char == "\\":
                self.pos += 1
                escape = text[self.pos : self.pos + 1]
                if escape == "u":
                    digits = text[self.pos + 1 : self.pos + 5]
                    if len(digits) < 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                        raise self._at("Bad Unicode escape")
                    self.pos += 4
                elif escape not in ('"', "\\", "/", "b", "f", "n", "r", "t"):
                    raise self._at("Bad escaped character")
            self.pos += 1
        raise self._at("Unterminated string")

    def number(self) -> None:
        text = self.text
        if text.startswith("-", self.pos):
            self.pos += 1
            if not text[self.pos : self.pos + 1].isdigit():
                raise self._at("No number after minus sign")
        while text[self.pos : self.pos + 1].isdigit():
            self.pos += 1
        if text.startswith(".", self.pos):
            self.pos += 1
            if not text[self.pos : self.pos + 1].isdigit():
                raise self._at("Unterminated fractional number")
            while text[self.pos : self.pos + 1].isdigit():
                self.pos += 1
        if text[self.pos : self.pos + 1] in ("e", "E"):
            self.pos += 1
            if text[self.pos : self.pos + 1] in ("+", "-"):
                self.pos += 1
            if not text[self.pos : self.pos + 1].isdigit():
                raise self._at("Exponent part is missing a number")
            while text[self.pos : self.pos + 1].isdigit():
                self.pos += 1


def _context(text: str, pos: int, size: int = 10) -> str:
    """V8's excerpt of the source around an unexpected token."""
    if len(text) < 2 * size + 1:
        return f'"{text}"'
    start, end = max(0, pos - size), min(len(text), pos + size)
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(text) else ""
    return f'{prefix}"{text[start:end]}"{suffix}'
