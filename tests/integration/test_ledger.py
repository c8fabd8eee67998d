"""The ledger over real results from the emulator, and the daily spend cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from batchline import ledger
from batchline.models import Batch, Request, Result
from batchline.producer import Item, Producer
from batchline.services import ingest
from batchline.services.context import Pipeline
from harness.emulated import Emulated, poll_and_ingest, run_once

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


def _states(pipeline: Pipeline) -> list[str]:
    with pipeline.sessions() as session:
        return list(session.scalars(select(Batch.state).order_by(Batch.id)))


def test_spend_cap__reserves_each_batch_worst_case_before_create(on_emulator: Emulated) -> None:
    pipeline, _, _ = on_emulator
    first, second = ask("first"), ask("second, which would pass the cap")
    worst = ledger.estimate([first]).worst_case_usd
    # Room for the first batch's worst case, not for two.
    pipeline.settings = pipeline.settings.replace(daily_spend_cap_usd=float(worst * 101 / 100))
    with Producer(pipeline.settings) as producer:
        producer.enqueue(first)
        run_once(pipeline)
        producer.enqueue(second)
        run_once(pipeline)
    # Nothing is ingested yet, yet the second batch waits: the first one's worst case is reserved.
    assert _states(pipeline) == ["submitted", "prepared"]
    cap = pipeline.settings.daily_spend_cap_usd
    with pipeline.sessions() as session:
        use = ledger.cap_use(session, cap, datetime.now(UTC))
        assert (use.spent, use.reserved) == (Decimal(0), worst)
        assert "1 batch(es) wait for room" in (
            ledger.spend_cap_reached(session, cap, datetime.now(UTC)) or ""
        )

    # Ingestion settles the reservation: reserved -> actual, which is less.
    poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        use = ledger.cap_use(session, cap, datetime.now(UTC))
        actual = ledger.spend(session).batch_usd
    assert use.reserved == 0 and use.spent == actual and 0 < actual < worst
    run_once(pipeline)
    assert _states(pipeline) == ["ingested", "prepared"]  # still no room for a worst case

    pipeline.settings = pipeline.settings.replace(daily_spend_cap_usd=100.0)
    run_once(pipeline)
    poll_and_ingest(pipeline)
    assert _states(pipeline) == ["ingested", "ingested"]
    with pipeline.sessions() as session:
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        assert ledger.spend_cap_reached(session, 1e-9, tomorrow) is None  # a new UTC day


def test_spend_cap__a_model_with_no_price_is_held_not_free(
    on_emulator: Emulated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, _, _ = on_emulator
    pipeline.settings = pipeline.settings.replace(daily_spend_cap_usd=5.0)
    with Producer(pipeline.settings) as producer:
        held = producer.enqueue(ask("no price for this model", model="claude-unlisted-1"))
        producer.enqueue(ask("a priced neighbour"))
        run_once(pipeline)
        poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        assert session.get(Request, held.id).state == "queued"  # type: ignore[union-attr]
        why = ledger.spend_cap_reached(session, 5.0, datetime.now(UTC)) or ""
    assert "claude-unlisted-1" in why and "no price" in why
    assert _states(pipeline) == ["ingested"]  # the neighbour went on its own

    # A configured fallback price lets it go, and costs it at that price.
    prices = tmp_path / "prices.toml"
    prices.write_text("[fallback]\ninput = 20\noutput = 100\n")
    monkeypatch.setenv("BATCHLINE_PRICES_FILE", str(prices))
    run_once(pipeline)
    poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        result = session.scalars(select(Result).where(Result.request_id == held.id)).one()
    assert result.cost_usd == Decimal(result.input_tokens * 20 + result.output_tokens * 100) / (
        2 * 1_000_000
    )


def test_spend_cap__results_with_no_price_count_at_the_dearest_rate(
    on_emulator: Emulated,
) -> None:
    pipeline, _, _ = on_emulator  # no cap while they run: nothing holds them
    with Producer(pipeline.settings) as producer:
        producer.enqueue(ask("no price for this model", model="claude-unlisted-1"))
        run_once(pipeline)
        poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        row = session.scalars(select(Result)).one()
        use = ledger.cap_use(session, 1.0, datetime.now(UTC))
    assert row.cost_usd is None
    # $25 in / $125 out per million (the dearest listed), halved.
    by_hand = Decimal(row.input_tokens * 25 + row.output_tokens * 125) / 2_000_000
    assert use.spent == by_hand > 0


@pytest.mark.parametrize("model", ["claude-sonnet-4-20250514", "claude-opus-4-20250514"])
def test_ledger__dated_model_ids_are_priced(on_emulator: Emulated, model: str) -> None:
    pipeline, _, _ = on_emulator
    with Producer(pipeline.settings) as producer:
        producer.enqueue(ask("a dated model id", model=model))
        run_once(pipeline)
        poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        row = session.scalars(select(Result)).one()
    assert row.model == model and row.cost_usd is not None and row.cost_usd > 0


SYSTEM_5M = "Five-minute cached system prompt. " * 150  # > 1,024 tokens: cacheable
SYSTEM_1H = "One-hour cached system prompt, longer. " * 150


def _cached(system: str, ttl: str | None, text: str, max_tokens: int) -> dict[str, object]:
    control: dict[str, str] = {"type": "ephemeral"} | ({"ttl": ttl} if ttl else {})
    return {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": max_tokens,
        "system": [{"type": "text", "text": system, "cache_control": control}],
        "messages": [{"role": "user", "content": text}],
    }


def test_estimate__worst_case_bounds_spend_for_every_token_kind(on_emulator: Emulated) -> None:
    """Cache writes (5m and 1h), cache reads, plain input and output, through the emulator:
    what was billed never passes what the dry run promised."""
    pipeline, _, _ = on_emulator
    rounds = [
        # Round one writes both caches; round two reads them.
        [_cached(SYSTEM_5M, None, "tell me a story", 64), _cached(SYSTEM_1H, "1h", "why?", 64)],
        [_cached(SYSTEM_5M, None, "another story", 2000), _cached(SYSTEM_1H, "1h", "how?", 8)],
    ]
    sent: dict[str, dict[str, object]] = {}
    for params in rounds:
        with Producer(pipeline.settings) as producer:
            handles = producer.enqueue_many([Item(p) for p in params])
            sent.update({h.id: p for h, p in zip(handles, params, strict=True)})
            run_once(pipeline)
            poll_and_ingest(pipeline)
    with pipeline.sessions() as session:
        rows = session.scalars(select(Result)).all()
    kinds = ("cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
    assert all(any(getattr(r, k) for r in rows) for k in kinds), "every token kind was billed"
    estimate = ledger.estimate(p for params in rounds for p in params)
    spent = sum(r.cost_usd for r in rows if r.cost_usd is not None)
    assert len(rows) == 4 and 0 < spent <= estimate.worst_case_usd
    for row in rows:
        assert row.cost_usd is not None and row.request_id is not None
        assert row.cost_usd <= ledger.estimate([sent[row.request_id]]).worst_case_usd


def test_estimate__dry_run_prints_worst_case_and_enqueues_nothing(
    tmp_path: Path, sqlite_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    from batchline.cli import cli

    path = tmp_path / "x.jsonl"
    lines: list[dict[str, Any]] = [
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
