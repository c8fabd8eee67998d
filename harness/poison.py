"""Poison and hostile-stream faults, as reusable pieces for fault tests and the chaos run.

- `POISON_ENTRIES`: intake stream entries no `enqueue` writes but another writer
  might (a comma or a non-hex digit in the id, an id too long, a time that
  overflows, a key that is not a string, U+0000 in a tag, a bundle with one bad
  request). `write_poison(client, kind)` XADDs one straight into the stream.
- `nul_in_reply`, `unknown_request`: rewrites of a results body for
  `HostileApi.spoil_results` (U+0000 in one reply's text; one line naming a
  request that does not exist).
- `HostileResults`: a loopback relay in front of the emulator whose results
  downloads stream for real (not buffered) and can be spoiled as they go: one
  line made endless (`endless_line_bytes`), or the whole body trickled
  (`trickle`). It counts downloads and the most that ran at once per batch.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis

from batchline.domain.custom_ids import new_request_id
from batchline.keys import RedisKeys

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
    "bundle-one-bad": _bundle_with_one_bad,
}


def write_poison(client: redis.Redis, kind: str, keys: RedisKeys | None = None) -> bytes:
    """XADD one poison entry of `kind` into the intake stream; returns its stream id."""
    stream = (keys or RedisKeys()).intake_stream
    entry_id: bytes = client.xadd(stream, POISON_ENTRIES[kind]())  # type: ignore[arg-type,assignment]
    return entry_id


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


# --- a results relay that streams, and can make one line endless or trickle ---


@dataclass
class StreamFault:
    # The first line (by custom_id) grows to this many bytes before its end.
    endless_line_bytes: int = 0
    # Each piece of the body is this many bytes, sent after this pause.
    trickle_bytes: int = 0
    trickle_pause: float = 0.0


class HostileResults:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.fault = StreamFault()
        self.lock = threading.Lock()
        self.downloads = 0
        self.active: dict[str, int] = defaultdict(int)
        self.max_active: dict[str, int] = defaultdict(int)
        self.total_active = 0
        self.max_total = 0  # the most downloads at once, over all batches
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.relay = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileResults:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.fault = StreamFault()
        self._server.shutdown()
        self._server.server_close()

    def most_at_once(self) -> int:
        """The most downloads of one batch that ran at once."""
        with self.lock:
            return max(self.max_active.values(), default=0)

    def _enter(self, path: str) -> None:
        with self.lock:
            self.downloads += 1
            self.active[path] += 1
            self.max_active[path] = max(self.max_active[path], self.active[path])
            self.total_active += 1
            self.max_total = max(self.max_total, self.total_active)

    def _leave(self, path: str) -> None:
        with self.lock:
            self.active[path] -= 1
            self.total_active -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    relay: HostileResults


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._relay("GET")

    def do_POST(self) -> None:
        self._relay("POST")

    def do_DELETE(self) -> None:
        self._relay("DELETE")

    def _relay(self, method: str) -> None:
        relay = self.server.relay
        path = self.path.split("?", 1)[0]
        status, headers, body = self._forward(method)
        if not (path.endswith("/results") and status == 200):
            self._send_whole(status, headers, body)
            return
        relay._enter(path)
        try:
            self._stream(body, relay.fault)
        except OSError:
            pass  # the worker hung up (deadline, shutdown): nothing more to send
        finally:
            relay._leave(path)

    def _stream(self, body: bytes, fault: StreamFault) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/binary")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        if fault.endless_line_bytes:
            self._endless_first_line(body, fault.endless_line_bytes)
            return
        step = fault.trickle_bytes or len(body) or 1
        for start in range(0, len(body), step):
            if fault.trickle_bytes:
                time.sleep(fault.trickle_pause)
            self.wfile.write(body[start : start + step])
            self.wfile.flush()

    def _endless_first_line(self, body: bytes, size: int) -> None:
        lines = sorted(
            (line for line in body.split(b"\n") if line.strip()),
            key=lambda line: orjson.loads(line)["custom_id"],
        )
        custom_id = orjson.loads(lines[0])["custom_id"]
        head = b'{"custom_id":"%s","result":{"type":"succeeded","message":{"content":' % (
            custom_id.encode()
        )
        self.wfile.write(head + b'[{"type":"text","text":"')
        piece = b"a" * (1 << 16)
        for _ in range(size // len(piece)):
            self.wfile.write(piece)
        self.wfile.write(b'"}]}}}\n' + b"\n".join(lines[1:]) + b"\n")
        self.wfile.flush()

    def _forward(self, method: str) -> tuple[int, dict[str, str], bytes]:
        relay = self.server.relay
        payload = self._body()
        conn = http.client.HTTPConnection(
            relay.upstream.hostname or "127.0.0.1", relay.upstream.port, timeout=60
        )
        try:
            skip = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            conn.request(method, self.path, body=payload, headers=headers)
            answer = conn.getresponse()
            # results_url is absolute: point it back through this relay.
            body = answer.read().replace(
                relay.upstream.netloc.encode(), urlsplit(relay.base_url).netloc.encode()
            )
            keep = {"content-type", "request-id"}
            return answer.status, {k: v for k, v in answer.getheaders() if k.lower() in keep}, body
        finally:
            conn.close()

    def _body(self) -> bytes | None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else None

    def _send_whole(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


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
