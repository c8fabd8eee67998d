"""A loopback HTTP stub in front of the emulator that can spoil its answers.

Everything is forwarded to the emulator unchanged, except while a spoiler is
set: `results` rewrites a results body (bytes in, bytes out), `retrieve_body`
answers retrieves with HTTP 200 and that body. Each spoiler is one-shot by
default (`times=1`), so a test sees the damage once and the retry clean.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Rewrite = Callable[[bytes], bytes]


class HostileApi:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self._lock = threading.Lock()
        self._results: list[Rewrite] = []
        self._retrieve: list[bytes] = []
        self.spoiled = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spoil_results(self, rewrite: Rewrite, times: int = 1) -> None:
        with self._lock:
            self._results.extend([rewrite] * times)

    def spoil_retrieve(self, body: bytes, times: int = 1) -> None:
        with self._lock:
            self._retrieve.extend([body] * times)

    def _take(self, queue: list[Any]) -> Any:
        with self._lock:
            if not queue:
                return None
            self.spoiled += 1
            return queue.pop(0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: HostileApi


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
        path = self.path.split("?", 1)[0]
        is_results = path.endswith("/results")
        is_retrieve = method == "GET" and path.count("/") == 4 and "/batches/" in path
        spoiled = self.server.stub._take(self.server.stub._retrieve) if is_retrieve else None
        if spoiled is not None:
            self._send(200, {"content-type": "application/json"}, spoiled)
            return
        status, headers, body = self._forward(method)
        rewrite = (
            self.server.stub._take(self.server.stub._results)
            if is_results and status == 200
            else None
        )
        if rewrite is not None:
            body = rewrite(body)
        self._send(status, headers, body)

    def _forward(self, method: str) -> tuple[int, dict[str, str], bytes]:
        payload = self._body()
        conn = http.client.HTTPConnection(
            self.server.stub.upstream.hostname or "127.0.0.1",
            self.server.stub.upstream.port,
            timeout=60,
        )
        try:
            skip = {"host", "content-length", "connection", "accept-encoding"}
            skip.add("transfer-encoding")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
            conn.request(method, self.path, body=payload, headers=headers)
            answer = conn.getresponse()
            # results_url is absolute: point it back through this stub.
            body = answer.read().replace(
                self.server.stub.upstream.netloc.encode(),
                urlsplit(self.server.stub.base_url).netloc.encode(),
            )
            keep = {"content-type", "request-id"}
            out = {k: v for k, v in answer.getheaders() if k.lower() in keep}
            return answer.status, out, body
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

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
