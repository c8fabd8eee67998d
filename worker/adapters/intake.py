"""The Redis intake stream: where enqueued requests wait until SQL has them.

Delivery is at-least-once: an entry is acknowledged and deleted only after the
SQL transaction holding it commits, and entries left pending by a consumer that
died are reclaimed with XAUTOCLAIM. SQL inserts are idempotent on the request
id, so a re-delivered entry changes nothing.

An entry holds one request or, from `enqueue_many`, a bundle of up to
BUNDLE_MAX_REQUESTS: ids joined by spaces, params and metas by newlines (compact
JSON never holds a raw newline). Per-command overhead, not bytes, bounds what
Redis and redis-py take in, and a bundle pays it once for many requests. A
counter beside the stream holds the requests bundles add beyond one an entry,
so the queue depth stays a count of requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis

from batchline.domain.custom_ids import REQUEST_ID_PATTERN
from batchline.domain.validation import InvalidRequest, check_entry_meta
from batchline.keys import RedisKeys

BUNDLE_MAX_REQUESTS = 100
BUNDLE_MAX_BYTES = 1 << 20

# Sets the idempotency key and adds the entry in one step. Closes the race
# where two producers with the same key both see it absent and both enqueue.
_ENQUEUE_WITH_KEY = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'p', ARGV[2], 'm', ARGV[3])
return ARGV[1]
"""

# Deletes and acknowledges entries, and takes the extra requests of the bundles
# it really deleted off the depth counter: an entry acknowledged twice (after a
# reclaim) is counted once.
_ACK = """
local extra = 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then extra = extra + tonumber(ARGV[i + 1]) end
end
if extra > 0 then redis.call('DECRBY', KEYS[2], extra) end
return extra
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

    def read(self, consumer: str, max_requests: int, reclaim_idle_ms: int) -> list[StreamEntry]: ...

    def ack(self, entries: Sequence[StreamEntry]) -> None: ...

    def dead_letter(self, entries: Sequence[StreamEntry], reason: str) -> None: ...

    def bury(self, items: Sequence[tuple[StreamEntry, str]]) -> None: ...

    def depth(self) -> int: ...


def encode_fields(entry: IntakeEntry) -> dict[str, bytes | str]:
    return {"id": entry.request_id, "p": entry.params, "m": orjson.dumps(entry.meta)}


def encode_bundle(entries: Sequence[IntakeEntry]) -> dict[str, bytes]:
    """Several requests as one stream entry (see the module docstring)."""
    return {
        "id": b" ".join(e.request_id.encode("ascii") for e in entries),
        "p": b"\n".join(e.params for e in entries),
        "m": b"\n".join(orjson.dumps(e.meta) for e in entries),
    }


def bundles(entries: Sequence[IntakeEntry]) -> Iterator[Sequence[IntakeEntry]]:
    """Consecutive runs of at most BUNDLE_MAX_REQUESTS entries and about BUNDLE_MAX_BYTES."""
    start, size = 0, 0
    for index, entry in enumerate(entries):
        if index > start and (
            index - start >= BUNDLE_MAX_REQUESTS or size + len(entry.params) > BUNDLE_MAX_BYTES
        ):
            yield entries[start:index]
            start, size = index, 0
        size += len(entry.params)
    if start < len(entries):
        yield entries[start:]


def requests_in(raw: StreamEntry) -> int:
    return raw.fields.get(b"id", b"").count(b" ") + 1


def decode_entries(raw: StreamEntry) -> list[IntakeEntry]:
    """The requests an entry holds; raises ValueError on anything not written by enqueue.

    Checked as strictly as enqueue checks (ids, JSON, meta values): anything
    else writing to the stream must not get a value into SQL that the store
    refuses, or that later code trips on (a non-hex id cannot make a custom_id).
    """
    try:
        ids = raw.fields[b"id"].decode("ascii").split(" ")
        params = raw.fields[b"p"].split(b"\n")
        metas = [check_entry_meta(orjson.loads(m)) for m in raw.fields[b"m"].split(b"\n")]
        if not len(ids) == len(params) == len(metas):
            raise ValueError("ids, params and metas differ in number")
        for request_id in ids:
            if not REQUEST_ID_PATTERN.fullmatch(request_id):
                raise ValueError(f"{request_id[:40]!r} is not a request id (32 hex digits)")
        for body in params:
            if not isinstance(orjson.loads(body), dict):
                raise ValueError("params is not a JSON object")
    except (KeyError, UnicodeDecodeError, ValueError, InvalidRequest) as exc:
        raise ValueError(f"unreadable intake entry {raw.entry_id!r}: {exc}") from None
    return [IntakeEntry(i, p, m) for i, p, m in zip(ids, params, metas, strict=True)]


def split_bundle(raw: StreamEntry) -> list[StreamEntry]:
    """A bundle's requests as entries of their own (same stream id), so one bad
    request is dead-lettered alone; [] when the entry cannot be split that way."""
    try:
        ids = raw.fields[b"id"].split(b" ")
        params = raw.fields[b"p"].split(b"\n")
        metas = raw.fields[b"m"].split(b"\n")
    except KeyError:
        return []
    if len(ids) < 2 or not len(ids) == len(params) == len(metas):
        return []
    return [
        StreamEntry(raw.entry_id, {b"id": i, b"p": p, b"m": m})
        for i, p, m in zip(ids, params, metas, strict=True)
    ]


def single(raw: StreamEntry, entry: IntakeEntry) -> StreamEntry:
    """One request of a bundle as an entry of its own, for the dead letters."""
    if requests_in(raw) == 1:
        return raw
    return StreamEntry(
        raw.entry_id, {k.encode(): _bytes(v) for k, v in encode_fields(entry).items()}
    )


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class RedisIntakeStream:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self._enqueue_with_key = client.register_script(_ENQUEUE_WITH_KEY)
        self._ack = client.register_script(_ACK)
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
        # One MULTI: the bundles and the depth counter's share of them land together.
        pipe = self._redis.pipeline(transaction=True)
        extra = 0
        for bundle in bundles(entries):
            pipe.xadd(self._keys.intake_stream, encode_bundle(bundle))  # type: ignore[arg-type]
            extra += len(bundle) - 1
        if extra:
            pipe.incrby(self._keys.intake_bundled_extra, extra)
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

    def read(self, consumer: str, max_requests: int, reclaim_idle_ms: int) -> list[StreamEntry]:
        """Entries holding about `max_requests` requests (at most twice that)."""
        try:
            return self._read(consumer, max_requests, reclaim_idle_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream or its group is gone (deleted, or Redis restarted empty):
            # make it again rather than fail every intake until the worker restarts.
            self._group_ready = False
            return self._read(consumer, max_requests, reclaim_idle_ms)

    def _read(self, consumer: str, max_requests: int, reclaim_idle_ms: int) -> list[StreamEntry]:
        self.ensure_group()
        stream, group = self._keys.intake_stream, self._keys.intake_group
        # An entry may be a bundle: asking for this many entries at a time keeps
        # a read near max_requests whatever mix of bundles and singles waits.
        per_read = max(1, max_requests // BUNDLE_MAX_REQUESTS)
        reclaimed: Any = self._redis.xautoclaim(
            stream, group, consumer, min_idle_time=reclaim_idle_ms, start_id="0-0", count=per_read
        )
        entries = _to_entries(reclaimed[1])
        held = sum(requests_in(e) for e in entries)
        while held < max_requests:
            fresh: Any = self._redis.xreadgroup(group, consumer, {stream: ">"}, count=per_read)
            got = [e for _stream, items in fresh or [] for e in _to_entries(items)]
            entries.extend(got)
            held += sum(requests_in(e) for e in got)
            if len(got) < per_read:
                break
        return entries

    def ack(self, entries: Sequence[StreamEntry]) -> None:
        if not entries:
            return
        args: list[Any] = [self._keys.intake_group]
        for entry in entries:
            args += [entry.entry_id, requests_in(entry) - 1]
        self._ack(keys=[self._keys.intake_stream, self._keys.intake_bundled_extra], args=args)

    def dead_letter(self, entries: Sequence[StreamEntry], reason: str) -> None:
        self.bury([(entry, reason) for entry in entries])
        # After the copy: a crash between the two leaves the entry to be dead-lettered again.
        self.ack(entries)

    def bury(self, items: Sequence[tuple[StreamEntry, str]]) -> None:
        """Copy each entry to the dead letters with its reason (and its stream id);
        acknowledging it is the caller's next step."""
        if not items:
            return
        pipe = self._redis.pipeline(transaction=True)
        for entry, reason in items:
            fields: dict[Any, Any] = dict(entry.fields)
            fields[b"reason"] = reason.encode()
            fields[b"entry"] = entry.entry_id
            pipe.xadd(self._keys.dead_letters, fields)
        pipe.execute()

    def dead_letter_count(self) -> int:
        """Entries (or single requests of bundles) ever dead-lettered and still kept."""
        return int(self._redis.xlen(self._keys.dead_letters))

    def depth(self) -> int:
        """Requests waiting in the stream (bundles counted by what they hold)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.xlen(self._keys.intake_stream)
        pipe.get(self._keys.intake_bundled_extra)
        entries, extra = pipe.execute()
        return int(entries) + int(extra or 0)


def _to_entries(items: Iterable[Any]) -> list[StreamEntry]:
    # XAUTOCLAIM reports entries deleted meanwhile as (id, None): nothing to do.
    return [StreamEntry(entry_id, fields) for entry_id, fields in items if fields]
