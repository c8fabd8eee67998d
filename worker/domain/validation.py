"""Checks made at the door, before anything is enqueued.

The API validates a batch request's params only when the batch runs, so a typo
would cost a day's wait; batchline refuses it at `enqueue` instead, with an
error that names the problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

# The keys of the SDK's MessageCreateParamsNonStreaming (anthropic 2.13); a unit
# test compares this set with the installed SDK so a new key is noticed.
KNOWN_PARAMS = frozenset(
    {
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "max_tokens",
        "messages",
        "metadata",
        "model",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "workspace_id",
    }
)
# Sampling parameters the API reference still documents though this SDK's types
# dropped them; accepted (the emulator does too) when they are numbers.
SAMPLING_PARAMS = frozenset({"temperature", "top_p", "top_k"})
ALLOWED_PARAMS = KNOWN_PARAMS | SAMPLING_PARAMS | {"stream"}
ROLES = frozenset({"user", "assistant"})
# A batch holds at most 256 MB; one request must leave room for its envelope.
MAX_REQUEST_BYTES = 255_000_000
MAX_KEY_LENGTH = 200
MAX_TAGS_BYTES = 4_096
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


class InvalidRequest(ValueError):
    """The request cannot be enqueued; the message says why."""


def encode_params(params: object, *, max_bytes: int = MAX_REQUEST_BYTES) -> bytes:
    """Validate a Messages API request body and return its JSON encoding."""
    if not isinstance(params, Mapping):
        raise InvalidRequest(f"params must be a mapping, got {type(params).__name__}")
    _check_shape(params)
    _check_json_values(params, "params")
    try:
        body = orjson.dumps(dict(params))
    except TypeError as exc:
        raise InvalidRequest(f"params is not JSON-serialisable: {exc}") from None
    if len(body) > max_bytes:
        raise InvalidRequest(
            f"params is {len(body)} bytes encoded; a batch request may be at most {max_bytes}"
        )
    return body


def check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise InvalidRequest(
            f"key must be 1-{MAX_KEY_LENGTH} printable ASCII characters without spaces, "
            f"got {key!r:.80}"
        )
    return key


def check_tags(tags: object) -> dict[str, str | int | float | bool | None]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidRequest(f"tags must be a mapping, got {type(tags).__name__}")
    out: dict[str, str | int | float | bool | None] = {}
    for name, value in tags.items():
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tag names must be non-empty strings, got {name!r:.40}")
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise InvalidRequest(f"tag {name!r} must be a string, number, bool or null")
        out[name] = value
    _check_json_values(out, "tags")
    if len(orjson.dumps(out)) > MAX_TAGS_BYTES:
        raise InvalidRequest(f"tags may be at most {MAX_TAGS_BYTES} bytes encoded")
    return out


def _check_shape(params: Mapping[Any, Any]) -> None:
    if not ALLOWED_PARAMS.issuperset(params):
        unknown = sorted(str(k) for k in params if k not in ALLOWED_PARAMS)
        raise InvalidRequest(f"unknown parameter(s): {', '.join(unknown)}")
    if params.get("stream"):
        raise InvalidRequest("stream must not be true: batch requests are not streamed")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required and must be a non-empty string")
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest(
            f"max_tokens is required and must be an integer >= 1, got {max_tokens!r}"
        )
    _check_messages(params.get("messages"))
    _check_optional(params)


def _check_optional(params: Mapping[Any, Any]) -> None:
    system = params.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequest("system must be a string or a list of content blocks")
    stops = params.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise InvalidRequest("stop_sequences must be a list of strings")
    if params.get("tools") is not None and not isinstance(params["tools"], list):
        raise InvalidRequest("tools must be a list")
    if not SAMPLING_PARAMS.isdisjoint(params):
        for name in SAMPLING_PARAMS & params.keys():
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"{name} must be a number, got {value!r:.40}")
    for name in ("metadata", "tool_choice", "thinking"):
        if params.get(name) is not None and not isinstance(params[name], dict | Mapping):
            raise InvalidRequest(f"{name} must be a mapping")


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages is required and must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict | Mapping):
            raise InvalidRequest(f"messages[{i}] must be a mapping")
        if message.get("role") not in ROLES:
            raise InvalidRequest(f"messages[{i}].role must be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise InvalidRequest(f"messages[{i}].content must be a string or a list of blocks")
        for j, block in enumerate(content):
            if not isinstance(block, dict | Mapping) or not isinstance(block.get("type"), str):
                raise InvalidRequest(f"messages[{i}].content[{j}] must be a block with a type")


def _check_json_values(value: object, where: str) -> None:
    # orjson writes NaN and infinities as null: refuse them rather than change data.
    # The walk is on every enqueue's hot path, so it builds no path strings;
    # only a value that fails is walked again to name where it is.
    if not _json_values_ok(value):
        raise InvalidRequest(_first_bad_value(value, where))


def _json_values_ok(value: object) -> bool:
    # Plain loops and exact-type tests: this runs on every enqueue, and generator
    # expressions or ABC isinstance checks would cost more than the XADD.
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str:
                return False
        return _all_values_ok(value.values())
    if isinstance(value, list | tuple):
        return _all_values_ok(value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_values_ok(v) for k, v in value.items())
    return True  # anything else is for orjson to accept or refuse


def _all_values_ok(items: Iterable[object]) -> bool:
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if not _json_values_ok(item):
            return False
    return True


def _first_bad_value(value: object, where: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} holds a non-finite number ({value})"
    items: list[tuple[str, object]] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where} has a non-string key {k!r:.40}"
            items.append((f"{where}.{k}", v))
    elif isinstance(value, list | tuple):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    for path, v in items:
        if not _json_values_ok(v):
            return _first_bad_value(v, path)
    return f"{where} holds a value that cannot be sent"
