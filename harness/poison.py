"""Poison and hostile-stream faults, as reusable pieces for fault tests and the chaos run.

- `POISON_ENTRIES`: intake stream entries no `enqueue` writes but another writer
  might (a comma or a non-hex digit in the id, an id too long, a time that
  overflows, a key that is not a string, U+0000 in a tag, a bundle with one bad
  request). `write_poison(client, kind)` XADDs one straight into the stream.
- `failing_rows(monkeypatch, fault, only=)`: intake's `request_row` raises
  `fault` for one request (poison its checks missed) or for every request (a
  bad deploy); returns the fix, which puts the real one back.
- `nul_in_reply`, `unknown_request`: rewrites of a results body for
  `HostileApi.spoil_results` (U+0000 in one reply's text; one line naming a
  request that does not exist).
- `HostileResults`: `harness.hostile_api.HostileApi`, whose results downloads
  can be spoiled as they go (`StreamFault`: one line made endless, or the whole
  body trickled). It counts downloads and the most that ran at once per batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis

from batchline.domain.custom_ids import new_request_id
from batchline.keys import RedisKeys
from harness.hostile_api import HostileApi
from harness.hostile_api import StreamFault as StreamFault  # re-exported for the tests

PARAMS = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _meta(**extra: object) -> bytes:
    return orjson.dumps({"model": "claude-test", "t": round(time.time(), 3), **extra})


def _entry(request_id: str, meta: bytes) -> dict[bytes, bytes]:
    return {b"id": request_id.encode(), b"p": orjson.dumps(PARAMS), b"m": meta}


def _bundle_with_one_bad() -> dict[bytes, bytes]:
    good = [new_request_id() for _ in range(2)]
    return {
        b"id": " ".join([good[0], "not-hex-" + "z" * 24, good[1]]).encode(),
        b"p": b"\n".join([orjson.dumps(PARAMS)] * 3),
        b"m": b"\n".join([_meta()] * 3),
    }


# kind -> the fields of one stream entry no `enqueue` writes.
POISON_ENTRIES: dict[str, Callable[[], dict[bytes, bytes]]] = {
    "comma-in-id": lambda: _entry(new_request_id()[:16] + "," + new_request_id()[:15], _meta()),
    "id-over-32": lambda: _entry(new_request_id() + "abcdef01", _meta()),
    "non-hex-id": lambda: _entry("z" * 32, _meta()),
    "t-overflows": lambda: _entry(new_request_id(), _meta(t="1e400")),
    "key-not-a-string": lambda: _entry(new_request_id(), _meta(key=12345)),
    "nul-in-tag": lambda: _entry(new_request_id(), _meta(tags={"team": "a\u0000b"})),
    "priority-out-of-range": lambda: _entry(new_request_id(), _meta(priority=99)),
    "bundle-one-bad": _bundle_with_one_bad,
}


def write_poison(client: redis.Redis, kind: str, keys: RedisKeys | None = None) -> bytes:
    """XADD one poison entry of `kind` into the intake stream; returns its stream id."""
    stream = (keys or RedisKeys()).intake_stream
    entry_id: bytes = client.xadd(stream, POISON_ENTRIES[kind]())  # type: ignore[arg-type,assignment]
    return entry_id


def failing_rows(
    monkeypatch: pytest.MonkeyPatch, fault: Exception, only: str | None = None
) -> Callable[[], None]:
    """intake's request_row raises `fault` for the request `only`, or for every
    request when None; returns the fix (the real request_row back)."""
    from batchline.services import intake

    real = intake.request_row

    def failing(entry: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if only is None or entry.request_id == only:
            raise fault
        return real(entry, *args, **kwargs)

    monkeypatch.setattr(intake, "request_row", failing)
    return lambda: monkeypatch.setattr(intake, "request_row", real)


def dead_letters(client: redis.Redis, keys: RedisKeys | None = None) -> list[dict[bytes, bytes]]:
    stream = (keys or RedisKeys()).dead_letters
    entries: Any = client.xrange(stream)
    return [fields for _, fields in entries]


def stream_fields(client: redis.Redis, entry_id: bytes, keys: RedisKeys | None = None) -> Any:
    """The fields of one intake stream entry."""
    stream = (keys or RedisKeys()).intake_stream
    entries: Any = client.xrange(stream, entry_id, entry_id)
    return entries[0][1]


# --- spoiled results bodies (for HostileApi.spoil_results) --------------------


def _rewrite_first(body: bytes, change: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    lines = sorted(
        (line for line in body.split(b"\n") if line.strip()),
        key=lambda line: orjson.loads(line)["custom_id"],
    )
    lines[0] = orjson.dumps(change(orjson.loads(lines[0])))
    return b"\n".join(lines) + b"\n"


def nul_in_reply(body: bytes) -> bytes:
    """The first request's (by custom_id) reply text gets a U+0000, written as `\\u0000`."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc["result"]["message"]["content"][0]["text"] += "\u0000 after a NUL"
        return doc

    return _rewrite_first(body, change)


def unknown_request(body: bytes) -> bytes:
    """One more line, batchline-shaped, naming a request that does not exist."""
    first = orjson.loads(sorted(line for line in body.split(b"\n") if line.strip())[0])
    first["custom_id"] = f"bl{new_request_id()}-1"
    return body.rstrip(b"\n") + b"\n" + orjson.dumps(first) + b"\n"


# --- the results relay: one relay for every spoiled answer (harness/hostile_api.py) ---

# Kept under this name for the tests that stream results through it.
HostileResults = HostileApi


def peak_memory_kib(pid: int) -> int:
    """The kernel's high-water mark of a process's resident memory (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise LookupError(f"no VmHWM for {pid}")


def children(pid: int) -> list[int]:
    """Direct children of a process (a Celery worker's pool processes)."""
    found = []
    for task in _listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found += [int(c) for c in listing.read().split()]
        except OSError:
            continue
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
