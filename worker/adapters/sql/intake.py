"""SQL of intake: requests from the Redis stream (or durable enqueue) into `requests`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import (
    Table,
    or_,
    select,
)
from sqlalchemy.orm import Session

from batchline.adapters import bulk
from batchline.adapters.sql.rows import among, chunks
from batchline.models import Request, RequestBody


def insert_requests(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert new requests, each row's `params` into `request_bodies` beside it; ids
    (and idempotency keys) already present are skipped, and so are their bodies."""
    table = cast(Table, Request.__table__)
    if not rows:
        return 0
    columns = [name for name in rows[0] if name != "params"]
    if session.get_bind().dialect.name == "postgresql" and _all_new(session, rows):
        # The common case, checked first: COPY straight into the tables, half the
        # writes of staging. Should a concurrent intake insert one of these rows
        # meanwhile, the savepoint rolls back and the skipping path below runs.
        try:
            with session.begin_nested():
                bulk.insert_new(session, table, rows, columns)
                bulk.insert_new(session, _BODIES, _bodies(rows))
            return len(rows)
        except bulk.UNIQUE_VIOLATIONS:
            pass
    inserted = bulk.insert_missing(session, table, rows, columns)
    if inserted == len(rows):
        bulk.insert_new(session, _BODIES, _bodies(rows))
    elif inserted:
        # Some were skipped: only the rows now stored get a body, and a redelivered
        # one already has its own (the same bytes, under the same id).
        present = existing_request_ids(session, [row["id"] for row in rows])
        bulk.insert_missing(session, _BODIES, _bodies(r for r in rows if r["id"] in present))
    return inserted


_BODIES = cast(Table, RequestBody.__table__)


def _bodies(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"request_id": row["id"], "params": row["params"]} for row in rows]


def _all_new(session: Session, rows: Sequence[dict[str, Any]]) -> bool:
    """No row's id or idempotency key is stored yet, nor repeated among the rows."""
    ids = [row["id"] for row in rows]
    keys = [row["idempotency_key"] for row in rows if row["idempotency_key"] is not None]
    if len(set(ids)) < len(ids) or len(set(keys)) < len(keys):
        return False
    clash = among(session, Request.id, ids)
    if keys:
        clash = or_(clash, Request.idempotency_key.in_(keys))
    return session.scalar(select(Request.id).where(clash).limit(1)) is None


def existing_request_ids(session: Session, request_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(list(request_ids)):
        found.update(session.scalars(select(Request.id).where(among(session, Request.id, part))))
    return found
