"""A loopback HTTP relay in front of the emulator that can spoil what it answers.

Everything is forwarded to the emulator with the headers the SDK and the
service read (the API's `Date`, which the service takes as the API's clock,
`retry-after`, `request-id`, ...), except while a spoiler is set:

- `spoil_results(rewrite)`: a results body is rewritten (bytes in, bytes out);
- `spoil_retrieve(body)`: a retrieve is answered HTTP 200 with that body;
- `fault = StreamFault(...)`: results downloads stream for real and one line is
  made endless (`endless_line_bytes`), or the whole body trickles (`trickle_*`).

The rewrite and retrieve spoilers are one-shot by default (`times=1`), so a
test sees the damage once and the retry clean. The relay counts downloads and
the most that ran at once per batch.
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

Rewrite = Callable[[bytes], bytes]

# Hop-by-hop, or recomputed by this relay: never copied from one side to the other.
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding"}
)


@dataclass
class StreamFault:
    # The first line (by custom_id) grows to this many bytes before its end.
    endless_line_bytes: int = 0
    # Each piece of the body is this many bytes, sent after this pause.
    trickle_bytes: int = 0
    trickle_pause: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.endless_line_bytes or self.trickle_bytes)


class HostileApi:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.fault = StreamFault()
        self.lock = threading.Lock()
        self._results: list[Rewrite] = []
        self._retrieve: list[bytes] = []
        self.spoiled = 0
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

    def start(self) -> HostileApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.fault = StreamFault()
        self._server.shutdown()
        self._server.server_close()

    def spoil_results(self, rewrite: Rewrite, times: int = 1) -> None:
        with self.lock:
            self._results.extend([rewrite] * times)

    def spoil_retrieve(self, body: bytes, times: int = 1) -> None:
        with self.lock:
            self._retrieve.extend([body] * times)

    def most_at_once(self) -> int:
        """The most downloads of one batch that ran at once."""
        with self.lock:
            return max(self.max_active.values(), default=0)

    def _take(self, queue: list[Any]) -> Any:
        with self.lock:
            if not queue:
                return None
            self.spoiled += 1
            return queue.pop(0)

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
    relay: HostileApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A worker SIGKILLed mid-request resets its connection: expected, not news.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._relay("GET")

    def do_POST(self) -> None:
        self._relay("POST")

    def do_DELETE(self) -> None:
        self._relay("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _relay(self, method: str) -> None:
        relay = self.server.relay
        path = self.path.split("?", 1)[0]
        is_retrieve = method == "GET" and path.count("/") == 4 and "/batches/" in path
        spoiled = relay._take(relay._retrieve) if is_retrieve else None
        if spoiled is not None:
            self._send_whole(200, [("content-type", "application/json")], spoiled)
            return
        try:
            status, headers, body = self._forward(method)
        except (http.client.HTTPException, OSError):
            # The emulator hung up without an answer (a lost create): so does the relay.
            self.close_connection = True
            return
        if not (path.endswith("/results") and status == 200):
            self._send_whole(status, headers, body)
            return
        rewrite = relay._take(relay._results)
        if rewrite is not None:
            body = rewrite(body)
        relay._enter(path)
        try:
            self._stream(headers, body, relay.fault)
        except OSError:
            pass  # the worker hung up (deadline, shutdown): nothing more to send
        finally:
            relay._leave(path)

    def _forward(self, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        relay = self.server.relay
        payload = self._body()
        conn = http.client.HTTPConnection(
            relay.upstream.hostname or "127.0.0.1", relay.upstream.port, timeout=60
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
            conn.request(method, self.path, body=payload, headers=headers)
            answer = conn.getresponse()
            # results_url is absolute: point it back through this relay.
            body = answer.read().replace(
                relay.upstream.netloc.encode(), urlsplit(relay.base_url).netloc.encode()
            )
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _NOT_FORWARDED]
            return answer.status, kept, body
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

    def _head(self, status: int, headers: list[tuple[str, str]]) -> None:
        # send_response_only: send_response would add this relay's own Date and
        # Server beside the API's, and the service reads the API's Date as its clock.
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)

    def _send_whole(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._head(status, headers)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, headers: list[tuple[str, str]], body: bytes, fault: StreamFault) -> None:
        if not fault.active:
            self._send_whole(200, headers, body)
            return
        self._head(200, headers)
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        if fault.endless_line_bytes:
            self._endless_first_line(body, fault.endless_line_bytes)
            return
        for start in range(0, len(body), fault.trickle_bytes):
            time.sleep(fault.trickle_pause)
            self.wfile.write(body[start : start + fault.trickle_bytes])
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
