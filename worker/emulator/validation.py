"""What the API checks, and when.

The create envelope is checked at once (a 400 and nothing created); each
request's `params` are checked as the batch is processed, so a bad one comes
back as an `errored` result with `invalid_request_error`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .errors import invalid_request

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")

# The SDK's MessageCreateParamsNonStreaming keys, plus the sampling knobs the
# API reference still lists.
KNOWN_PARAMS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "workspace_id",
        "temperature",
        "top_p",
        "top_k",
    }
)
ROLES = frozenset({"user", "assistant", "system"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})

Params = dict[str, Any]


def parse_create_body(body: bytes | bytearray) -> list[tuple[str, Params]]:
    """The (custom_id, params) pairs of a create body, or an `ApiError` (400)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise invalid_request("The request body must be a JSON object")
    extra = sorted(set(document) - {"requests"})
    if extra:
        raise invalid_request(f"{extra[0]}: Extra inputs are not permitted")
    requests = document.get("requests")
    if not isinstance(requests, list):
        raise invalid_request("requests: Input should be a valid list")
    if not 1 <= len(requests) <= MAX_REQUESTS:
        raise invalid_request(
            f"requests: a batch holds 1 to {MAX_REQUESTS:,} requests, got {len(requests):,}"
        )
    pairs = [_envelope(index, item) for index, item in enumerate(requests)]
    _check_unique(pairs)
    return pairs


def _envelope(index: int, item: object) -> tuple[str, Params]:
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise invalid_request(f"{where}: Input should be a valid dictionary")
    extra = sorted(set(item) - {"custom_id", "params"})
    if extra:
        raise invalid_request(f"{where}.{extra[0]}: Extra inputs are not permitted")
    custom_id, params = item.get("custom_id"), item.get("params")
    if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
        raise invalid_request(
            f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        )
    if not isinstance(params, dict):
        raise invalid_request(f"{where}.params: Input should be a valid dictionary")
    return custom_id, params


def _check_unique(pairs: list[tuple[str, Params]]) -> None:
    seen: set[str] = set()
    for index, (custom_id, _) in enumerate(pairs):
        if custom_id in seen:
            raise invalid_request(
                f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}'; "
                "each custom_id must be unique within a batch"
            )
        seen.add(custom_id)


def params_error(params: Params) -> str | None:
    """Why the API would refuse these Messages params, or None if it would not."""
    extra = sorted(set(params) - KNOWN_PARAMS)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            return f"{name}: Field required"
    for name, check in _CHECKS.items():
        if name in params:
            problem = check(params[name], params)
            if problem:
                return f"{name}{problem}"
    return None


def _model(value: object, _: Params) -> str | None:
    return None if isinstance(value, str) and value else ": Input should be a non-empty string"


def _max_tokens(value: object, _: Params) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return ": Input should be a valid integer"
    return None if value >= 1 else ": Input should be greater than or equal to 1"


def _messages(value: object, _: Params) -> str | None:
    if not isinstance(value, list) or not value:
        return ": Input should be a non-empty list"
    for index, message in enumerate(value):
        problem = _message(message)
        if problem:
            return f".{index}{problem}"
    return None


def _message(message: object) -> str | None:
    if not isinstance(message, dict):
        return ": Input should be a valid dictionary"
    if message.get("role") not in ROLES:
        return ".role: Input should be 'user', 'assistant' or 'system'"
    content = message.get("content")
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return ".content: Input should be a valid string or list of content blocks"
    for index, block in enumerate(content):
        problem = _block(block)
        if problem:
            return f".content.{index}{problem}"
    return None


def _block(block: object) -> str | None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return ": Input should be a content block with a 'type'"
    if block["type"] == "text" and not isinstance(block.get("text"), str):
        return ".text: Field required"
    if block["type"] == "image":
        return _image_source(block.get("source"))
    return None


def _image_source(source: object) -> str | None:
    if not isinstance(source, dict):
        return ".source: Field required"
    if source.get("type") == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            return ".source.media_type: Input should be one of " + ", ".join(sorted(IMAGE_TYPES))
        if not isinstance(source.get("data"), str) or not source["data"]:
            return ".source.data: Field required"
        return None
    if source.get("type") in ("url", "file"):
        return None
    return ".source.type: Input should be 'base64', 'url' or 'file'"


def _stream(value: object, _: Params) -> str | None:
    return None if value is False else ": streaming is not supported in Message Batches"


def _system(value: object, _: Params) -> str | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in value
    ):
        return None
    return ": Input should be a valid string or list of text blocks"


def _stop_sequences(value: object, _: Params) -> str | None:
    if isinstance(value, list) and all(isinstance(s, str) and s for s in value):
        return None
    return ": Input should be a list of non-empty strings"


def _tools(value: object, _: Params) -> str | None:
    if not isinstance(value, list):
        return ": Input should be a valid list"
    for index, tool in enumerate(value):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            return f".{index}.name: Field required"
    return None


def _tool_choice(value: object, params: Params) -> str | None:
    if not isinstance(value, dict) or value.get("type") not in TOOL_CHOICES:
        return ".type: Input should be 'auto', 'any', 'tool' or 'none'"
    if value["type"] in ("any", "tool") and not params.get("tools"):
        return ": tool_choice requires tools"
    if value["type"] == "tool":
        names = {t.get("name") for t in params.get("tools") or [] if isinstance(t, dict)}
        if value.get("name") not in names:
            return ".name: Tool not found in tools"
    return None


def _metadata(value: object, _: Params) -> str | None:
    if not isinstance(value, dict):
        return ": Input should be a valid dictionary"
    user_id = value.get("user_id")
    return None if user_id is None or isinstance(user_id, str) else ".user_id: must be a string"


def _cache_control(value: object, _: Params) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        return ".type: Input should be 'ephemeral'"
    return None if value.get("ttl", "5m") in ("5m", "1h") else ".ttl: Input should be '5m' or '1h'"


def _temperature(value: object, _: Params) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    return None if ok else ": Input should be a number between 0 and 1"


_CHECKS: Mapping[str, Callable[[object, Params], str | None]] = {
    "model": _model,
    "max_tokens": _max_tokens,
    "messages": _messages,
    "stream": _stream,
    "system": _system,
    "stop_sequences": _stop_sequences,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "metadata": _metadata,
    "cache_control": _cache_control,
    "temperature": _temperature,
}
