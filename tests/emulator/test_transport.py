"""HTTP details: chunked request bodies, streamed results, keep-alive."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types.messages import MessageBatch

from batchline.emulator import EmulatorServer, FaultConfig
from tests.emulator.helpers import API_HEADERS, ended, questions, strict_result
from tests.emulator_fixtures import make_async_client

pytestmark = pytest.mark.emulator


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_create__a_streamed_chunked_body_as_batchline_sends_it(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    body = orjson.dumps({"requests": questions(50)})

    batch = emulator_client.post(
        "/v1/messages/batches",
        content=_pieces(body, 777),
        cast_to=MessageBatch,
        options={"headers": {"content-type": "application/json"}},
    )

    assert batch.request_counts.processing == 50
    assert emulator.records().batches[0].request_count == 50


def test_create__an_async_streamed_chunked_body(emulator: EmulatorServer) -> None:
    body = orjson.dumps({"requests": questions(5)})

    async def pieces() -> AsyncIterator[bytes]:
        for piece in _pieces(body, 100):
            yield piece

    async def create() -> MessageBatch:
        async with make_async_client(emulator) as client:
            return await client.post(
                "/v1/messages/batches",
                content=pieces(),
                cast_to=MessageBatch,
                options={"headers": {"content-type": "application/json"}},
            )

    assert asyncio.run(create()).request_counts.processing == 5


def test_results__plain_httpx2_line_streaming_reads_every_result(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(30))
    done = ended(emulator, emulator_client, batch.id)
    assert done.results_url is not None

    with httpx2.Client() as http, http.stream("GET", done.results_url, headers=API_HEADERS) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.headers["request-id"].startswith("req_")
        custom_ids = [strict_result(line).custom_id for line in r.iter_lines() if line]

    assert sorted(custom_ids) == sorted(f"q-{i}" for i in range(30))


def test_keep_alive__one_connection_serves_many_requests_and_errors(
    emulator: EmulatorServer,
) -> None:
    peers = set()
    with httpx2.Client(base_url=emulator.base_url, headers=API_HEADERS) as http:
        for path in ("/v1/messages/batches", "/v1/messages/batches/nope", "/v1/nothing") * 3:
            response = http.get(path)
            stream = response.extensions["network_stream"]
            peers.add(stream.get_extra_info("client_addr"))

    assert len(peers) == 1


def test_concurrency__creates_are_served_while_a_slow_download_runs(
    emulator: EmulatorServer, emulator_client: anthropic.Anthropic
) -> None:
    batch = emulator_client.messages.batches.create(requests=questions(20))
    ended(emulator, emulator_client, batch.id)
    emulator.set_faults(
        FaultConfig(
            results_split_chunks=True, results_split_max_bytes=64, results_chunk_delay_seconds=0.002
        )
    )
    url = f"{emulator.base_url}/v1/messages/batches/{batch.id}/results"

    with httpx2.Client() as http, http.stream("GET", url, headers=API_HEADERS) as slow:
        chunks = slow.iter_bytes()
        first = next(chunks)
        started = time.monotonic()
        other = emulator_client.messages.batches.create(requests=questions(3))
        elapsed = time.monotonic() - started
        rest = b"".join(chunks)

    assert other.request_counts.processing == 3
    assert elapsed < 1.0
    assert (first + rest).count(b"\n") == 20


def test_stop__closes_idle_keep_alive_connections_promptly(
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    emulator = emulator_factory()
    url = emulator.base_url + "/v1/messages/batches"
    with httpx2.Client(headers=API_HEADERS) as http:
        assert http.get(url).status_code == 200
        started = time.monotonic()
        emulator.stop()
        stopped_in = time.monotonic() - started
        with pytest.raises(httpx2.TransportError):
            http.get(url)

    assert stopped_in < 2.0


def test_malformed_request__is_answered_in_the_error_shape(emulator: EmulatorServer) -> None:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as raw:
        raw.sendall(
            b"GET /v1/messages/batches HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"request-id: req_" in head
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
