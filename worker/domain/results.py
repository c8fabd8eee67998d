"""Reading one results line into the fields batchline stores.

Data from outside is checked, not trusted: a line that is not JSON, or names
no custom_id, cannot be tied to a request; a line with an unknown result type
or a message missing its fields is recorded as 'malformed' for its request.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

KNOWN_TYPES = frozenset({"succeeded", "errored", "canceled", "expired"})


class UnreadableLine(ValueError):
    """The line names no request; it is counted, never crashes ingestion."""


class ParsedResult(NamedTuple):
    # A NamedTuple, not a dataclass: one is made per result line, on the hot path.
    custom_id: str
    result_type: str
    body: dict[str, Any]
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
    if not isinstance(result, dict) or result.get("type") not in KNOWN_TYPES:
        kind = result.get("type") if isinstance(result, dict) else type(result).__name__
        return _malformed(custom_id, f"unknown result type {kind!r:.60}", result)
    kind = result["type"]
    if kind == "succeeded":
        return _succeeded(custom_id, result)
    if kind == "errored":
        return _errored(custom_id, result)
    return ParsedResult(custom_id, kind, result)


def _succeeded(custom_id: str, result: dict[str, Any]) -> ParsedResult:
    message = result.get("message")
    if not isinstance(message, dict):
        return _malformed(custom_id, "succeeded result without a message", result)
    usage = message.get("usage")
    if not ("id" in message and "content" in message and "model" in message) or not isinstance(
        usage, dict
    ):
        missing = [k for k in ("id", "content", "model") if k not in message]
        return _malformed(custom_id, f"message missing {missing or ['usage']}", result)
    try:
        tokens = _usage(usage)
    except (TypeError, ValueError):
        return _malformed(custom_id, "usage is not a set of token counts", result)
    return ParsedResult(custom_id, "succeeded", result, model=str(message["model"]), usage=tokens)


def _errored(custom_id: str, result: dict[str, Any]) -> ParsedResult:
    outer = result.get("error")
    inner = outer.get("error") if isinstance(outer, dict) else None
    if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
        return _malformed(custom_id, "errored result without an error type", result)
    return ParsedResult(
        custom_id,
        "errored",
        result,
        error_type=inner["type"],
        error_message=str(inner.get("message", ""))[:2000],
    )


def _malformed(custom_id: str, why: str, result: object) -> ParsedResult:
    body = result if isinstance(result, dict) else {"value": result}
    return ParsedResult(
        custom_id, "malformed", body, error_type="malformed_result", error_message=why
    )


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    creation = usage.get("cache_creation") or {}
    write_total = int(usage.get("cache_creation_input_tokens") or 0)
    write_1h = int(creation.get("ephemeral_1h_input_tokens") or 0)
    # Without the split, every cache write is taken as a 5-minute one.
    write_5m = int(creation.get("ephemeral_5m_input_tokens") or (write_total - write_1h))
    return {
        "input_tokens": int(usage["input_tokens"]),
        "output_tokens": int(usage["output_tokens"]),
        "cache_write_5m_tokens": max(write_5m, 0),
        "cache_write_1h_tokens": write_1h,
        "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
    }
