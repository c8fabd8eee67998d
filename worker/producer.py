"""The producer API that application code imports: `from batchline import enqueue`.

An enqueue validates the request, then writes one entry to the Redis intake
stream: as cheap as pushing to any queue. Nothing touches SQL on this path,
unless BATCHLINE_DURABLE_ENQUEUE asks for the request to be committed to SQL
before enqueue returns (batchline.durable).

Errors: InvalidRequest (bad input), QueueFull (backpressure, batchline.backpressure),
BrokerUnavailable / BrokerTimeout (Redis down or hanging); never redis-py's own.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import redis

from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.intake_entries import IntakeEntry
from batchline.adapters.redis_health import broker_errors, make_client
from batchline.backpressure import Backpressure
from batchline.database import READ_ONLY, make_engine, make_session_factory
from batchline.domain.custom_ids import new_request_id
from batchline.domain.deadlines import Deadline, deadline_epoch
from batchline.domain.scheduling import check_priority
from batchline.domain.validation import (
    InvalidRequest,
    check_betas,
    check_key,
    check_tags,
    encode_params,
)
from batchline.handles import RequestHandle, ResultReader
from batchline.keys import RedisKeys
from batchline.settings import Settings

if TYPE_CHECKING:
    from batchline.durable import DurableIntake


@dataclass(frozen=True)
class Item:
    """One request for `enqueue_many`, with its options."""

    params: Mapping[str, Any]
    key: str | None = None
    tags: Mapping[str, Any] | None = None
    on_result: str | None = None
    max_attempts: int | None = None
    betas: Sequence[str] | None = None
    deadline: Deadline = None
    priority: int | None = None


class Producer:
    """Enqueues requests onto batchline's Redis intake stream and hands out handles.

    One per process is enough (`default_producer()`); make your own to use
    other Settings or a Redis client you manage. Close it (or use `with`)."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self._redis = client or make_client(settings)
        self._keys = RedisKeys(settings.stream_key_prefix)
        self._stream = RedisIntakeStream(self._redis, self._keys)
        self._pressure = Backpressure(self._redis, self._keys, settings)
        self._reader: ResultReader | None = None
        self._reader_lock = threading.Lock()
        self._durable: DurableIntake | None = None

    @property
    def reader(self) -> ResultReader:
        with self._reader_lock:
            if self._reader is None:
                # Reads only: on SQLite this keeps waiters from taking the write lock.
                engine = make_engine(self.settings.database_url)
                reads = make_session_factory(engine.execution_options(**{READ_ONLY: True}))
                self._reader = ResultReader(engine, reads, self._stream, self._keys, self.settings)
            return self._reader

    @property
    def durable(self) -> DurableIntake:
        with self._reader_lock:
            if self._durable is None:
                # Imported here: the plain Redis path never loads the SQL write side.
                from batchline.durable import DurableIntake

                engine = make_engine(self.settings.database_url)
                self._durable = DurableIntake(
                    engine,
                    make_session_factory(engine),
                    self.settings.max_attempts,
                    self.settings.deadline_defaults(),
                    self.settings.share_tag,
                )
            return self._durable

    def close(self) -> None:
        """Release this producer's connections (Redis, and SQL if results were read)."""
        if self._reader is not None:
            self._reader.close()
        if self._durable is not None:
            self._durable.close()
        self._redis.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(
        self,
        params: Mapping[str, Any],
        *,
        key: str | None = None,
        tags: Mapping[str, Any] | None = None,
        on_result: str | None = None,
        max_attempts: int | None = None,
        betas: Sequence[str] | None = None,
        deadline: Deadline = None,
        priority: int | None = None,
    ) -> RequestHandle:
        entry, checked_key = self._entry(
            Item(params, key, tags, on_result, max_attempts, betas, deadline, priority)
        )
        if self.settings.durable_enqueue:
            return RequestHandle(self.durable.add([(entry, checked_key)])[entry.request_id], self)
        with broker_errors("enqueueing"):
            self._pressure.admit(_size(entry))
            accepted = self._stream.add(entry, checked_key, self.settings.idempotency_ttl_seconds)
        return RequestHandle(accepted.request_id, self, accepted.entry_id)

    def enqueue_many(
        self, items: Iterable[Mapping[str, Any] | Item], *, chunk: int = 1_000
    ) -> list[RequestHandle]:
        """Enqueue many requests, all or none: every one is checked before any is written,
        and all are written in one Redis transaction (QueueFull: none was)."""
        with _collector_paused():
            return self._enqueue_many(items, chunk)

    def _enqueue_many(
        self, items: Iterable[Mapping[str, Any] | Item], chunk: int
    ) -> list[RequestHandle]:
        options = [item if isinstance(item, Item) else Item(item) for item in items]
        seen_keys: set[str] = set()
        # First pass checks only: holding every encoded body at once would cost
        # more in fresh memory than encoding each twice (see bench/README.md).
        tags: list[dict[str, Any]] = []
        size = 0
        for index, one in enumerate(options):
            try:
                size += len(encode_params(one.params, betas=check_betas(one.betas)))
                tags.append(_check_options(one))
            except InvalidRequest as exc:
                raise InvalidRequest(f"item {index}: {exc}") from None
            if one.key is not None:
                if one.key in seen_keys:
                    raise InvalidRequest(f"item {index}: key {one.key!r} appears twice")
                seen_keys.add(one.key)
        ids: list[str] = []  # only ids: the bodies go out part by part

        def parts() -> Iterable[list[tuple[IntakeEntry, str | None]]]:
            for start in range(0, len(options), chunk):
                part = [
                    (
                        self._checked_entry(one, orjson.dumps(dict(one.params)), tags[start + i]),
                        one.key,
                    )
                    for i, one in enumerate(options[start : start + chunk])
                ]
                ids.extend(entry.request_id for entry, _key in part)
                yield part

        if self.settings.durable_enqueue:
            held = self.durable.add([pair for part in parts() for pair in part])
            return [RequestHandle(held[i], self) for i in ids]
        with broker_errors("enqueueing"):
            # Whole or not at all: a precheck for the lot, then one transaction.
            self._pressure.admit(size + _META_BYTES * len(options))
            accepted = self._stream.add_all(parts(), self.settings.idempotency_ttl_seconds)
        return [RequestHandle(accepted[i].request_id, self, accepted[i].entry_id) for i in ids]

    def _entry(self, item: Item) -> tuple[IntakeEntry, str | None]:
        body = encode_params(item.params, betas=check_betas(item.betas))
        return self._checked_entry(item, body, _check_options(item)), item.key

    @staticmethod
    def _checked_entry(item: Item, body: bytes, tags: dict[str, Any]) -> IntakeEntry:
        """The stream entry for an item whose params and options were checked."""
        meta: dict[str, Any] = {"model": item.params["model"], "t": round(time.time(), 3)}
        if item.key is not None:
            meta["key"] = item.key
        if tags:
            meta["tags"] = tags
        if item.on_result is not None:
            meta["on_result"] = item.on_result
        if item.max_attempts is not None:
            meta["max_attempts"] = item.max_attempts
        if item.betas:
            meta["betas"] = check_betas(item.betas)
        if item.deadline is not None:
            meta["deadline"] = deadline_epoch(item.deadline, meta["t"])
        if item.priority:
            meta["priority"] = item.priority
        return IntakeEntry(new_request_id(), body, meta)

    def handle(self, request_id: str) -> RequestHandle:
        return RequestHandle(request_id, self)

    def handles_by_tag(self, name: str, value: str, limit: int = 1_000) -> list[RequestHandle]:
        """Requests (in SQL) whose tag `name` has the string value `value`, oldest first."""
        return [RequestHandle(i, self) for i in self.reader.ids_by_tag(name, value, limit)]

    def handle_for_key(self, key: str) -> RequestHandle | None:
        # SQL first: it answers while Redis is down, and holds every key older than intake.
        request_id = self.reader.id_for_key(key)
        if request_id is None:
            with broker_errors("looking up a key"):
                request_id = self._stream.lookup_key(key)
        return None if request_id is None else RequestHandle(request_id, self)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one bulk call, then back as it was.

    A bulk enqueue makes a few short-lived objects per request, none in a cycle
    (reference counting frees them all), yet every 700 allocations start a
    collection, and every few of those walk the application's whole heap: about
    a fifth of enqueue_many's time in bench/README.md's measurement. The worker
    freezes its heap for the same reason; a library must not, so it pauses."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# What a request's meta and stream fields add to its body, about.
_META_BYTES = 128


def _size(entry: IntakeEntry) -> int:
    return len(entry.params) + _META_BYTES


def _check_options(item: Item) -> dict[str, Any]:
    """Check an item's options; returns its tags, normalised."""
    check_key(item.key)
    tags = check_tags(item.tags)
    if item.on_result is not None and (
        not isinstance(item.on_result, str) or not item.on_result.strip()
    ):
        raise InvalidRequest("on_result must be the name of a Celery task")
    if item.max_attempts is not None and (
        isinstance(item.max_attempts, bool)
        or not isinstance(item.max_attempts, int)
        or not 1 <= item.max_attempts <= 100
    ):
        raise InvalidRequest("max_attempts must be an integer from 1 to 100")
    deadline_epoch(item.deadline, time.time())
    check_priority(item.priority)
    return tags


_default: Producer | None = None
_default_lock = threading.Lock()


def default_producer() -> Producer:
    """The process's shared Producer, on Settings.from_env(); made anew after a fork."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Producer(Settings.from_env())
        return _default


def _forget_after_fork() -> None:
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


def enqueue(
    params: Mapping[str, Any],
    *,
    key: str | None = None,
    tags: Mapping[str, Any] | None = None,
    on_result: str | None = None,
    max_attempts: int | None = None,
    betas: Sequence[str] | None = None,
    deadline: Deadline = None,
    priority: int | None = None,
) -> RequestHandle:
    """Enqueue one Messages API request body; returns its handle at once.

    Args:
        params: the body of a Messages API request (`model`, `max_tokens`,
            `messages`, ...), checked at once; `InvalidRequest` names a fault.
        key: an idempotency key: enqueueing it again returns the same request.
        tags: small JSON values stored with the request (lookups by tag).
        on_result: the name of a Celery task of yours, sent the request id once
            the result is stored (on the queue BATCHLINE_CALLBACK_QUEUE).
        max_attempts: attempts for retriable errors (default BATCHLINE_MAX_ATTEMPTS).
        betas: anthropic-beta names (as the SDK's `betas=`): the request may use
            beta parameters, and goes in a batch created with exactly these betas.
        deadline: when the request must be final: a timezone-aware datetime, a
            timedelta or seconds from now. Not final by then minus
            BATCHLINE_SYNC_LATENCY_SECONDS, it is sent once through the
            synchronous Messages API at full price (see the README's Deadlines).
        priority: -5 (lowest) to 5 (highest), default 0: when more is queued than
            the next batch takes, higher priorities go first (README: Scheduling).

    Uses the default producer (settings from the environment, read once).
    """
    return default_producer().enqueue(
        params,
        key=key,
        tags=tags,
        on_result=on_result,
        max_attempts=max_attempts,
        betas=betas,
        deadline=deadline,
        priority=priority,
    )


async def aenqueue(
    params: Mapping[str, Any],
    *,
    key: str | None = None,
    tags: Mapping[str, Any] | None = None,
    on_result: str | None = None,
    max_attempts: int | None = None,
    betas: Sequence[str] | None = None,
    deadline: Deadline = None,
    priority: int | None = None,
) -> RequestHandle:
    """`enqueue` for asyncio code: the Redis round trip runs off the event loop."""
    return await asyncio.to_thread(
        default_producer().enqueue,
        params,
        key=key,
        tags=tags,
        on_result=on_result,
        max_attempts=max_attempts,
        betas=betas,
        deadline=deadline,
        priority=priority,
    )


def enqueue_many(
    items: Iterable[Mapping[str, Any] | Item], *, chunk: int = 1_000
) -> list[RequestHandle]:
    """Enqueue many requests, pipelined: every item is checked before any is written.

    Args:
        items: request bodies, or `Item(params, key=..., tags=..., on_result=...,
            max_attempts=..., betas=[...], deadline=..., priority=...)` for
            per-request options.
        chunk: requests written per pipeline round trip.
    """
    return default_producer().enqueue_many(items, chunk=chunk)


os.register_at_fork(after_in_child=_forget_after_fork)
