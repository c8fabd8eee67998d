"""Handles: what `enqueue` returns, and how an application gets its result back.

SQL answers first, so a final result is read while Redis is down; Redis only
wakes a waiter early (pub/sub) and tells whether a request not yet in SQL still
waits in the intake stream. A request in neither is `lost`: Redis lost it
(a restart or flush without persistence) before intake committed it, since an
entry leaves the stream only after SQL has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from anthropic.types.messages import MessageBatchResult
from pydantic import TypeAdapter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters import queries
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.redis_health import broker_errors, client_timeouts
from batchline.domain.states import TERMINAL_REQUEST_STATES, RequestState
from batchline.errors import BrokerUnavailable, RequestLost
from batchline.keys import RedisKeys
from batchline.settings import Settings

if TYPE_CHECKING:
    from batchline.producer import Producer

# Between wake-ups a waiter still looks at SQL this often, in case a
# notification was missed (pub/sub delivers at most once).
SLOW_CHECK_SECONDS = 5.0
# While Redis is down a waiter has no wake-ups: it looks at SQL this often.
NO_REDIS_CHECK_SECONDS = 1.0
LOST = "lost"
_RESULT_ADAPTER: TypeAdapter[MessageBatchResult] = TypeAdapter(MessageBatchResult)
_TERMINAL = {s.value for s in TERMINAL_REQUEST_STATES}


class ResultReader:
    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        stream: RedisIntakeStream,
        keys: RedisKeys,
        settings: Settings,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._stream = stream
        self._redis = stream.client
        self._keys = keys
        self._skew_ms = int(settings.clock_skew_seconds * 1000)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def channel(self) -> str:
        return self._keys.settled_channel

    def status(self, request_id: str, entry_id: str | None = None) -> str:
        view = self._view(request_id)
        if view is not None:
            return view.state
        with broker_errors("looking for the request in the intake stream"):
            if self._waiting(request_id, entry_id):
                return "pending"
        # Intake deletes an entry only after its commit: look again before calling it lost.
        view = self._view(request_id)
        return LOST if view is None else view.state

    def _view(self, request_id: str) -> queries.RequestView | None:
        with self._sessions() as session:
            return queries.request_view(session, request_id)

    def _waiting(self, request_id: str, entry_id: str | None) -> bool:
        """Whether the request may still wait in the stream (Redis errors propagate)."""
        if entry_id is not None:
            return self._stream.entry_exists(entry_id)
        # Known by id only: its id says when it was enqueued (the producer's clock).
        # It may still wait if that is recent, or no older than the oldest entry waiting.
        enqueued_ms = int(request_id[:12], 16)
        if time.time() * 1000 - enqueued_ms < self._skew_ms:
            return True
        oldest = self._stream.oldest_entry_ms()
        return oldest is not None and oldest <= enqueued_ms + self._skew_ms

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

    def check_lost(self, request_id: str, entry_id: str | None) -> None:
        """Raise RequestLost if the request is lost; say nothing while Redis cannot tell."""
        try:
            lost = self.status(request_id, entry_id) == LOST
        except BrokerUnavailable:
            return
        if lost:
            raise RequestLost(request_id)

    def wait(
        self, request_id: str, timeout: float | None, entry_id: str | None = None
    ) -> MessageBatchResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        waker = _Waker(self._redis, self._keys.settled_channel)
        try:
            while True:
                result = self.final(request_id)
                if result is not None:
                    return result
                self.check_lost(request_id, entry_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"request {request_id} has no final result yet")
                waker.await_mention(request_id, remaining)
        finally:
            waker.close()


class _Waker:
    """Pub/sub wake-ups for a waiter, when Redis answers; a plain pause when not."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._redis = client
        self._channel = channel
        self._pubsub: Any = None

    def await_mention(self, request_id: str, remaining: float | None) -> None:
        pause = min(SLOW_CHECK_SECONDS, SLOW_CHECK_SECONDS if remaining is None else remaining)
        until = time.monotonic() + pause
        try:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                self._pubsub.subscribe(self._channel)
            while (left := until - time.monotonic()) > 0:
                message = self._pubsub.get_message(timeout=left)
                if message and request_id.encode() in message.get("data", b""):
                    return
        except redis.RedisError:
            # Redis down or hanging: SQL still answers; look at it again soon.
            self.close()
            time.sleep(max(0.0, min(NO_REDIS_CHECK_SECONDS, until - time.monotonic())))

    def close(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(redis.RedisError):
                pubsub.close()


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

    __slots__ = ("_entry_id", "_producer", "id")

    def __init__(self, request_id: str, producer: Producer, entry_id: str | None = None) -> None:
        self.id = request_id
        self._producer = producer
        # The stream entry that holds it, when this process enqueued it: then
        # whether it still waits in Redis is one exact lookup.
        self._entry_id = entry_id

    def __repr__(self) -> str:
        return f"RequestHandle({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> str:
        """pending (not yet in SQL), queued, in_batch, a final state, or lost (Redis
        lost it before it reached SQL). BrokerUnavailable if only Redis could tell."""
        return self._producer.reader.status(self.id, self._entry_id)

    def result(self, timeout: float | None = None) -> MessageBatchResult:
        """Wait for the final outcome; raises TimeoutError when `timeout` passes first,
        RequestLost when Redis lost the request."""
        return self._producer.reader.wait(self.id, timeout, self._entry_id)

    async def wait(self, timeout: float | None = None) -> MessageBatchResult:
        """`result()` for asyncio code: awaits the final outcome without blocking the loop."""
        reader = self._producer.reader
        settings = self._producer.settings
        timeouts = client_timeouts(settings)
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=timeouts["socket_timeout"],
            socket_connect_timeout=timeouts["socket_connect_timeout"],
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        subscribed = False
        try:
            while (found := await asyncio.to_thread(reader.final, self.id)) is None:
                await asyncio.to_thread(reader.check_lost, self.id, self._entry_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"request {self.id} has no final result yet")
                wake = min(SLOW_CHECK_SECONDS, remaining or SLOW_CHECK_SECONDS)
                try:
                    if not subscribed:
                        await pubsub.subscribe(reader.channel)
                        subscribed = True
                    # Any settled message may be ours; SQL decides, so one check per wake-up.
                    await pubsub.get_message(timeout=wake)
                except redis.RedisError:
                    subscribed = False
                    await asyncio.sleep(min(NO_REDIS_CHECK_SECONDS, wake))
            return found
        finally:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            except redis.RedisError:
                pass
