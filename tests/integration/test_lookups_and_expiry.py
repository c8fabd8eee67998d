"""Finding requests by id, key and tag; warning before a batch's results expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from batchline.cli import cli
from batchline.models import Batch
from batchline.producer import Item, Producer
from harness.emulated import Emulated, poll_and_ingest, run_once

pytestmark = pytest.mark.integration

PARAMS = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def test_lookups__by_id_key_and_tag(on_emulator: Emulated) -> None:
    pipeline, _, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        keyed = producer.enqueue(PARAMS, key="invoice-9", tags={"team": "billing"})
        producer.enqueue_many([Item(PARAMS, tags={"team": "search"}) for _ in range(2)])
        run_once(pipeline)
        assert producer.handle_for_key("invoice-9") == keyed
        assert producer.handle_for_key("no-such-key") is None
        assert producer.handles_by_tag("team", "billing") == [keyed]
        assert len(producer.handles_by_tag("team", "search")) == 2
        assert producer.handle(keyed.id).status() == "in_batch"


def test_expiry__status_and_doctor_warn_before_results_are_gone(
    on_emulator: Emulated, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, emulator, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        producer.enqueue(PARAMS)
    run_once(pipeline)
    poll_and_ingest(pipeline)
    # As if the results were never ingested and the batch is 28 days old.
    with pipeline.sessions.begin() as session:
        session.execute(
            update(Batch).values(
                state="ended", remote_created_at=datetime.now(UTC) - timedelta(days=28)
            )
        )
    for name, value in [
        ("BATCHLINE_DATABASE_URL", pipeline.settings.database_url),
        ("BATCHLINE_REDIS_URL", pipeline.settings.redis_url),
        ("ANTHROPIC_API_KEY", "k"),
        ("ANTHROPIC_BASE_URL", emulator.base_url),
    ]:
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    assert "results expiring" in runner.invoke(cli, ["status"]).output
    doctor = runner.invoke(cli, ["doctor"])
    assert "29-day window closes soon" in doctor.output and doctor.exit_code == 1
