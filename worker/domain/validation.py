"""Checks made at the door, before anything is enqueued.

The API validates a batch request's params only when the batch runs, so a typo
would cost a day's wait; batchline refuses it at `enqueue` instead, with an
error that names the problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import orjson

from batchline.domain.deadlines import check_deadline_epoch
from batchline.domain.invalid import InvalidRequest as InvalidRequest
from batchline.domain.scheduling import check_priority

# Sampling parameters the API reference still documents though recent SDK types
# dropped them; accepted (the emulator does too) when they are numbers.
SAMPLING_PARAMS = frozenset({"temperature", "top_p", "top_k"})
# Sent as a request header (anthropic-beta) for the whole batch, never in a request's params.
HEADER_ONLY = frozenset({"betas", "extra_headers", "extra_query", "extra_body", "timeout"})
ROLES = frozenset({"user", "assistant"})
# A batch holds at most 256 MB; one request must leave room for its envelope.
MAX_REQUEST_BYTES = 255_000_000
MAX_KEY_LENGTH = 200
MAX_TAGS_BYTES = 4_096
# Deeper than any real request; orjson itself stops at 255, Python's stack near 1,000.
MAX_DEPTH = 128
# The store's column widths (models/tables.py).
MAX_MODEL_LENGTH = 200
MAX_ON_RESULT_LENGTH = 200
# Enqueue times a stream entry may carry: 1970 to 9999 (datetime's range).
MAX_TIMESTAMP = 253_402_300_799
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
# anthropic-beta names ("context-management-2025-06-27"): short, header-safe, no commas.
_BETA_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
MAX_BETAS = 20


@cache
def known_params(beta: bool = False) -> frozenset[str]:
    """The request parameters the installed SDK knows, read from its own types.

    The non-streaming MessageCreateParams (the beta one when `beta`), so a newer
    SDK's parameters are accepted without a release of batchline. Imported at
    first use: the SDK's type modules are large, and `batchline --help` or a
    models import should not load them.
    """
    if beta:
        from anthropic.types.beta import message_create_params as types
    else:
        from anthropic.types import message_create_params as types  # type: ignore[no-redef]
    spec = types.MessageCreateParamsNonStreaming
    return frozenset(spec.__required_keys__ | spec.__optional_keys__) - HEADER_ONLY


@cache
def allowed_params(beta: bool = False) -> frozenset[str]:
    return known_params(beta) | SAMPLING_PARAMS | {"stream"}


def encode_params(
    params: object, *, max_bytes: int = MAX_REQUEST_BYTES, betas: Sequence[str] | None = None
) -> bytes:
    """Validate a Messages API request body and return its JSON encoding.

    With `betas` (the anthropic-beta features the batch will be created with),
    the beta request parameters are accepted too."""
    if not isinstance(params, Mapping):
        raise InvalidRequest(f"params must be a mapping, got {type(params).__name__}")
    _check_shape(params, bool(betas))
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


def check_betas(betas: object) -> list[str]:
    """The anthropic-beta names a request needs, deduplicated and sorted (the
    batch's header, and the group it is assembled in); [] for none."""
    if betas is None:
        return []
    if isinstance(betas, str) or not isinstance(betas, Sequence):
        raise InvalidRequest(f"betas must be a list of strings, got {type(betas).__name__}")
    if len(betas) > MAX_BETAS or not all(
        isinstance(b, str) and _BETA_PATTERN.match(b) for b in betas
    ):
        raise InvalidRequest(
            f"betas must be at most {MAX_BETAS} names of 1-100 letters, digits, '.', '_' or '-',"
            f" got {list(betas)!r:.80}"
        )
    return sorted(set(betas))


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
        # Tags are stored as JSONB, which cannot hold U+0000.
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise InvalidRequest(f"tag {name!r:.40} holds U+0000, which the store cannot keep")
        out[name] = value
    _check_json_values(out, "tags")
    try:
        encoded = orjson.dumps(out)
    except TypeError as exc:  # an integer beyond 64 bits
        raise InvalidRequest(f"tags cannot be encoded: {exc}") from None
    if len(encoded) > MAX_TAGS_BYTES:
        raise InvalidRequest(f"tags may be at most {MAX_TAGS_BYTES} bytes encoded")
    return out


def check_entry_meta(meta: object) -> dict[str, Any]:
    """An intake entry's meta, checked as `enqueue` checks what it writes: the
    stream also takes entries from other writers, and one the store would refuse
    must be dead-lettered, not stop its neighbours."""
    if not isinstance(meta, dict):
        raise InvalidRequest("meta is not an object")
    stamp = meta.get("t")
    if stamp is not None and (
        isinstance(stamp, bool)
        or not isinstance(stamp, int | float)
        or not 0 <= stamp <= MAX_TIMESTAMP  # false for NaN too
    ):
        raise InvalidRequest(f"t must be a time in seconds since 1970, got {stamp!r:.40}")
    check_key(meta.get("key"))
    check_tags(meta.get("tags"))
    check_betas(meta.get("betas"))
    for name, limit in (("model", MAX_MODEL_LENGTH), ("on_result", MAX_ON_RESULT_LENGTH)):
        value = meta.get(name)
        if value is not None and not _storable_name(value, limit):
            raise InvalidRequest(f"{name} must be a string of 1-{limit} characters without U+0000")
    attempts = meta.get("max_attempts")
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100
    ):
        raise InvalidRequest("max_attempts must be an integer from 1 to 100")
    if meta.get("deadline") is not None:
        check_deadline_epoch(meta["deadline"])
    check_priority(meta.get("priority"))
    return meta


def _storable_name(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and "\x00" not in value


def _check_shape(params: Mapping[Any, Any], beta: bool) -> None:
    allowed = allowed_params(beta)
    if not allowed.issuperset(params):
        unknown = sorted(str(k) for k in params if k not in allowed)
        hint = "" if beta else " (beta parameters need betas=[...])"
        if not beta and allowed_params(True).issuperset(params):
            raise InvalidRequest(f"unknown parameter(s): {', '.join(unknown)}{hint}")
        raise InvalidRequest(
            f"unknown parameter(s) for the installed anthropic SDK: {', '.join(unknown)}"
        )
    if params.get("stream"):
        raise InvalidRequest("stream must not be true: batch requests are not streamed")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required and must be a non-empty string")
    if not _storable_name(model, MAX_MODEL_LENGTH):
        raise InvalidRequest(
            f"model must be at most {MAX_MODEL_LENGTH} characters without U+0000, got {model!r:.60}"
        )
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
    if not _json_values_ok(value, 0):
        raise InvalidRequest(_first_bad_value(value, where, 0))


def _json_values_ok(value: object, depth: int) -> bool:
    # Plain loops and exact-type tests: this runs on every enqueue, and generator
    # expressions or ABC isinstance checks would cost more than the XADD.
    # Bounded by MAX_DEPTH, so a deep (or self-containing) value is refused by
    # name instead of exhausting the stack.
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str:
                return False
        return _all_values_ok(value.values(), depth + 1)
    if isinstance(value, list | tuple):
        return _all_values_ok(value, depth + 1)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_values_ok(v, depth + 1) for k, v in value.items())
    return True  # anything else is for orjson to accept or refuse


def _all_values_ok(items: Iterable[object], depth: int) -> bool:
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if not _json_values_ok(item, depth):
            return False
    return True


def _first_bad_value(value: object, where: str, depth: int) -> str:
    if depth > MAX_DEPTH:
        return f"{where[:120]}... is nested deeper than {MAX_DEPTH} levels"
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
        if not _json_values_ok(v, depth + 1):
            return _first_bad_value(v, path, depth + 1)
    return f"{where} holds a value that cannot be sent"
