"""What each dashboard page shows, read from SQL (and Redis) in one short session.

Read-only: result bodies come only through `adapters.queries` (the stored shape
is an implementation detail), money only through `ledger`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import redis
from sqlalchemy.orm import Session

from batchline import ledger
from batchline.adapters import queries, summaries
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.handles import to_sdk_result
from batchline.keys import RedisKeys
from batchline.models import Batch, Result
from batchline.prices import prices_for
from batchline.settings import Settings

WINDOW = timedelta(hours=24)
PAGE = 50


@dataclass(frozen=True)
class FlyingBatch:
    id: int
    remote_id: str | None
    state: str
    request_count: int
    done: int
    hours_left: float

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.request_count) if self.request_count else 0


@dataclass(frozen=True)
class Overview:
    queue_depth: int | None
    dead_letters: int | None
    requests: dict[str, int]
    batches: dict[str, int]
    flying: list[FlyingBatch]
    spent_today: Decimal
    reserved: Decimal
    cap: Decimal
    saving_total: Decimal
    spent_total: Decimal
    paused: str | None
    waiting_for_cap: str | None
    expiring: list[tuple[int, str | None]]
    cost_by_day: list[tuple[str, float]] = field(default_factory=list)


def redis_client(settings: Settings) -> redis.Redis:
    """A client for the counts below, kept by the app: a new connection per page
    cost about 20 ms."""
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)


def redis_counts(
    settings: Settings, client: redis.Redis | None = None
) -> tuple[int | None, int | None]:
    """Intake depth (requests) and dead-lettered entries; None when Redis is down."""
    keys = RedisKeys(settings.stream_key_prefix)
    own = client is None
    client = client or redis_client(settings)
    try:
        depth = RedisIntakeStream(client, keys).depth()
        dead = int(client.xlen(keys.dead_letters))
        return depth, dead
    except redis.RedisError:
        return None, None
    finally:
        if own:
            client.close()


def _done(b: Batch) -> int:
    return b.count_succeeded + b.count_errored + b.count_canceled + b.count_expired


def overview(
    session: Session, settings: Settings, now: datetime, client: redis.Redis | None = None
) -> Overview:
    depth, dead = redis_counts(settings, client)
    # Read once from the settings: load_prices() parses the environment each call.
    prices = prices_for(settings.prices_file)
    flying = []
    for b in queries.in_flight_batches(session):
        start = b.remote_created_at or b.created_at
        ends = b.remote_expires_at or start + WINDOW
        flying.append(
            FlyingBatch(
                b.id,
                b.remote_id,
                b.state,
                b.request_count,
                _done(b),
                max(0.0, (ends - now).total_seconds() / 3600),
            )
        )
    cap = ledger.cap_use(session, settings.daily_spend_cap_usd, now, prices)
    total = ledger.spend(session, table=prices)
    margin = timedelta(hours=settings.results_expiry_margin_hours)
    by_day = ledger.spend_by_day(session, prices)
    return Overview(
        queue_depth=depth,
        dead_letters=dead,
        requests=queries.requests_by_state(session),
        batches=queries.batches_by_state(session),
        flying=flying,
        spent_today=cap.spent,
        reserved=cap.reserved,
        cap=cap.cap,
        saving_total=total.saving_usd,
        spent_total=total.batch_usd,
        paused=controls_sql.submission_paused(session),
        waiting_for_cap=ledger.spend_cap_reached(
            session, settings.daily_spend_cap_usd, now, prices
        ),
        expiring=[(b.id, b.remote_id) for b in queries.results_expiring(session, now, margin)],
        cost_by_day=[(day, float(s.batch_usd)) for day, s in list(by_day.items())[-30:]],
    )


def batch_list(session: Session, state: str | None) -> list[Batch]:
    return queries.list_batches(session, state, PAGE)


@dataclass(frozen=True)
class BatchPage:
    batch: Batch
    request_states: dict[str, int]
    cache: queries.CacheStats
    errors: dict[str, int]
    spent: Decimal
    stages: list[tuple[str, datetime | None]]
    requests: list[tuple[str, str, int]]


def batch_page(session: Session, batch_id: int) -> BatchPage | None:
    batch = rows_sql.get_batch(session, batch_id)
    if batch is None:
        return None
    totals = summaries.totals_by_batch(session, [batch_id]).get(batch_id, summaries.Totals())
    stages = [
        ("planned", batch.created_at),
        ("create sent", batch.submit_started_at),
        ("submitted", batch.submitted_at),
        ("created remotely", batch.remote_created_at),
        ("cancel initiated", batch.cancel_initiated_at),
        ("ended remotely", batch.remote_ended_at),
        ("ingested", batch.ingested_at),
    ]
    return BatchPage(
        batch,
        queries.batch_request_states(session, batch_id),
        queries.CacheStats(
            totals.cache_write_tokens, totals.cache_read_tokens, totals.input_tokens
        ),
        summaries.errors_of_batch(session, batch_id),
        totals.cost_usd,
        stages,
        queries.batch_requests(session, batch_id, PAGE),
    )


@dataclass(frozen=True)
class RequestPage:
    view: queries.RequestView
    params: str
    attempts: list[Result]
    result: str | None


def find_requests(session: Session, query: str) -> list[str]:
    """Ids matching an id, an idempotency key, a custom_id (id-attempt) or tag=value."""
    query = query.strip()
    if not query:
        return []
    if "=" in query:
        name, _, value = query.partition("=")
        return queries.newest_request_ids_by_tag(session, name.strip(), value.strip(), PAGE)
    found: list[str] = []
    if queries.request_exists(session, query):
        found.append(query)
    by_key = queries.request_id_for_key(session, query)
    if by_key is not None and by_key not in found:
        found.append(by_key)
    by_custom = queries.request_ids_for_custom_id(session, query, PAGE)
    found.extend(r for r in by_custom if r not in found)
    return found


def request_page(session: Session, request_id: str) -> RequestPage | None:
    view = queries.request_view(session, request_id)
    if view is None:
        return None
    params = queries.request_params(session, request_id) or "{}"
    pretty = orjson.dumps(orjson.loads(params), option=orjson.OPT_INDENT_2).decode()
    result = None
    if view.state in ("succeeded", "failed", "canceled", "expired"):
        found = queries.final_result_body(session, request_id)
        sdk = to_sdk_result(view.state, view.last_error, found)
        result = orjson.dumps(sdk.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()
    return RequestPage(view, pretty, queries.request_history(session, request_id), result)


def histogram(values: list[float], buckets: int = 12) -> list[tuple[str, float]]:
    if not values:
        return []
    top = max(values) or 1.0
    width = top / buckets
    counts = Counter(min(int(v / width), buckets - 1) for v in values)
    return [(f"{(i + 1) * width:.0f}s", float(counts.get(i, 0))) for i in range(buckets)]


def now_utc() -> datetime:
    return datetime.now(UTC)


def jsonable(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
