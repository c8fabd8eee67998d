"""The Redis intake stream: where enqueued requests wait until SQL has them.

Delivery is at-least-once: an entry is acknowledged and deleted only after the
SQL transaction holding it commits, and entries left pending by a consumer that
died are reclaimed with XAUTOCLAIM. SQL inserts are idempotent on the request
id, so a re-delivered entry changes nothing.

An entry holds one request or a bundle of many (`intake_entries` says how they
are written and read back). A counter beside the stream holds the requests
bundles add beyond one an entry, so the queue depth stays a count of requests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from batchline.adapters.intake_entries import (
    BUNDLE_MAX_REQUESTS,
    IntakeEntry,
    StreamEntry,
    bundles,
    encode_bundle,
    encode_fields,
    requests_in,
)
from batchline.keys import RedisKeys

# Adds one request and counts it accepted into this Redis's epoch, in one step:
# the ledger (batchline.losses) never disagrees with the stream. With a key
# (KEYS[3]) it closes the race where two producers with the same key both see
# it absent and both enqueue. Under `noeviction` at maxmemory the first write
# is refused before anything is written. Returns {id, stream entry id}, or
# {id} of the request that already holds the key.
_ADD = """
if KEYS[3] then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {existing} end
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[6])
end
local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'p', ARGV[2], 'm', ARGV[3])
if redis.call('HSETNX', KEYS[2], 'epoch', ARGV[4]) == 1 then
  redis.call('HSET', KEYS[2], 'since', ARGV[5])
end
redis.call('HINCRBY', KEYS[2], 'accepted', 1)
return {ARGV[1], entry}
"""

# Creates the consumer group even at maxmemory (XGROUP CREATE is refused
# there, and intake must read to free memory); BUSYGROUP means it exists.
_CREATE_GROUP = """#!lua flags=allow-oom
local reply = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if type(reply) == 'table' and reply.err then return reply.err end
return 'OK'
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


# What a queued command's reply means: ("bundle", ids), ("key", [id]) or ("extra", []).
Shape = tuple[str, list[str]]


@dataclass(frozen=True)
class Accepted:
    """An accepted request, and the stream entry holding it (None: an earlier request
    holding the same key, whose entry this producer does not know)."""

    request_id: str
    entry_id: str | None


class IntakeStream(Protocol):
    def add(self, entry: IntakeEntry, key: str | None, key_ttl: int) -> Accepted: ...

    def add_all(
        self, parts: Iterable[Sequence[tuple[IntakeEntry, str | None]]], key_ttl: int
    ) -> dict[str, Accepted]: ...

    def read(self, consumer: str, max_requests: int, reclaim_idle_ms: int) -> list[StreamEntry]: ...

    def ack(self, entries: Sequence[StreamEntry]) -> None: ...

    def dead_letter(self, entries: Sequence[StreamEntry], reason: str) -> None: ...

    def bury(self, items: Sequence[tuple[StreamEntry, str]]) -> None: ...

    def depth(self) -> int: ...


class RedisIntakeStream:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self._add = client.register_script(_ADD)
        self._create_group = client.register_script(_CREATE_GROUP)
        self._ack = client.register_script(_ACK)
        self._group_ready = False

    def add(self, entry: IntakeEntry, key: str | None, key_ttl: int) -> Accepted:
        fields = encode_fields(entry)
        keys = [self._keys.intake_stream, self._keys.intake_ledger]
        if key is not None:
            keys.append(self._keys.idempotency(key))
        epoch, since = new_epoch([entry])
        args = [entry.request_id, fields["p"], fields["m"], epoch, since, key_ttl]
        return _accepted(self._run_add(keys, args))

    def _run_add(self, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA of the add script on a pooled connection, without redis-py's
        generic command path: its per-call hooks and lookups cost a single enqueue
        about a third of a loopback round trip (bench/README.md). The client's own
        policy is kept: one more try on a dropped connection (a Redis restart),
        none on a timeout; a lost script cache (a restarted Redis) falls back to
        EVAL, which loads it."""
        pool = self._redis.connection_pool
        for tries_left in (1, 0):
            conn: Any = pool.get_connection()
            try:
                try:
                    conn.send_command("EVALSHA", self._add.sha, len(keys), *keys, *args)
                    return conn.read_response()
                except redis.exceptions.NoScriptError:
                    conn.send_command("EVAL", _ADD, len(keys), *keys, *args)
                    return conn.read_response()
            except redis.ConnectionError:
                conn.disconnect()
                if not tries_left:
                    raise
            except redis.ResponseError:
                raise  # an answer (a refusal): the connection is in step, keep it
            except BaseException:
                conn.disconnect()  # a timeout or interruption may leave a reply unread
                raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")

    def add_all(
        self, parts: Iterable[Sequence[tuple[IntakeEntry, str | None]]], key_ttl: int
    ) -> dict[str, Accepted]:
        """Add every part's requests in ONE transaction: all are accepted, or none.
        Returns what became of each, by the request id it was given.

        The commands are streamed inside MULTI part by part, so the producer never
        holds them all; Redis refuses a queued write at maxmemory, which aborts
        the whole EXEC, and a connection lost before EXEC discards it.
        """
        conn: Any = self._redis.connection_pool.get_connection()
        try:
            conn.send_command("MULTI")
            conn.read_response()
            shapes: list[Shape] = []
            accepted = 0
            first: list[IntakeEntry] = []
            for part in parts:
                first = first or [entry for entry, _key in part[:1]]
                commands, part_shapes, count = self._part_commands(part, key_ttl)
                conn.send_packed_command(conn.pack_commands(commands))
                for _ in commands:
                    conn.read_response()  # QUEUED, or raises (OOM): the MULTI is dropped below
                shapes += part_shapes
                accepted += count
            epoch, since = new_epoch(first)
            ledger = self._keys.intake_ledger
            tail = [("HSETNX", ledger, "epoch", epoch), ("HSETNX", ledger, "since", since)]
            tail.append(("HINCRBY", ledger, "accepted", accepted))
            conn.send_packed_command(conn.pack_commands([*tail, ("EXEC",)]))
            for _ in tail:
                conn.read_response()
            replies = conn.read_response()
        except BaseException:
            # Closing the connection discards a transaction not yet executed.
            conn.disconnect()
            raise
        finally:
            self._redis.connection_pool.release(conn)
        return _accepted_all(replies, shapes)

    def add_many(self, entries: Sequence[IntakeEntry]) -> None:
        """Add requests without keys, bundled, all or none."""
        self.add_all([[(entry, None) for entry in entries]], key_ttl=0)

    def _part_commands(
        self, part: Sequence[tuple[IntakeEntry, str | None]], key_ttl: int
    ) -> tuple[list[tuple[Any, ...]], list[Shape], int]:
        """One part's commands, the shape of each reply, and the requests counted as accepted.

        Keyed requests count themselves (their script skips a key already held)."""
        stream = self._keys.intake_stream
        commands: list[tuple[Any, ...]] = []
        shapes: list[Shape] = []
        plain = [entry for entry, key in part if key is None]
        extra = 0
        for bundle in bundles(plain):
            fields = encode_bundle(bundle)
            commands.append(("XADD", stream, "*", *(x for kv in fields.items() for x in kv)))
            shapes.append(("bundle", [e.request_id for e in bundle]))
            extra += len(bundle) - 1
        if extra:
            commands.append(("INCRBY", self._keys.intake_bundled_extra, extra))
            shapes.append(("extra", []))
        epoch, since = new_epoch([entry for entry, _key in part[:1]])
        for entry, key in part:
            if key is None:
                continue
            one = encode_fields(entry)
            keys = [stream, self._keys.intake_ledger, self._keys.idempotency(key)]
            args = [entry.request_id, one["p"], one["m"], epoch, since, key_ttl]
            commands.append(("EVAL", _ADD, len(keys), *keys, *args))
            shapes.append(("key", [entry.request_id]))
        return commands, shapes, len(plain)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    def entry_exists(self, entry_id: str) -> bool:
        """Whether a stream entry still waits (deleted only after SQL has it, or lost)."""
        return bool(self._redis.xrange(self._keys.intake_stream, entry_id, entry_id, count=1))

    def oldest_entry_ms(self) -> int | None:
        """Redis time (ms) of the oldest entry still waiting; None when none waits."""
        first: Any = self._redis.xrange(self._keys.intake_stream, count=1)
        return int(first[0][0].split(b"-")[0]) if first else None

    def ledger(self) -> dict[str, str]:
        raw: Any = self._redis.hgetall(self._keys.intake_ledger)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def lookup_key(self, key: str) -> str | None:
        value = self._redis.get(self._keys.idempotency(key))
        return value.decode() if isinstance(value, bytes) else None

    def ensure_group(self) -> None:
        if self._group_ready:
            return
        # From id 0, so entries added before the group existed are read too.
        reply = self._create_group(keys=[self._keys.intake_stream], args=[self._keys.intake_group])
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        if text != "OK" and not text.startswith("BUSYGROUP"):
            raise redis.ResponseError(text)
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


def new_epoch(first: Sequence[IntakeEntry]) -> tuple[str, int]:
    """A candidate epoch id for the ledger and its start, used only if none is set.

    The start is the first request's id time (ids begin with their ms), not
    now: the loss count looks for the epoch's requests by id from there.
    """
    since = int(first[0].request_id[:12], 16) if first else time.time_ns() // 1_000_000
    return f"{random.getrandbits(64):016x}", since


def _accepted(reply: Any) -> Accepted:
    request_id = reply[0].decode()
    return Accepted(request_id, reply[1].decode() if len(reply) > 1 else None)


def _accepted_all(replies: Any, shapes: list[Shape]) -> dict[str, Accepted]:
    """The EXEC replies matched to what was queued (the ledger's three come last)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    out: dict[str, Accepted] = {}
    for reply, (kind, ids) in zip(replies, shapes, strict=False):
        if kind == "key":
            out[ids[0]] = _accepted(reply)
        elif kind == "bundle":
            out.update((i, Accepted(i, reply.decode())) for i in ids)
    return out


def _to_entries(items: Iterable[Any]) -> list[StreamEntry]:
    # XAUTOCLAIM reports entries deleted meanwhile as (id, None): nothing to do.
    return [StreamEntry(entry_id, fields) for entry_id, fields in items if fields]
