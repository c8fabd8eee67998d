"""A pipeline wired to the emulator through the real SDK adapter (a pytest plugin).

`on_emulator` gives (pipeline, emulator, clock): PostgreSQL, Redis db 9, the
emulator ending batches at once, and a clock a test can move forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.domain.states import BatchState
from batchline.emulator import EmulatorServer
from batchline.models import Batch, Request
from batchline.services import assemble, ingest, poll, submit
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake
from tests.conftest import make_settings

Emulated = tuple[Pipeline, EmulatorServer, "ShiftedClock"]


class ShiftedClock:
    """Real time plus an offset the test moves (the emulator keeps real time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def on_emulator(
    pg_db: str,
    redis_url: str,
    redis_client: object,
    emulator_factory: Callable[..., EmulatorServer],
    build_test_pipeline: Callable[..., Pipeline],
) -> Iterator[tuple[Pipeline, EmulatorServer, ShiftedClock]]:
    emulator = emulator_factory(processing_seconds=0.0)
    settings = make_settings(pg_db, redis_url, create_timeout_seconds=5)
    api = AnthropicBatchApi("sk-ant-test", emulator.base_url, create_timeout=5, max_retries=0)
    clock = ShiftedClock()
    pipeline = build_test_pipeline(settings, api=api, redis_client=redis_client, clock=clock)
    yield pipeline, emulator, clock
    api.close()


def run_once(pipeline: Pipeline) -> None:
    run_intake(pipeline, "t")
    assemble.assemble_batches(pipeline)
    for batch_id in submit.submit_ready_batches(pipeline):
        submit.submit_batch(pipeline, batch_id)


def poll_and_ingest(pipeline: Pipeline) -> None:
    with pipeline.sessions() as session:
        ids = list(session.scalars(select(Batch.id).where(Batch.state == BatchState.SUBMITTED)))
    for batch_id in ids:
        poll.poll_batch(pipeline, batch_id)
    for batch_id in poll.batches_to_ingest(pipeline):
        ingest.ingest_batch(pipeline, batch_id)


def final_states(pipeline: Pipeline) -> dict[str, int]:
    with pipeline.sessions() as session:
        rows = session.execute(select(Request.state, func.count()).group_by(Request.state))
        return {state: int(n) for state, n in rows}
