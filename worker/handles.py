"""Handles: what `enqueue` returns, and how an application gets its result back."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from anthropic.types.messages import MessageBatchResult
from pydantic import TypeAdapter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters import queries
from batchline.domain.states import TERMINAL_REQUEST_STATES, RequestState
from batchline.keys import RedisKeys

if TYPE_CHECKING:
    from batchline.producer import Producer

# Between wake-ups a waiter still looks at SQL this often, in case a
# notification was missed (pub/sub delivers at most once).
SLOW_CHECK_SECONDS = 5.0
_RESULT_ADAPTER: TypeAdapter[MessageBatchResult] = TypeAdapter(MessageBatchResult)
_TERMINAL = {s.value for s in TERMINAL_REQUEST_STATES}


class ResultReader:
    def __init__(
        self, engine: Engine, sessions: sessionmaker[Session], client: redis.Redis, keys: RedisKeys
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._redis = client
        self._keys = keys

    def close(self) -> None:
        self._engine.dispose()

    @property
    def channel(self) -> str:
        return self._keys.settled_channel

    def status(self, request_id: str) -> str:
        with self._sessions() as session:
            view = queries.request_view(session, request_id)
        # Not in SQL yet: still in the Redis intake stream.
        return "pending" if view is None else view.state

    def ids_by_tag(self, name: str, value: str, limit: int) -> list[str]:
        with self._sessions() as session:
            return queries.request_ids_by_tag(session, name, value, limit)

    def id_for_key(self, key: str) -> str | None:
        with self._sessions() as session:
            return queries.request_id_for_key(session, key)

    def final(self, request_id: str) -> MessageBatchResult | None:
        with self._sessions() as session:
            view = queries.request_view(session, request_id)
            if view is None or view.state not in _TERMINAL:
                return None
            found = queries.final_result_body(session, request_id)
        return to_sdk_result(view.state, view.last_error, found)

    def wait(self, request_id: str, timeout: float | None) -> MessageBatchResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(self._keys.settled_channel)
        try:
            while True:
                result = self.final(request_id)
                if result is not None:
                    return result
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"request {request_id} has no final result yet")
                self._await_mention(pubsub, request_id, remaining)
        finally:
            pubsub.close()

    def _await_mention(self, pubsub: Any, request_id: str, remaining: float | None) -> None:
        until = time.monotonic() + min(SLOW_CHECK_SECONDS, remaining or SLOW_CHECK_SECONDS)
        while (left := until - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=left)
            if message and request_id.encode() in message.get("data", b""):
                return


def to_sdk_result(
    state: str, last_error: str | None, found: tuple[str, dict[str, Any]] | None
) -> MessageBatchResult:
    """The final outcome typed as the SDK types a batch result."""
    if found is not None and found[0] != "malformed":
        return _RESULT_ADAPTER.validate_python(found[1])
    if state == RequestState.CANCELED:
        return _RESULT_ADAPTER.validate_python({"type": "canceled"})
    if state == RequestState.EXPIRED:
        return _RESULT_ADAPTER.validate_python({"type": "expired"})
    # Failed without an API error of its own (refused batch, unreadable result):
    # reported in the API's error shape so callers handle one kind of thing.
    return _RESULT_ADAPTER.validate_python(
        {
            "type": "errored",
            "error": {
                "type": "error",
                "error": {"type": "api_error", "message": last_error or "failed"},
                "request_id": None,
            },
        }
    )


class RequestHandle:
    """A request's id, and ways to learn what became of it."""

    __slots__ = ("_producer", "id")

    def __init__(self, request_id: str, producer: Producer) -> None:
        self.id = request_id
        self._producer = producer

    def __repr__(self) -> str:
        return f"RequestHandle({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> str:
        """pending (not yet in SQL), queued, in_batch, or a final state."""
        return self._producer.reader.status(self.id)

    def result(self, timeout: float | None = None) -> MessageBatchResult:
        """Wait for the final outcome; raises TimeoutError when `timeout` passes first."""
        return self._producer.reader.wait(self.id, timeout)

    async def wait(self, timeout: float | None = None) -> MessageBatchResult:
        """`result()` for asyncio code: awaits the final outcome without blocking the loop."""
        reader = self._producer.reader
        client = aioredis.Redis.from_url(self._producer.settings.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(reader.channel)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while (found := await asyncio.to_thread(reader.final, self.id)) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"request {self.id} has no final result yet")
                wake = min(SLOW_CHECK_SECONDS, remaining or SLOW_CHECK_SECONDS)
                # Any settled message may be ours; SQL decides, so one check per wake-up.
                await pubsub.get_message(timeout=wake)
            return found
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
