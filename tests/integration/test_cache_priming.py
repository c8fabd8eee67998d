"""Cache-aware grouping and priming, against the emulator's prompt-cache model."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from batchline.adapters import queries
from batchline.domain.prefix import prefix_hash, with_hour_breakpoints
from batchline.models import Batch, Result
from batchline.producer import Producer
from harness.emulated import Emulated, poll_and_ingest, run_once

pytestmark = pytest.mark.integration

HANDBOOK = "Our support handbook. " + "Answer politely and cite the policy number. " * 150


def ask(question: str) -> dict[str, object]:
    return {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 40,
        "system": [{"type": "text", "text": HANDBOOK, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}],
    }


def test_prefix__same_prefix_same_hash_whatever_the_ttl_or_question() -> None:
    assert prefix_hash(ask("a")) == prefix_hash(ask("b")) is not None
    assert prefix_hash(with_hour_breakpoints(ask("a"))) == prefix_hash(ask("a"))
    assert prefix_hash({**ask("a"), "model": "other"}) != prefix_hash(ask("a"))
    plain = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    assert prefix_hash(plain) is None
    assert with_hour_breakpoints(ask("a"))["system"][0]["cache_control"]["ttl"] == "1h"


def test_priming__group_runs_in_one_batch_after_its_primer_and_reads_the_cache(
    on_emulator: Emulated,
) -> None:
    pipeline, _, _ = on_emulator
    pipeline.settings = pipeline.settings.replace(prime_min_group=3)
    with Producer(pipeline.settings) as producer:
        handles = producer.enqueue_many([ask(f"question {i}") for i in range(5)])
        run_once(pipeline)
        with pipeline.sessions() as session:
            [primer] = session.scalars(select(Batch)).all()
            assert primer.request_count == 1  # the rest of the group waits for it
        poll_and_ingest(pipeline)
        run_once(pipeline)  # the primer is done: the group goes at once, together
        poll_and_ingest(pipeline)
        assert {h.result(timeout=5).type for h in handles} == {"succeeded"}

    with pipeline.sessions() as session:
        batches = session.scalars(select(Batch).order_by(Batch.id)).all()
        assert [b.request_count for b in batches] == [1, 4]
        primer_rows = session.scalars(select(Result).where(Result.batch_id == batches[0].id)).all()
        group_rows = session.scalars(select(Result).where(Result.batch_id == batches[1].id)).all()
        stats = queries.batch_cache_stats(session, batches[1].id)
    assert primer_rows[0].cache_write_1h_tokens > 1024
    assert all(r.cache_read_tokens == primer_rows[0].cache_write_1h_tokens for r in group_rows)
    assert all(r.cache_write_5m_tokens == r.cache_write_1h_tokens == 0 for r in group_rows)
    assert stats.hit_rate > 0.9


def test_priming__off_when_the_group_is_small(on_emulator: Emulated) -> None:
    pipeline, _, _ = on_emulator
    pipeline.settings = pipeline.settings.replace(prime_min_group=10)
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([ask(f"q{i}") for i in range(3)])
        run_once(pipeline)
    with pipeline.sessions() as session:
        assert [b.request_count for b in session.scalars(select(Batch))] == [3]


def test_priming__a_slow_primer_holds_its_group_for_an_hour_at_most(on_emulator: Emulated) -> None:
    from datetime import timedelta

    from batchline.emulator import FaultConfig

    pipeline, emulator, clock = on_emulator
    pipeline.settings = pipeline.settings.replace(prime_min_group=3)
    emulator.set_faults(FaultConfig(processing_seconds=86_000))  # the primer does not end
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([ask(f"q{i}") for i in range(4)])
        run_once(pipeline)
        run_once(pipeline)
        with pipeline.sessions() as session:
            assert [b.request_count for b in session.scalars(select(Batch))] == [1]
        clock.offset = timedelta(hours=1, minutes=1)
        run_once(pipeline)
    with pipeline.sessions() as session:
        batches = session.scalars(select(Batch).order_by(Batch.id))
        assert [b.request_count for b in batches] == [1, 3]
