"""The ledger over real results from the emulator, and the daily spend cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from batchline import ledger
from batchline.models import Batch, Result
from batchline.producer import Item, Producer
from batchline.services import ingest
from tests.support.emulated import Emulated, poll_and_ingest, run_once

pytestmark = pytest.mark.integration

SONNET = "claude-3-5-sonnet-20241022"


def ask(text: str, model: str = SONNET) -> dict[str, object]:
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}]}


def test_ledger__costs_match_hand_arithmetic_per_tag_and_never_bill_twice(
    on_emulator: Emulated,
) -> None:
    pipeline, _, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many(
            [
                Item(ask("a question about tides"), tags={"team": "ocean"}),
                Item(ask("another about waves and the moon"), tags={"team": "ocean"}),
                Item(ask("one about bread"), tags={"team": "bakery"}),
                Item(ask("no price for this model", model="claude-unlisted-1"), tags={"team": "x"}),
            ]
        )
        run_once(pipeline)
        poll_and_ingest(pipeline)

    with pipeline.sessions() as session:
        rows = session.scalars(select(Result)).all()
        for row in rows:
            if row.model == SONNET:
                by_hand = (
                    (
                        Decimal(row.input_tokens) * 3
                        + Decimal(row.output_tokens) * 15
                        + Decimal(row.cache_write_5m_tokens) * Decimal("3.75")
                        + Decimal(row.cache_write_1h_tokens) * 6
                        + Decimal(row.cache_read_tokens) * Decimal("0.3")
                    )
                    / 1_000_000
                    / 2
                )
                assert row.cost_usd == by_hand.quantize(Decimal("1e-8"))
                assert row.input_tokens > 0 and row.output_tokens > 0
            else:
                assert row.cost_usd is None  # unknown, not free
        total = ledger.spend(session)
        tags = ledger.spend_by_tag(session, "team")
        batch_id = session.scalars(select(Batch.id)).one()
    assert total.results == 4 and total.unknown_cost_results == 1
    assert total.synchronous_usd == total.batch_usd * 2 and total.saving_usd == total.batch_usd
    assert tags["ocean"].batch_usd + tags["bakery"].batch_usd == total.batch_usd
    assert tags["x"].unknown_cost_results == 1

    # A second ingestion (a redelivered task) bills nothing more.
    with pipeline.sessions.begin() as session:
        session.get(Batch, batch_id).state = "ended"  # type: ignore[union-attr]
    ingest.ingest_batch(pipeline, batch_id)
    with pipeline.sessions() as session:
        assert ledger.spend(session) == total
        [today] = ledger.spend_by_day(session).values()
        assert today.batch_usd == total.batch_usd


def test_spend_cap__stops_new_batches_and_resumes_when_raised(on_emulator: Emulated) -> None:

    pipeline, _, _ = on_emulator
    pipeline.settings = pipeline.settings.replace(daily_spend_cap_usd=1e-9)
    with Producer(pipeline.settings) as producer:
        producer.enqueue(ask("first"))
        run_once(pipeline)
        poll_and_ingest(pipeline)
        producer.enqueue(ask("second, over the cap"))
        run_once(pipeline)
    with pipeline.sessions() as session:
        assert len(session.scalars(select(Batch.id)).all()) == 1
        now = datetime.now(UTC)
        assert "daily spend cap reached" in (
            ledger.spend_cap_reached(session, pipeline.settings.daily_spend_cap_usd, now) or ""
        )
        tomorrow = ledger.spend_cap_reached(session, 1e-9, now + timedelta(days=1))
    assert tomorrow is None  # a new UTC day starts from zero

    pipeline.settings = pipeline.settings.replace(daily_spend_cap_usd=100.0)
    run_once(pipeline)
    poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        assert len(session.scalars(select(Batch.id)).all()) == 2


def test_estimate__dry_run_prints_worst_case_and_enqueues_nothing(
    tmp_path: object, sqlite_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    from batchline.cli import cli

    path = tmp_path / "x.jsonl"  # type: ignore[operator]
    lines = [
        {"custom_id": f"c{i}", "params": {**ask("x" * 396), "max_tokens": 1000}} for i in range(2)
    ]
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", sqlite_db)
    monkeypatch.setenv("BATCHLINE_REDIS_URL", redis_url)
    out = CliRunner().invoke(cli, ["enqueue", str(path), "--dry-run"]).output
    guess = ledger.estimate(x["params"] for x in lines)
    assert guess.max_output_tokens == 2000
    # 2000 output tokens at $15/M, halved, is $0.015 before any input tokens
    assert guess.worst_case_usd > Decimal("0.015")
    assert f"worst case ${guess.worst_case_usd:.4f}" in out and "nothing enqueued" in out
