"""The intake stream's bundles and the bulk insert beneath intake and ingestion.

enqueue_many writes bundles (many requests in one stream entry); these tests
prove a bundle comes back as exactly its requests, that a read stays bounded
whatever mix waits, that the queue depth counts requests, and that the COPY
path inserts only what is missing.
"""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import redis
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from batchline.adapters import bulk
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.intake_entries import (
    BUNDLE_MAX_REQUESTS,
    IntakeEntry,
    StreamEntry,
    decode_entries,
    requests_in,
)
from batchline.adapters.redis_health import client_timeouts
from batchline.database import make_engine, make_session_factory
from batchline.domain.invalid import InvalidRequest
from batchline.keys import RedisKeys
from batchline.models import Request, RequestBody
from batchline.producer import Item, Producer
from batchline.services.context import Pipeline
from batchline.services.intake import run_intake

pytestmark = pytest.mark.integration

PARAMS = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _entry(n: int) -> IntakeEntry:
    return IntakeEntry(f"{n:032x}", b'{"model":"m","n":%d}' % n, {"model": "m"})


def test_enqueue_many__bundles_come_back_as_exactly_their_requests(
    pipeline: Pipeline, redis_client: redis.Redis
) -> None:
    items = [
        Item({**PARAMS, "metadata": {"user_id": f"u{i}"}}, tags={"i": i}) for i in range(250)
    ] + [Item(PARAMS, key="only-once")]
    with Producer(pipeline.settings) as producer:
        handles = producer.enqueue_many(items)
        stream = RedisIntakeStream(redis_client, RedisKeys(pipeline.settings.stream_key_prefix))
        # 250 plain requests in 3 bundles, plus the keyed one written alone.
        assert redis_client.xlen(RedisKeys().intake_stream) == 4
        assert stream.depth() == 251
        assert run_intake(pipeline, "c") == 251
        assert stream.depth() == 0
    with pipeline.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(Request))}
        bodies = {b.request_id: b.params for b in session.scalars(select(RequestBody))}
    assert set(rows) == {h.id for h in handles} == set(bodies)
    for index, handle in enumerate(handles[:250]):
        assert rows[handle.id].tags == {"i": index}
        assert f'"user_id":"u{index}"' in bodies[handle.id]
    assert rows[handles[250].id].idempotency_key == "only-once"


def test_read__stays_bounded_whatever_mix_of_bundles_and_singles_waits(
    redis_client: redis.Redis,
) -> None:
    stream = RedisIntakeStream(redis_client, RedisKeys())
    stream.add_many([_entry(n) for n in range(3 * BUNDLE_MAX_REQUESTS)])
    for n in range(1_000, 1_150):
        stream.add(_entry(n), None, 60)
    seen: list[str] = []
    while batch := stream.read("c", 150, 60_000):
        held = sum(requests_in(e) for e in batch)
        assert held <= 2 * 150, held
        seen += [r.request_id for e in batch for r in decode_entries(e)]
        stream.ack(batch)
    assert len(seen) == len(set(seen)) == 3 * BUNDLE_MAX_REQUESTS + 150
    assert stream.depth() == 0


def test_ack__of_an_entry_already_acked_counts_its_requests_once(
    redis_client: redis.Redis,
) -> None:
    stream = RedisIntakeStream(redis_client, RedisKeys())
    stream.add_many([_entry(n) for n in range(10)])
    stream.add_many([_entry(n) for n in range(10, 15)])
    first = stream.read("c", 100, 60_000)
    stream.ack(first[:1])
    assert stream.depth() == 5
    stream.ack(first)  # the first one again, as after a reclaim
    assert stream.depth() == 0
    assert int(redis_client.get(RedisKeys().intake_bundled_extra) or 0) == 0


def test_read__recreates_the_group_when_the_stream_was_deleted(
    redis_client: redis.Redis,
) -> None:
    stream = RedisIntakeStream(redis_client, RedisKeys())
    stream.add(_entry(1), None, 60)
    stream.ack(stream.read("c", 100, 60_000))
    redis_client.delete(RedisKeys().intake_stream)  # as FLUSHDB or a restart without AOF would
    stream.add(_entry(2), None, 60)
    [entry] = stream.read("c", 100, 60_000)
    assert [r.request_id for r in decode_entries(entry)] == [f"{2:032x}"]


@pytest.mark.parametrize(
    "fields",
    [
        {b"id": b"a b", b"p": b"{}", b"m": b"{}"},  # two ids, one body
        {b"id": b"a", b"p": b"{}\n{}", b"m": b"{}"},
        {b"id": b"a b", b"p": b"{}\nnot json", b"m": b"{}\n{}"},
        {b"id": b"a", b"p": b"{}", b"m": b"[]"},
    ],
)
def test_decode__a_bundle_that_does_not_add_up_is_refused(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="unreadable intake entry"):
        decode_entries(StreamEntry(b"1-0", fields))


def _head(n: int) -> dict[str, Any]:
    """A request row without its body, as `requests` holds it."""
    return {k: v for k, v in _request_row(n).items() if k != "params"}


def _request_row(n: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": f"{n:032x}",
        "idempotency_key": None,
        "state": "queued",
        "params": f'{{"n": {n}}}',
        "params_bytes": 8,
        "model": "m",
        "tags": {"n": n, "s": "x\ty\\z\n"},
        "on_result": None,
        "batch_id": None,
        "attempts": 0,
        "charged_attempts": 0,
        "max_attempts": 3,
        "prefix_hash": None,
        "cache_ttl_1h": False,
        "enqueued_at": now,
        "created_at": now,
        "updated_at": now,
    }


def test_bulk_insert__inserts_only_what_is_missing(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    table = cast(Table, Request.__table__)
    with sessions.begin() as session:
        assert bulk.insert_missing(session, table, [_head(n) for n in range(5)]) == 5
    with sessions.begin() as session:
        # Overlapping rows, twice in one transaction: the second call sees only its own rows.
        assert bulk.insert_missing(session, table, [_head(n) for n in range(3, 8)]) == 3
        assert bulk.insert_missing(session, table, [_head(8)]) == 1
    with sessions() as session:
        # 0-4 were there before, so the three new ones were 5, 6 and 7, then 8.
        stored = set(session.scalars(select(Request.id)))
        assert stored == {f"{n:032x}" for n in range(9)}
        row = session.get(Request, f"{4:032x}")
        assert row is not None and row.tags == {"n": 4, "s": "x\ty\\z\n"}
    engine.dispose()


def test_insert_requests__a_row_stored_meanwhile_falls_back_to_skipping(
    pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchline.adapters.sql import intake as intake_sql

    engine = make_engine(pg_db)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        assert intake_sql.insert_requests(session, [_request_row(1)]) == 1
    # As if a concurrent intake stored row 1 between the check and the COPY.
    monkeypatch.setattr(intake_sql, "_all_new", lambda session, rows: True)
    with sessions.begin() as session:
        assert intake_sql.insert_requests(session, [_request_row(n) for n in (1, 2, 3)]) == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 3
        assert _bodies(session) == {f"{n:032x}": f'{{"n": {n}}}' for n in (1, 2, 3)}
    engine.dispose()


def test_enqueue__after_redis_forgets_its_scripts_still_adds_and_counts(
    pipeline: Pipeline, redis_client: redis.Redis
) -> None:
    # A restarted Redis has an empty script cache: EVALSHA answers NOSCRIPT.
    with Producer(pipeline.settings) as producer:
        first = producer.enqueue(PARAMS)
        redis_client.script_flush()
        second = producer.enqueue(PARAMS, key="after-flush")
        again = producer.enqueue(PARAMS, key="after-flush")
    assert again.id == second.id != first.id
    assert redis_client.xlen(RedisKeys().intake_stream) == 2
    ledger = redis_client.hgetall(RedisKeys().intake_ledger)
    assert ledger[b"accepted"] == b"2"


def test_enqueue__after_a_dropped_connection_reconnects_and_writes_once(
    pipeline: Pipeline, redis_client: redis.Redis
) -> None:
    # Redis closes the producer's connection (as a restart would): the next enqueue
    # finds the socket dead (when it looks, or when it reads: the pool checks first,
    # the add tries once more), reconnects, and is written exactly once.
    # Only this producer's connections are killed, found by a name of their own:
    # killing every client would break the tests other workers run beside it.
    name = f"bl-dropped-{uuid.uuid4().hex[:12]}"
    settings = pipeline.settings
    client = redis.Redis.from_url(settings.redis_url, client_name=name, **client_timeouts(settings))
    with Producer(settings, client) as producer:
        producer.enqueue(PARAMS)
        mine = [c["id"] for c in redis_client.client_list() if c.get("name") == name]
        assert mine
        for client_id in mine:
            assert redis_client.client_kill_filter(_id=client_id) == 1
        producer.enqueue(PARAMS)
    assert redis_client.xlen(RedisKeys().intake_stream) == 2


def test_enqueue__a_refusal_leaves_the_connection_usable(
    pipeline: Pipeline, redis_client: redis.Redis
) -> None:
    # A script error is an answer: the pooled connection stays in step for the next call.
    with Producer(pipeline.settings) as producer:
        stream = RedisKeys().intake_stream
        redis_client.set(stream, "not a stream")  # XADD into it answers WRONGTYPE
        with pytest.raises(Exception, match="WRONGTYPE"):
            producer.enqueue(PARAMS)
        redis_client.delete(stream)
        producer.enqueue(PARAMS)
    assert redis_client.xlen(RedisKeys().intake_stream) == 1


def test_enqueue_many__leaves_the_garbage_collector_as_it_found_it(pipeline: Pipeline) -> None:
    with Producer(pipeline.settings) as producer:
        producer.enqueue_many([PARAMS, PARAMS])
        assert gc.isenabled()
        gc.disable()
        try:
            producer.enqueue_many([PARAMS])
            assert not gc.isenabled()  # the application's choice stands
        finally:
            gc.enable()
        with pytest.raises(InvalidRequest):
            producer.enqueue_many([PARAMS, {"model": "m"}])
        assert gc.isenabled()  # back on after a refusal too


def test_insert_requests__a_request_skipped_for_its_key_leaves_no_body(db_url: str) -> None:
    from batchline.adapters.sql import intake as intake_sql

    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        assert (
            intake_sql.insert_requests(session, [{**_request_row(1), "idempotency_key": "k"}]) == 1
        )
    with sessions.begin() as session:
        rows = [{**_request_row(2), "idempotency_key": "k"}, _request_row(3), _request_row(1)]
        assert intake_sql.insert_requests(session, rows) == 1
    with sessions() as session:
        # 2 reused the key (skipped), 1 was there already: only 3 is new, with its body.
        assert set(session.scalars(select(Request.id))) == {f"{n:032x}" for n in (1, 3)}
        assert _bodies(session) == {f"{n:032x}": f'{{"n": {n}}}' for n in (1, 3)}
    engine.dispose()


def _bodies(session: Session) -> dict[str, str]:
    return {b.request_id: b.params for b in session.scalars(select(RequestBody))}
