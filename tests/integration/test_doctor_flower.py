"""doctor's Flower check: an open Flower fails, an authenticated one passes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from batchline.doctor import check_flower

pytestmark = pytest.mark.integration


def _server(status: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(params=[200, 401])
def flower(request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    server = _server(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield request.param, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_doctor__flower_without_auth_is_a_failure(flower: tuple[int, str]) -> None:
    status, url = flower
    [finding] = check_flower(url)
    assert finding.ok == (status == 401)
    if status == 200:
        assert "without authentication" in finding.what and "--basic-auth" in finding.fix
