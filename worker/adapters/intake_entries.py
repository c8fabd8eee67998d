"""The intake stream's entries: one request, or a bundle of many, as written and read back.

An entry holds one request or, from `enqueue_many`, a bundle of up to
BUNDLE_MAX_REQUESTS: ids joined by spaces, params and metas by newlines (compact
JSON never holds a raw newline). Per-command overhead, not bytes, bounds what
Redis and redis-py take in, and a bundle pays it once for many requests.
Reading is as strict as enqueue: whatever else writes to the stream cannot get
a value into SQL that the store refuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from batchline.domain.custom_ids import REQUEST_ID_PATTERN
from batchline.domain.validation import InvalidRequest, check_entry_meta

BUNDLE_MAX_REQUESTS = 100
BUNDLE_MAX_BYTES = 1 << 20


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
