"""Beta parameters through the whole service.

A request that uses a beta-only parameter is enqueued with `betas=` beside a
plain one; real `celery worker` and `celery beat` subprocesses put them in two
batches, the beta one created with the anthropic-beta header. The emulator,
like the API, fails a beta-only parameter in a batch created without its beta
named in that header, so the beta request's success is the header's proof.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from batchline.database import make_engine
from batchline.domain.validation import InvalidRequest, known_params
from batchline.emulator import EmulatorServer
from batchline.models import Batch, Request
from batchline.producer import Producer
from batchline.settings import Settings
from harness.processes import ServiceProcesses, service_env

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

PLAIN = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
# Values the beta types accept for some beta-only parameters; the test uses
# the first one the installed SDK has in its beta params and not in its plain ones.
BETA_VALUES: dict[str, Any] = {"mcp_servers": [], "context_management": {"edits": []}}
BETAS = ["mcp-client-2025-04-04"]


def beta_only_param() -> tuple[str, Any]:
    beta_only = known_params(beta=True) - known_params()
    name = next((n for n in BETA_VALUES if n in beta_only), None)
    assert name is not None, f"no known beta-only parameter in {sorted(beta_only)}"
    return name, BETA_VALUES[name]


@pytest.fixture
def service(
    pg_db: str, redis_url: str, emulator_factory: object, tmp_path: Path
) -> Iterator[tuple[ServiceProcesses, EmulatorServer]]:
    emulator = emulator_factory(processing_seconds=1.0)  # type: ignore[operator]
    procs = ServiceProcesses(service_env(pg_db, redis_url, emulator.base_url), tmp_path)
    procs.worker()
    procs.beat()
    try:
        yield procs, emulator
    finally:
        procs.stop_all()


def test_betas__beta_request_and_plain_request_complete_in_two_batches(
    service: tuple[ServiceProcesses, EmulatorServer], pg_db: str, redis_url: str
) -> None:
    procs, emulator = service
    name, value = beta_only_param()
    beta_params = {**PLAIN, name: value}
    settings = Settings(database_url=pg_db, redis_url=redis_url)
    with Producer(settings) as producer:
        with pytest.raises(InvalidRequest, match="betas"):
            producer.enqueue(beta_params)
        plain = producer.enqueue(PLAIN)
        beta = producer.enqueue(beta_params, betas=BETAS)
        try:
            results = {"plain": plain.result(timeout=90), "beta": beta.result(timeout=90)}
        except TimeoutError:
            pytest.fail("no result in time; worker log:\n" + procs.log("worker")[-4000:])

    assert {k: r.type for k, r in results.items()} == {"plain": "succeeded", "beta": "succeeded"}, (
        results
    )
    engine = make_engine(pg_db)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Request.id, Request.betas)).all())
        batches = conn.execute(select(Batch.remote_id)).scalars().all()
    engine.dispose()
    assert stored == {plain.id: None, beta.id: ",".join(BETAS)}
    # Two batches of one request each: every custom_id carries its request id.
    records = emulator.admin().records(custom_ids=True)
    assert sorted(r.id for r in records.batches) == sorted(str(b) for b in batches)
    members = sorted(r.custom_ids or () for r in records.batches)
    assert len(members) == 2 and all(len(m) == 1 for m in members)
    assert {plain.id in m[0] for m in members} == {True, False}
    assert all(r.request_counts["succeeded"] == 1 for r in records.batches)
