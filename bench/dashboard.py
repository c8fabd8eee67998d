"""Dashboard pages against a large PostgreSQL database.

The data is generated in SQL (generate_series): N requests, most settled with
one result each in batches of 10,000, some queued and some in flight. Each
page is then loaded in-process through the real app (Starlette's test client,
no network) and its median time over a few loads reported; so are
`batchline status` (table and --json), one Prometheus scrape and the lookup
`batchline requests show` makes, each against its 300 ms target.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import orjson
from prometheus_client import generate_latest
from sqlalchemy import text
from starlette.testclient import TestClient

from batchline.adapters import queries
from batchline.cli.status import render_status, status_document
from batchline.dashboard.app import create_app
from batchline.database import make_engine, session_scope
from batchline.domain.custom_ids import new_request_id
from batchline.metrics import registry_for
from batchline.settings import Settings
from bench.data import result_line
from bench.environment import fresh_database, quiesce_database
from bench.report import Emit, Figure, at_most

PER_BATCH = 10_000
PARAMS = '{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"q"}]}'
# A real result object as bench's result lines carry it (~1.4 KB).
BODY = orjson.dumps(orjson.loads(result_line(new_request_id(), 1, 0))["result"]).decode()
LOADS = 3

# One statement per table: batches, request bodies, requests (ids as batchline
# makes them: 32 hex digits, in the order made), then a result per settled
# request under a batchline-shaped custom_id (bl<id>-1), costed and dated over
# the last ten days.
GENERATE = [
    """
    INSERT INTO batches (id, remote_id, state, origin, processing_status, request_count,
        body_bytes, count_processing, count_succeeded, count_errored, count_canceled,
        count_expired, submit_tries, cancel_requested, created_at, updated_at,
        submitted_at, remote_created_at, remote_expires_at, remote_ended_at, ingested_at)
    SELECT b, 'msgbatch_bench_' || b,
        CASE WHEN b > :batches - 2 THEN 'submitted' ELSE 'ingested' END, 'planned',
        CASE WHEN b > :batches - 2 THEN 'in_progress' ELSE 'ended' END, :per_batch,
        15000000, 0, :per_batch - 10, 10, 0, 0, 1, false,
        now() - (b % 10) * interval '1 day', now(), now() - (b % 10) * interval '1 day',
        now() - interval '1 hour', now() + interval '23 hours', now(), now()
    FROM generate_series(1, :batches) AS b
    """,
    """
    INSERT INTO request_bodies (request_id, params)
    SELECT lpad(to_hex(n), 32, '0'), :params FROM generate_series(1, :n) AS n
    """,
    """
    INSERT INTO requests (id, idempotency_key, state, params_bytes, model, tags,
        batch_id, attempts, charged_attempts, max_attempts, enqueued_at, created_at,
        updated_at, finished_at)
    SELECT lpad(to_hex(n), 32, '0'), 'key-' || n,
        CASE WHEN n > :n - :per_batch THEN 'queued'
             WHEN n > :n - 3 * :per_batch THEN 'in_batch'
             WHEN n % 1000 = 0 THEN 'failed' ELSE 'succeeded' END,
        80, 'claude-haiku-4-5', jsonb_build_object('team', 'team-' || (n % 50)),
        CASE WHEN n > :n - :per_batch THEN NULL
             WHEN n > :n - 3 * :per_batch THEN (n - 1) / :per_batch + 1 ELSE NULL END,
        CASE WHEN n > :n - :per_batch THEN 0 ELSE 1 END,
        CASE WHEN n > :n - :per_batch THEN 0 ELSE 1 END, 3,
        now() - (n % 10) * interval '1 day', now() - (n % 10) * interval '1 day', now(),
        CASE WHEN n > :n - 3 * :per_batch THEN NULL
             ELSE now() - (n % 10) * interval '1 day' + (n % 3600) * interval '1 second' END
    FROM generate_series(1, :n) AS n
    """,
    """
    INSERT INTO results (batch_id, custom_id, request_id, attempt, result_type, error_type,
        line, model, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
        cache_read_tokens, cost_usd, duplicate, created_at)
    SELECT (n - 1) / :per_batch + 1, 'bl' || lpad(to_hex(n), 32, '0') || '-1',
        lpad(to_hex(n), 32, '0'), 1,
        CASE WHEN n % 1000 = 0 THEN 'errored' ELSE 'succeeded' END,
        CASE WHEN n % 1000 = 0 THEN 'overloaded_error' ELSE NULL END,
        convert_to('{"custom_id":"bl' || lpad(to_hex(n), 32, '0') || '-1","result":' || :body
            || '}', 'UTF8'),
        'claude-haiku-4-5', 500, 60, 0, 0, 200, 0.00031, false,
        now() - (n % 10) * interval '1 day'
    FROM generate_series(1, :n - 3 * :per_batch) AS n
    """,
    "SELECT setval(pg_get_serial_sequence('batches', 'id'), :batches)",
]


def generate(url: str, count: int) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            values = {
                "n": count,
                "per_batch": PER_BATCH,
                "batches": count // PER_BATCH,
                "params": PARAMS,
                "body": BODY,
            }
            for statement in GENERATE:
                conn.execute(text(statement), values)
    finally:
        engine.dispose()
    quiesce_database(url)


def _median_ms(call: Callable[[], object]) -> float:
    times = []
    for _ in range(LOADS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _lookup(settings: Settings, key: str) -> None:
    """What `batchline requests show KEY` reads: the request, its history, its result."""
    with session_scope(settings) as session:
        found = queries.find_request_id(session, key)
        if found is None:
            raise RuntimeError(f"no request for {key}")
        queries.request_view(session, found)
        queries.request_history(session, found)
        queries.final_result_body(session, found)


def run(url: str, redis_url: str, count: int, emit: Emit, targets: bool) -> None:
    count = max(PER_BATCH * 4, count)
    fresh_database(url)
    started = time.perf_counter()
    generate(url, count)
    emit(Figure(f"dashboard data {count:,} requests", time.perf_counter() - started, "s"))
    settings = Settings(database_url=url, redis_url=redis_url)
    measure(settings, count, emit, targets)


def measure(settings: Settings, count: int, emit: Emit, targets: bool) -> None:
    """Each page, then status, the Prometheus scrape and a request lookup."""
    target = at_most(300) if targets else None
    # One registry, as `batchline metrics` keeps for its life (it remembers the head check).
    registry = registry_for(settings)
    others: dict[str, Callable[[], object]] = {
        "status (batchline status)": lambda: render_status(settings),
        "status --json": lambda: status_document(settings),
        "Prometheus scrape": lambda: generate_latest(registry),
        "request lookup (by key)": lambda: _lookup(settings, f"key-{count // 3}"),
    }
    for name, call in others.items():
        emit(
            Figure(
                f"{name} ({count:,} requests)",
                _median_ms(call),
                "ms",
                target,
                note=f"median of {LOADS}",
            )
        )
    batch = count // PER_BATCH
    pages = {
        "overview": "/",
        "overview live fragment": "/?fragment=1",
        "batches": "/batches",
        "batches (state filter)": "/batches?state=submitted",
        "batch": f"/batches/{batch}",
        # The last batch above has no requests (the newest requests are queued);
        # these two have 10,000 each: settled with results, and in flight.
        "batch (ingested, 10,000 results)": f"/batches/{batch // 2}",
        "batch (in flight, 10,000 requests)": f"/batches/{batch - 1}",
        "request lookup (key)": f"/requests?q=key-{count // 2}",
        "request lookup (tag)": "/requests?q=team%3Dteam-7",
        "request lookup (tag no request has)": "/requests?q=team%3Dnobody",
        "request": f"/requests/{count // 2:032x}",
        "request lookup (custom_id)": f"/requests?q=bl{count // 4:032x}-1",
    }
    with TestClient(create_app(settings), follow_redirects=False) as client:
        for name, path in pages.items():
            times = []
            for _ in range(LOADS):
                start = time.perf_counter()
                answer = client.get(path)
                times.append(time.perf_counter() - start)
                if answer.status_code not in (200, 303):
                    raise RuntimeError(f"{path} answered {answer.status_code}")
            emit(
                Figure(
                    f"dashboard {name} ({count:,} requests)",
                    statistics.median(times) * 1000,
                    "ms",
                    target,
                    note=f"median of {LOADS}",
                )
            )
