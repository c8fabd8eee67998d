"""The HTTP server: stdlib `ThreadingHTTPServer`, HTTP/1.1 keep-alive, one thread
per connection, with byte-level control for the faults (lost answers, cut
streams, split chunks). `EmulatorServer` is the public face.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from .admin import EmulatorAdmin, Records
from .app import Answer, App, DropAnswer, EventAnswer, JsonAnswer, Request, StreamAnswer
from .bodies import BodyError, ClientGone, read_body
from .clock import EmulatedClock
from .errors import TYPE_BY_STATUS, ApiError, error_body
from .faults import FaultConfig, FaultState
from .ids import request_id
from .results import ResultWriter, StreamCut
from .service import BatchService
from .store import Store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024 * 1024
_JOIN_SECONDS = 5.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "batchline-emulator"
    disable_nagle_algorithm = True  # small fault pieces must leave one by one
    server: _HTTPServer
    _headers_sent = False

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests the stdlib refuses itself, answered in the API's shape."""
        self.close_connection = True
        self._headers_sent = False
        fallback = "invalid_request_error" if code < 500 else "api_error"
        error_type = TYPE_BY_STATUS.get(code, fallback)
        text = message or self.responses.get(code, ("Bad request",))[0]
        self._send_error(ApiError(error_type, text, status=code), request_id())

    def _handle(self, method: str) -> None:
        rid = request_id()
        self._headers_sent = False  # the handler serves every request of its connection
        try:
            body = read_body(self.rfile, self.headers, self.server.max_body_bytes)
            self._answer(self.server.app.dispatch(self._request(method, body)), rid)
        except BodyError as exc:
            self.close_connection = True
            self._send_error(exc, rid)
        except ApiError as exc:
            self._send_error(exc, rid)
        except (ClientGone, StreamCut, ConnectionError):
            self.close_connection = True
        except Exception:
            log.exception("emulator failed on %s %s", method, urlsplit(self.path).path)
            self.close_connection = True
            if not self._headers_sent:
                self._send_error(ApiError("api_error", "Internal server error"), rid)

    def _request(self, method: str, body: bytes | bytearray) -> Request:
        url = urlsplit(self.path)
        host = self.headers.get("Host")
        base_url = f"http://{host}" if host else self.server.base_url
        query = parse_qs(url.query, keep_blank_values=True)
        return Request(method, url.path, query, self.headers, body, base_url)

    def _answer(self, answer: Answer, rid: str) -> None:
        if isinstance(answer, DropAnswer):
            self.close_connection = True
        elif isinstance(answer, JsonAnswer):
            self._send_json(answer.status, answer.body, rid, answer.headers)
        elif isinstance(answer, StreamAnswer):
            self._send_stream(answer, rid)
        elif isinstance(answer, EventAnswer):
            self._send_events(answer, rid)

    def _send_json(
        self, status: int, body: object, rid: str, headers: Mapping[str, str] | None = None
    ) -> None:
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", rid)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._headers_sent = True
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_stream(self, answer: StreamAnswer, rid: str) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/binary")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("request-id", rid)
            self.end_headers()
            self._headers_sent = True
            ResultWriter(self.wfile, answer.faults, answer.rng).write(answer.lines)
        finally:
            close = getattr(answer.lines, "close", None)
            if close is not None:
                close()

    def _send_events(self, answer: EventAnswer, rid: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", rid)
        self.end_headers()
        self._headers_sent = True
        for event in answer.events:  # one chunk per event, as the API flushes them
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.write(b"0\r\n\r\n")

    def _send_error(self, exc: ApiError, rid: str) -> None:
        if self._headers_sent:
            self.close_connection = True
            return
        body = error_body(exc.error_type, exc.message, rid)
        self._send_json(exc.status, body, rid, exc.headers)

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header in emulated time, so a shifted clock shows in it as in created_at.
        service = self.server.app.service
        now = service.clock.now() if timestamp is None else timestamp
        return formatdate(now, usegmt=service.faults.config.date_header_zone == "GMT")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only: never headers, so never the API key.
        log.debug("%s - %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a fleet of workers may connect at once

    def __init__(self, address: tuple[str, int], app: App, max_body_bytes: int) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.base_url = ""
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self._work, args=(request, client_address), name="emulator-connection"
        )
        worker.daemon = True
        with self._lock:
            self._connections.add(request)
            self._workers.add(worker)
        worker.start()

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._lock:
            connections, workers = list(self._connections), list(self._workers)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for worker in workers:
            worker.join(_JOIN_SECONDS)


class EmulatorServer:
    """An emulator of the Message Batches API on a real socket.

    `EmulatorServer(port=0).start()` serves in a background thread; give
    `base_url` to the SDK (`anthropic.Anthropic(base_url=..., api_key=...)`).
    `api_key=None` accepts any non-empty key. `data_dir` keeps the SQLite file
    (default: a temporary directory removed by `stop()`). `max_queued_requests`
    limits the requests waiting in unended batches (a create over it gets the
    API's 429); None: no limit.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_seconds: float = 2.0,
        api_key: str | None = None,
        faults: FaultConfig | None = None,
        data_dir: Path | None = None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock_speed: float = 1.0,
        max_queued_requests: int | None = None,
        clock_offset_seconds: float = 0.0,
    ) -> None:
        if processing_seconds < 0:
            raise ValueError("processing_seconds must be >= 0")
        if max_queued_requests is not None and max_queued_requests < 1:
            raise ValueError("max_queued_requests must be >= 1")
        self.max_queued_requests = max_queued_requests
        self.host = host
        self._port = port
        self.processing_seconds = processing_seconds
        self._api_key = api_key
        self.faults = FaultState(faults)
        self.clock = EmulatedClock(clock_speed, offset_seconds=clock_offset_seconds)
        self._data_dir = data_dir
        self._max_body_bytes = max_body_bytes
        self._temp_dir: Path | None = None
        self._store: Store | None = None
        self._service: BatchService | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> EmulatorServer:
        if self._httpd is not None:
            return self
        directory = self._data_dir
        if directory is None:
            directory = self._temp_dir = Path(tempfile.mkdtemp(prefix="batchline-emulator-"))
        directory.mkdir(parents=True, exist_ok=True)
        self._store = Store(directory / "emulator.sqlite3")
        self._service = BatchService(
            self._store,
            self.clock,
            self.faults,
            self.processing_seconds,
            max_queued_requests=self.max_queued_requests,
        )
        app = App(self._service, self._api_key)
        self._httpd = _HTTPServer((self.host, self._port), app, self._max_body_bytes)
        self._httpd.base_url = self.base_url
        self._stop_requested.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator"
        )
        self._thread.daemon = True
        self._thread.start()
        log.info("Message Batches emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        self._stop_requested.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(_JOIN_SECONDS)
        if self._store is not None:
            self._store.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def serve_forever(self) -> None:
        """Serve until `stop()`, or SIGINT/SIGTERM when called from the main thread."""
        self.start()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            self._stop_requested.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d received; stopping the emulator", signum)
        self._stop_requested.set()

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults.replace(faults)

    def records(self, *, custom_ids: bool = False) -> Records:
        if self._service is None:
            raise RuntimeError("the emulator is not started")
        return Records.from_dict(self._service.records(with_custom_ids=custom_ids))

    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.base_url)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
