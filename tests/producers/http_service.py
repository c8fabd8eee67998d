"""`batchline serve` as a subprocess, and a plain http.client caller (not batchline's code)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchline.http_api.auth import token_digest
from batchline.local import free_port
from harness.processes import BIN, ServiceProcesses, wait_for

# Tokens the tests present; the service is given only their digests.
ADMIN_TOKEN = "tok-admin-" + "a" * 20
ACME_TOKEN = "tok-acme-" + "b" * 20
GLOBEX_TOKEN = "tok-globex-" + "c" * 20
TOKENS = ",".join(
    [
        token_digest(ADMIN_TOKEN),
        f"{token_digest(ACME_TOKEN)}:tenant=acme",
        f"{token_digest(GLOBEX_TOKEN)}:tenant=globex",
    ]
)
BODY_LIMIT = 200_000


def http_env(port: int) -> dict[str, str]:
    return {
        "BATCHLINE_HTTP_TOKENS": TOKENS,
        "BATCHLINE_HTTP_BIND": f"127.0.0.1:{port}",
        "BATCHLINE_HTTP_MAX_BODY_BYTES": str(BODY_LIMIT),
    }


class Api:
    """A caller that speaks plain HTTP/1.1, as any non-Python producer would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def call(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | Iterable[bytes] | None = None,
        *,
        token: str | None = ADMIN_TOKEN,
        headers: dict[str, str] | None = None,
        timeout: float = 90,
    ) -> tuple[int, dict[str, str], Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            chunked = body is not None and not isinstance(body, bytes)
            conn.request(method, path, body=body, headers=sent, encode_chunked=chunked)
            response = conn.getresponse()
            raw = response.read()
            got = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        ctype = got.get("content-type", "")
        return response.status, got, json.loads(raw) if "json" in ctype else raw.decode()


def start_serve(procs: ServiceProcesses, log_dir: Path) -> Api:
    port = free_port()
    procs.env.update(http_env(port))
    procs.start("serve", [str(BIN / "batchline"), "serve"])
    api = Api(port)

    def up() -> bool:
        if procs.procs["serve"].poll() is not None:
            raise AssertionError("batchline serve exited:\n" + procs.log("serve"))
        try:
            return api.call("GET", "/health", token=None, timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(up, 30, "batchline serve to answer /health")
    return api
