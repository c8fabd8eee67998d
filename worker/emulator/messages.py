"""The synchronous Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

The same reply model, validation and prompt cache as batch requests, answered
at once: invalid params are a 400, not an errored result. Every message is
charged at the full (synchronous) price in the emulator's own ledger, which the
admin records show, so a test can check what falling back to it cost.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from .clock import EmulatedClock
from .errors import invalid_request
from .ids import random_id
from .prompts import cache_prefix, read_prompt
from .replies import build_message, params_digest
from .store import Store
from .validation import Surface, count_params_error, params_error

FULL_PRICE = 1.0  # batch requests are billed at 0.5 of it


class MessagesApi:
    def __init__(self, store: Store, clock: EmulatedClock) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._ledger: list[dict[str, Any]] = []

    def create(self, body: bytes | bytearray, surface: Surface) -> tuple[dict[str, Any], bool]:
        """The reply `Message`, and whether it is to be streamed."""
        params = _params(body)
        problem = params_error(params, surface, batch=False)
        if problem is not None:
            raise invalid_request(problem)
        # Streamed or not, the same params get the same reply.
        reply_params = {k: v for k, v in params.items() if k != "stream"}
        raw = orjson.dumps(reply_params, option=orjson.OPT_SORT_KEYS)
        now = self._clock.now()
        prefix = cache_prefix(params) if b'"cache_control"' in raw else None
        hit = prefix is not None and prefix.key in self._store.live_cache_keys(now)
        if prefix is not None:
            self._store.write_cache(prefix.key, now + prefix.ttl_seconds)
        message = build_message(
            read_prompt(params),
            params=params,
            digest=params_digest(raw),
            message_id=random_id("msg"),
            cache_hit=hit,
            service_tier="standard",
        )
        stream = params.get("stream") is True
        self._charge(message, stream=stream)
        return message, stream

    def count_tokens(self, body: bytes | bytearray, surface: Surface) -> dict[str, int]:
        params = _params(body)
        problem = count_params_error(params, surface)
        if problem is not None:
            raise invalid_request(problem)
        # The same estimate a message's usage gives (input + cache tokens).
        return {"input_tokens": read_prompt({**params, "max_tokens": 1}).input_tokens}

    def ledger(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._ledger)

    def _charge(self, message: dict[str, Any], *, stream: bool) -> None:
        entry = {
            "id": message["id"],
            "model": message["model"],
            "stream": stream,
            "price_multiplier": FULL_PRICE,
            "usage": message["usage"],
        }
        with self._lock:
            self._ledger.append(entry)


def _params(body: bytes | bytearray) -> dict[str, Any]:
    try:
        params = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise invalid_request("The request body must be a JSON object")
    return params
