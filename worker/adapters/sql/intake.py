"""SQL of intake: requests from the Redis stream (or durable enqueue) into `requests`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Table,
    or_,
    select,
)
from sqlalchemy.orm import Session

from batchline.adapters import bulk
from batchline.adapters.sql.rows import among, chunks
from batchline.models import Request


def insert_requests(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert new requests; ids (and idempotency keys) already present are skipped."""
    table = cast(Table, Request.__table__)
    if rows and session.get_bind().dialect.name == "postgresql" and _all_new(session, rows):
        # The common case, checked first: COPY straight into the table, half the
        # writes of staging. Should a concurrent intake insert one of these rows
        # meanwhile, the savepoint rolls back and the skipping path below runs.
        try:
            with session.begin_nested():
                bulk.insert_new(session, table, rows)
            return len(rows)
        except bulk.UNIQUE_VIOLATIONS:
            pass
    return bulk.insert_missing(session, table, rows)


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


def request_id_for_key(session: Session, key: str | None) -> str | None:
    if key is None:
        return None
    return session.scalar(select(Request.id).where(Request.idempotency_key == key))
