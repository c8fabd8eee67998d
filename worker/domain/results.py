"""Reading one results line into the fields batchline stores.

Data from outside is checked, not trusted: a line that is not JSON, or names
no custom_id, cannot be tied to a request; a line with an unknown result type
or a message missing its fields is recorded as 'malformed' for its request.

The line itself is kept byte for byte; the fields read from it beside the line
are made storable here (no U+0000, which PostgreSQL text refuses; lengths
within their columns; token counts within an integer column), so that no
reply the API may send can stop its neighbours from being stored.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

KNOWN_TYPES = frozenset({"succeeded", "errored", "canceled", "expired"})
MAX_TOKENS_VALUE = 2**31 - 1  # an INTEGER column
MAX_ERROR_TYPE = 64
MAX_MODEL = 200
MAX_ERROR_MESSAGE = 2000
# Where an over-long line names its request: the API writes custom_id first.
_CUSTOM_ID_AT_START = re.compile(rb'^\s*\{\s*"custom_id"\s*:\s*"([a-zA-Z0-9_-]{1,64})"')


class UnreadableLine(ValueError):
    """The line names no request; it is counted, never crashes ingestion."""


class ParsedResult(NamedTuple):
    # A NamedTuple, not a dataclass: one is made per result line, on the hot path.
    custom_id: str
    result_type: str
    # The API's line exactly as received; None when it is not kept (see parse_overlong).
    line: bytes | None
    error_type: str | None = None
    error_message: str | None = None
    model: str | None = None
    usage: dict[str, int] = {}


def parse_line(line: bytes) -> ParsedResult:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise UnreadableLine(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("custom_id"), str):
        raise UnreadableLine("no custom_id")
    custom_id: str = doc["custom_id"]
    result = doc.get("result")
    # The str test first: an unhashable type (a list) would raise in the set lookup.
    kind = result.get("type") if isinstance(result, dict) else None
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        kind = kind if isinstance(result, dict) else type(result).__name__
        return _malformed(custom_id, storable(f"unknown result type {kind!r:.60}", 200), line)
    assert isinstance(result, dict)
    if kind == "succeeded":
        return _succeeded(custom_id, result, line)
    if kind == "errored":
        return _errored(custom_id, result, line)
    return ParsedResult(custom_id, kind, line)


def parse_overlong(head: bytes, limit: int) -> ParsedResult:
    """A line longer than `limit` bytes, of which only `head` was kept: its request
    (named at the start of the line) fails with the reason; the line is not stored."""
    match = _CUSTOM_ID_AT_START.match(head)
    if match is None:
        raise UnreadableLine(f"line over {limit} bytes naming no custom_id at its start")
    return ParsedResult(
        match.group(1).decode("ascii"),
        "malformed",
        None,
        error_type="result_too_large",
        error_message=f"result line over BATCHLINE_MAX_RESULT_LINE_BYTES ({limit}); not kept",
    )


def refused(parsed: ParsedResult, why: str) -> ParsedResult:
    """The same request's result as a failure, for a row the database would not store."""
    return ParsedResult(
        parsed.custom_id,
        "malformed",
        None,
        error_type="result_refused",
        error_message=storable(f"the database refused this result: {why}", MAX_ERROR_MESSAGE),
    )


def storable(text: str, limit: int) -> str:
    """`text` as a text column holds it: no U+0000, at most `limit` characters."""
    return text.replace("\x00", "\ufffd")[:limit]


def _succeeded(custom_id: str, result: dict[str, Any], line: bytes) -> ParsedResult:
    message = result.get("message")
    if not isinstance(message, dict):
        return _malformed(custom_id, "succeeded result without a message", line)
    usage = message.get("usage")
    if not ("id" in message and "content" in message and "model" in message) or not isinstance(
        usage, dict
    ):
        missing = [k for k in ("id", "content", "model") if k not in message]
        return _malformed(custom_id, f"message missing {missing or ['usage']}", line)
    try:
        tokens = _usage(usage)
    except (TypeError, ValueError, OverflowError):
        return _malformed(custom_id, "usage is not a set of token counts", line)
    model = message["model"]
    if not isinstance(model, str) or len(model) > MAX_MODEL or "\x00" in model:
        return _malformed(custom_id, "message model is not a model name", line)
    return ParsedResult(custom_id, "succeeded", line, model=model, usage=tokens)


def _errored(custom_id: str, result: dict[str, Any], line: bytes) -> ParsedResult:
    outer = result.get("error")
    inner = outer.get("error") if isinstance(outer, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
        return _malformed(custom_id, "errored result without an error type", line)
    return ParsedResult(
        custom_id,
        "errored",
        line,
        error_type=storable(inner["type"], MAX_ERROR_TYPE),
        error_message=storable(str(inner.get("message", "")), MAX_ERROR_MESSAGE),
    )


def _malformed(custom_id: str, why: str, line: bytes) -> ParsedResult:
    return ParsedResult(
        custom_id, "malformed", line, error_type="malformed_result", error_message=why
    )


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    creation = usage.get("cache_creation") or {}
    write_total = int(usage.get("cache_creation_input_tokens") or 0)
    write_1h = int(creation.get("ephemeral_1h_input_tokens") or 0)
    # Without the split, every cache write is taken as a 5-minute one.
    write_5m = int(creation.get("ephemeral_5m_input_tokens") or (write_total - write_1h))
    tokens = {
        "input_tokens": int(usage["input_tokens"]),
        "output_tokens": int(usage["output_tokens"]),
        "cache_write_5m_tokens": max(write_5m, 0),
        "cache_write_1h_tokens": write_1h,
        "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
    }
    if not all(0 <= n <= MAX_TOKENS_VALUE for n in tokens.values()):
        raise ValueError("a token count out of range")
    return tokens


def result_object(line: bytes | None, result_type: str) -> dict[str, Any]:
    """The `result` object of a stored line (for the SDK's types, or a CSV column)."""
    if line is not None:
        doc = orjson.loads(line)
        if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
            return doc["result"]  # type: ignore[no-any-return]
    return {"type": result_type}


def renamed_line(line: bytes, custom_id: str, new_custom_id: str) -> bytes:
    """The stored line with its custom_id replaced (for export under the caller's
    own id), every other byte as the API sent it; re-encoded only when the line
    does not start with that custom_id as the API writes it."""
    match = _CUSTOM_ID_AT_START.match(line)
    if match is not None and match.group(1) == custom_id.encode():
        start, end = match.span(1)
        return line[:start] + orjson.dumps(new_custom_id)[1:-1] + line[end:]
    doc = orjson.loads(line)
    return orjson.dumps({"custom_id": new_custom_id, "result": doc.get("result")})
