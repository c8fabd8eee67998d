"""The four tables. States are strings with CHECK constraints."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from batchline.domain.states import BatchState, RequestState
from batchline.models.base import Base, JsonDocument, UtcDateTime

# SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _one_of(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_DEADLINE_OPEN = "deadline_at IS NOT NULL AND state IN ('queued', 'in_batch')"


class Request(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Unique where set (a partial index: most requests have none, and a NULL entry
    # would be one more index write on every insert and every state move).
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default=RequestState.QUEUED)
    # The body itself is in `request_bodies` (RequestBody): every state move
    # rewrites this row, and with the body inline it was ~1.7 KB (see bench/README.md).
    params_bytes: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    tags: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    on_result: Mapped[str | None] = mapped_column(String(200))
    # anthropic-beta names the request needs, sorted and comma-joined; its batch is made with them.
    betas: Mapped[str | None] = mapped_column(String(2100))
    # -5..5, higher goes first (batchline.domain.scheduling).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The share-tag value it shares capacity by, fixed at intake; '' when none.
    share_key: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The batch holding the request while it is in_batch. No foreign key: the
    # batch is created in the transaction that fills it, and a batch is purged
    # only once no request names it; a key check per row cost assembly about a
    # fifth of its time (see bench/README.md).
    batch_id: Mapped[int | None] = mapped_column(BigId)
    # Batch memberships so far; with the id it makes the custom_id unique.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts that used up a retry (billing errors and never-created batches do not).
    charged_attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Hash of the prompt-cache prefix (see batchline.domain.prefix); NULL when none.
    prefix_hash: Mapped[str | None] = mapped_column(String(32))
    # Sent with every cache breakpoint set to a 1-hour TTL (a primed group).
    cache_ttl_1h: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the on_result callback was sent (the outbox: NULL = still to send).
    notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the request must be final; past it minus the sync latency, it falls back.
    deadline_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(_one_of("state", [s.value for s in RequestState]), name="state"),
        CheckConstraint("attempts >= charged_attempts AND charged_attempts >= 0", name="attempts"),
        CheckConstraint("(state = 'in_batch') = (batch_id IS NOT NULL)", name="batch_membership"),
        Index(
            "uq_requests_idempotency_key",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
        # Partial indexes: a request leaves each as it moves on, so settling the
        # many requests of a batch touches few index entries (see bench/README.md).
        Index(
            "ix_requests_queued",
            "created_at",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        # The order assembly takes requests in, overall and within a share key.
        Index(
            "ix_requests_queued_priority",
            "priority",
            "created_at",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        Index(
            "ix_requests_queued_share",
            "share_key",
            "priority",
            "created_at",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        Index(
            "ix_requests_batch_id",
            "batch_id",
            postgresql_where=text("batch_id IS NOT NULL"),
            sqlite_where=text("batch_id IS NOT NULL"),
        ),
        Index(
            "ix_requests_prefix_hash",
            "prefix_hash",
            "state",
            postgresql_where=text("prefix_hash IS NOT NULL"),
            sqlite_where=text("prefix_hash IS NOT NULL"),
        ),
        Index(
            "ix_requests_callbacks_due",
            "finished_at",
            postgresql_where=text("on_result IS NOT NULL AND notified_at IS NULL"),
            sqlite_where=text("on_result IS NOT NULL AND notified_at IS NULL"),
        ),
        # Only unsettled requests with a deadline: the deadline scan reads nothing else.
        Index(
            "ix_requests_deadline_open",
            "deadline_at",
            postgresql_where=text(_DEADLINE_OPEN),
            sqlite_where=text(_DEADLINE_OPEN),
        ),
        # The lookup by tag (`tags @> {name: value}`); PostgreSQL only (GIN).
        Index(
            "ix_requests_tags",
            "tags",
            postgresql_using="gin",
            postgresql_ops={"tags": "jsonb_path_ops"},
            postgresql_where=text("tags IS NOT NULL"),
        ).ddl_if(dialect="postgresql"),
    )


class RequestBody(Base):
    """The request body exactly as enqueued, one row per request, written at intake in
    the same transaction as its request and never changed: opaque to batchline, sent
    verbatim, so kept as text rather than re-encoded through JSONB.

    Kept apart from `requests` so that a state move rewrites a narrow row, not the
    ~1.5 KB body beside it (PostgreSQL keeps a value that size inline, below its TOAST
    threshold). No foreign key, like `results.request_id`: a key check per row would
    cost intake what it saves; the purge deletes a body with its request."""

    __tablename__ = "request_bodies"

    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    params: Mapped[str] = mapped_column(Text)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    remote_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=BatchState.PREPARED)
    # 'planned' by batchline, or 'adopted' by the reconciler from a lost create.
    origin: Mapped[str] = mapped_column(String(16), default="planned")
    processing_status: Mapped[str | None] = mapped_column(String(16))
    request_count: Mapped[int] = mapped_column(Integer)
    body_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    count_processing: Mapped[int] = mapped_column(Integer, default=0)
    count_succeeded: Mapped[int] = mapped_column(Integer, default=0)
    count_errored: Mapped[int] = mapped_column(Integer, default=0)
    count_canceled: Mapped[int] = mapped_column(Integer, default=0)
    count_expired: Mapped[int] = mapped_column(Integer, default=0)
    submit_tries: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    submit_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Earliest time the next create may be tried (backoff after 429/529).
    next_submit_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Held by the worker ingesting this batch; another takes over once it lapses.
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    remote_created_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    remote_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    remote_ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_initiated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ingested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The most this batch can cost (USD at batch prices), worked out at submission
    # under a spend cap; reserved against the cap while the batch is in flight.
    worst_case_usd: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))

    __table_args__ = (
        CheckConstraint(_one_of("state", [s.value for s in BatchState]), name="state"),
        CheckConstraint(_one_of("origin", ["planned", "adopted"]), name="origin"),
        CheckConstraint(
            "state NOT IN ('submitted', 'ended', 'ingested') OR remote_id IS NOT NULL",
            name="remote_id_once_created",
        ),
        Index("ix_batches_state", "state"),
    )


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # NULL for a result obtained through the synchronous fallback (via = 'sync').
    # No foreign keys on batch_id and request_id: checking them row by row doubled
    # the cost of writing results (see bench/README.md). Ingestion stores
    # request_id only for a request it found (else NULL), and the purge deletes a
    # request's results with it.
    batch_id: Mapped[int | None] = mapped_column(BigId)
    custom_id: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    # succeeded | errored | canceled | expired, or 'malformed' for a line batchline
    # could not read (recorded as that request's failure).
    result_type: Mapped[str] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The API's results line, byte for byte (any valid JSON, `\u0000` included,
    # which JSONB refuses); the columns beside it are what queries need. NULL
    # only for a line batchline could not keep (over the length limit, or refused
    # by the store): result_type is then 'malformed' and error_message says why.
    line: Mapped[bytes | None] = mapped_column(LargeBinary)
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_5m_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_1h_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    # A result for a request that another batch had already settled: paid twice.
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How the result was obtained: 'batch' (at batch prices) or 'sync' (the
    # synchronous fallback for a deadline, at full price).
    via: Mapped[str] = mapped_column(String(8), default="batch", server_default="batch")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id"),
        CheckConstraint(_one_of("via", ["batch", "sync"]), name="via"),
        CheckConstraint("(via = 'sync') = (batch_id IS NULL)", name="via_batch"),
        # A request is sent synchronously once, so it has at most one sync result.
        Index(
            "uq_results_sync_request",
            "request_id",
            unique=True,
            postgresql_where=text("via = 'sync'"),
            sqlite_where=text("via = 'sync'"),
        ),
        CheckConstraint(
            _one_of("result_type", ["succeeded", "errored", "canceled", "expired", "malformed"]),
            name="result_type",
        ),
        Index("ix_results_request_id", "request_id"),
    )


class Control(Base):
    __tablename__ = "controls"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CachePrimer(Base):
    """A one-request batch that writes a shared prefix to the cache before its group runs."""

    __tablename__ = "cache_primers"

    prefix_hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("batches.id", ondelete="SET NULL")
    )
    # priming: the group waits; ready: the group may go (until the cache's hour runs out).
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (CheckConstraint(_one_of("state", ["priming", "ready"]), name="state"),)


class Fallback(Base):
    """A request sent (or to be sent) through the synchronous Messages API for its deadline.

    pending: due, waiting for a slot or its next try; calling: a worker holds it
    until `claimed_until`; done: its result is recorded; failed: given up, the
    request is left for its batch."""

    __tablename__ = "fallbacks"

    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("requests.id", ondelete="CASCADE"), primary_key=True
    )
    # The batch the request was in when it fell back (NULL: it was still queued).
    batch_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("batches.id", ondelete="SET NULL")
    )
    state: Mapped[str] = mapped_column(String(16), default="pending")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(_one_of("state", ["pending", "calling", "done", "failed"]), name="state"),
        Index(
            "ix_fallbacks_open",
            "next_try_at",
            postgresql_where=text("state IN ('pending', 'calling')"),
            sqlite_where=text("state IN ('pending', 'calling')"),
        ),
        Index("ix_fallbacks_batch_id", "batch_id"),
    )
