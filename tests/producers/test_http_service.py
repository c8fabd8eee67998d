"""The HTTP intake through the running service: `batchline serve`, real celery worker
and beat subprocesses, PostgreSQL, Redis and the emulator, driven by plain
http.client and by curl (never batchline's own code)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchline import cookbook
from harness.processes import ServiceProcesses, service_env
from tests.producers.http_service import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN, Api, start_serve

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]
CURL = shutil.which("curl")


@pytest.fixture
def served(
    pg_db: str, redis_url: str, emulator_factory: Any, tmp_path: Path
) -> Iterator[tuple[Api, ServiceProcesses]]:
    emulator = emulator_factory(processing_seconds=1.0)
    procs = ServiceProcesses(service_env(pg_db, redis_url, emulator.base_url), tmp_path)
    try:
        procs.worker()
        procs.beat()
        yield start_serve(procs, tmp_path), procs
    finally:
        procs.stop_all()


def final(api: Api, url: str, token: str = ADMIN_TOKEN, rounds: int = 10) -> dict[str, Any]:
    """Long-poll a request until final (bounded: `rounds` waits of up to 30 s)."""
    for _ in range(rounds):
        status, _, body = api.call("GET", f"{url}?wait=30", token=token)
        assert status == 200, body
        if body["result"] is not None:
            return body  # type: ignore[no-any-return]
    raise AssertionError(f"{url} not final after {rounds} long-polls: {body}")


def test_http__single_idempotent_and_bulk_jsonl_reach_final_results(
    served: tuple[Api, ServiceProcesses], tmp_path: Path
) -> None:
    api, _ = served
    params = cookbook.example_1()["question-0"]
    status, headers, first = api.call(
        "POST", "/v1/requests", params, headers={"Idempotency-Key": "solar-1"}
    )
    assert status == 202, first
    assert headers["location"] == f"/v1/requests/{first['id']}"
    again = api.call("POST", "/v1/requests", params, headers={"Idempotency-Key": "solar-1"})
    assert again[0] == 202 and again[2]["id"] == first["id"]

    lines = [{"custom_id": cid, "params": p} for cid, p in cookbook.example_2().items()]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    status, _, bulk = api.call(
        "POST", "/v1/requests", body, headers={"Content-Type": "application/jsonl"}
    )
    assert status == 202, bulk
    assert [r["custom_id"] for r in bulk["requests"]] == list(cookbook.example_2())

    done = final(api, headers["location"])
    assert done["state"] == "succeeded" and done["key"] == "solar-1"
    assert done["result"]["type"] == "succeeded"
    assert done["result"]["message"]["content"][0]["type"] == "text"
    for accepted in bulk["requests"]:
        by_key = final(api, f"/v1/requests/by-key/{accepted['custom_id']}")
        assert by_key["id"] == accepted["id"]
        assert by_key["custom_id"] == accepted["custom_id"]
        assert by_key["result"]["type"] == "succeeded", by_key
    status, _, listed = api.call("GET", "/v1/batches")
    assert status == 200 and listed["data"], listed
    one = api.call("GET", f"/v1/batches/{listed['data'][0]['remote_id']}")
    assert one[0] == 200 and one[2]["processing_status"] == "ended"


def test_http__tenant_tokens_see_only_their_own_requests(
    served: tuple[Api, ServiceProcesses],
) -> None:
    api, _ = served
    params = cookbook.example_1()["question-1"]
    status, _, mine = api.call(
        "POST", "/v1/requests", {"params": params, "key": "order-1"}, token=ACME_TOKEN
    )
    assert status == 202, mine
    done = final(api, mine["url"], token=ACME_TOKEN)
    assert done["tags"] == {"tenant": "acme"} and done["key"] == "order-1"

    assert api.call("GET", mine["url"], token=GLOBEX_TOKEN)[0] == 404
    assert api.call("GET", "/v1/requests/by-key/order-1", token=GLOBEX_TOKEN)[0] == 404
    status, _, err = api.call("GET", "/v1/batches", token=GLOBEX_TOKEN)
    assert status == 403 and err["error"]["type"] == "permission_error"
    # The same key in another tenant is another request, not acme's.
    _, _, theirs = api.call(
        "POST", "/v1/requests", {"params": params, "key": "order-1"}, token=GLOBEX_TOKEN
    )
    assert theirs["id"] != mine["id"]
    status, _, err = api.call(
        "POST", "/v1/requests", {"params": params, "tags": {"tenant": "acme"}}, token=GLOBEX_TOKEN
    )
    assert status == 403, err


def test_http__curl_enqueues_and_long_polls_to_a_result(
    served: tuple[Api, ServiceProcesses], tmp_path: Path
) -> None:
    if CURL is None:
        pytest.skip("curl is not installed (apt-get install -y curl)")
    api, _ = served
    lines = [{"custom_id": cid, "params": p} for cid, p in cookbook.example_1().items()]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    common = ["-sS", "--max-time", "60", "-H", f"Authorization: Bearer {ACME_TOKEN}"]
    posted = subprocess.run(
        [
            CURL,
            *common,
            "-H",
            "Content-Type: application/jsonl",
            "-T",
            str(path),
            "-X",
            "POST",
            f"{api.base}/v1/requests",
            "-w",
            "\n%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    body, code = posted.stdout.rsplit("\n", 1)
    assert code == "202", posted.stdout
    ids = [r["id"] for r in json.loads(body)["requests"]]
    assert len(ids) == 4
    for request_id in ids:
        for _ in range(10):
            got = subprocess.run(
                [CURL, *common, f"{api.base}/v1/requests/{request_id}?wait=30"],
                capture_output=True,
                text=True,
                timeout=90,
                check=True,
            )
            answer = json.loads(got.stdout)
            if answer["result"] is not None:
                break
        assert answer["result"]["type"] == "succeeded", answer
    refused = subprocess.run(
        [CURL, "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{api.base}/v1/requests/{ids[0]}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert refused.stdout == "401"
