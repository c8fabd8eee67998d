"""The Redis intake stream: where enqueued requests wait until SQL has them.

Delivery is at-least-once: an entry is acknowledged and deleted only after the
SQL transaction holding it commits, and entries left pending by a consumer that
died are reclaimed with XAUTOCLAIM. SQL inserts are idempotent on the request
id, so a re-delivered entry changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis

from worker.keys import RedisKeys

# Sets the idempotency key and adds the entry in one step. Closes the race
# where two producers with the same key both see it absent and both enqueue.
_ENQUEUE_WITH_KEY = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'p', ARGV[2], 'm', ARGV[3])
return ARGV[1]
"""


@dataclass(frozen=True)
class IntakeEntry:
    """One enqueued request as the producer wrote it."""

    request_id: str
    params: bytes
    meta: dict[str, Any]


@dataclass(frozen=True)
class StreamEntry:
    entry_id: bytes
    fields: dict[bytes, bytes]


class IntakeStream(Protocol):
    def add(self, entry: IntakeEntry, key: str | None, key_ttl: int) -> str: ...

    def add_many(self, entries: Sequence[IntakeEntry]) -> None: ...

    def read(self, consumer: str, count: int, reclaim_idle_ms: int) -> list[StreamEntry]: ...

    def ack(self, entry_ids: Sequence[bytes]) -> None: ...

    def dead_letter(self, entries: Sequence[StreamEntry], reason: str) -> None: ...

    def depth(self) -> int: ...


def encode_fields(entry: IntakeEntry) -> dict[str, bytes | str]:
    return {"id": entry.request_id, "p": entry.params, "m": orjson.dumps(entry.meta)}


def decode_entry(raw: StreamEntry) -> IntakeEntry:
    """Read an entry back; raises ValueError on anything not written by enqueue."""
    try:
        request_id = raw.fields[b"id"].decode("ascii")
        meta = orjson.loads(raw.fields[b"m"])
        params = raw.fields[b"p"]
        orjson.loads(params)
    except (KeyError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"unreadable intake entry {raw.entry_id!r}: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"unreadable intake entry {raw.entry_id!r}: meta is not an object")
    return IntakeEntry(request_id, params, meta)


class RedisIntakeStream:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self._enqueue_with_key = client.register_script(_ENQUEUE_WITH_KEY)
        self._group_ready = False

    def add(self, entry: IntakeEntry, key: str | None, key_ttl: int) -> str:
        fields = encode_fields(entry)
        if key is None:
            self._redis.xadd(self._keys.intake_stream, fields)  # type: ignore[arg-type]
            return entry.request_id
        winner = self._enqueue_with_key(
            keys=[self._keys.intake_stream, self._keys.idempotency(key)],
            args=[entry.request_id, fields["p"], fields["m"], key_ttl],
        )
        return winner.decode() if isinstance(winner, bytes) else str(winner)

    def add_many(self, entries: Sequence[IntakeEntry]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for entry in entries:
            pipe.xadd(self._keys.intake_stream, encode_fields(entry))  # type: ignore[arg-type]
        pipe.execute()

    def lookup_key(self, key: str) -> str | None:
        value = self._redis.get(self._keys.idempotency(key))
        return value.decode() if isinstance(value, bytes) else None

    def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From id 0, so entries added before the group existed are read too.
            self._redis.xgroup_create(
                self._keys.intake_stream, self._keys.intake_group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def read(self, consumer: str, count: int, reclaim_idle_ms: int) -> list[StreamEntry]:
        self.ensure_group()
        stream, group = self._keys.intake_stream, self._keys.intake_group
        reclaimed: Any = self._redis.xautoclaim(
            stream, group, consumer, min_idle_time=reclaim_idle_ms, start_id="0-0", count=count
        )
        entries = _to_entries(reclaimed[1])
        if len(entries) < count:
            fresh: Any = self._redis.xreadgroup(
                group, consumer, {stream: ">"}, count=count - len(entries)
            )
            for _stream, items in fresh or []:
                entries.extend(_to_entries(items))
        return entries

    def ack(self, entry_ids: Sequence[bytes]) -> None:
        if not entry_ids:
            return
        # Acknowledge and delete together, so an acked entry never lingers in the
        # stream and a deleted one never stays pending.
        pipe = self._redis.pipeline(transaction=True)
        pipe.xack(self._keys.intake_stream, self._keys.intake_group, *entry_ids)
        pipe.xdel(self._keys.intake_stream, *entry_ids)
        pipe.execute()

    def dead_letter(self, entries: Sequence[StreamEntry], reason: str) -> None:
        if not entries:
            return
        pipe = self._redis.pipeline(transaction=True)
        for entry in entries:
            fields: dict[Any, Any] = dict(entry.fields)
            fields[b"reason"] = reason.encode()
            pipe.xadd(self._keys.dead_letters, fields)
        pipe.xack(self._keys.intake_stream, self._keys.intake_group, *[e.entry_id for e in entries])
        pipe.xdel(self._keys.intake_stream, *[e.entry_id for e in entries])
        pipe.execute()

    def depth(self) -> int:
        return int(self._redis.xlen(self._keys.intake_stream))


def _to_entries(items: Iterable[Any]) -> list[StreamEntry]:
    # XAUTOCLAIM reports entries deleted meanwhile as (id, None): nothing to do.
    return [StreamEntry(entry_id, fields) for entry_id, fields in items if fields]
