"""Read-side SQL for handles, the CLI and status: no state changes here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Batch, Request, Result


@dataclass(frozen=True)
class RequestView:
    id: str
    state: str
    idempotency_key: str | None
    batch_id: int | None
    attempts: int
    charged_attempts: int
    last_error: str | None
    tags: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


def request_view(session: Session, request_id: str) -> RequestView | None:
    row = session.get(Request, request_id)
    if row is None:
        return None
    return RequestView(
        row.id,
        row.state,
        row.idempotency_key,
        row.batch_id,
        row.attempts,
        row.charged_attempts,
        row.last_error,
        row.tags,
        row.created_at,
        row.finished_at,
    )


def request_id_for_key(session: Session, key: str) -> str | None:
    return session.scalar(select(Request.id).where(Request.idempotency_key == key))


def final_result_body(session: Session, request_id: str) -> tuple[str, dict[str, Any]] | None:
    """The latest non-duplicate result's type and body for a request."""
    row = session.execute(
        select(Result.result_type, Result.body)
        .where(Result.request_id == request_id, Result.duplicate.is_(False))
        .order_by(Result.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def requests_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Request.state, func.count()).group_by(Request.state))
    return {state: int(n) for state, n in rows}


def batches_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Batch.state, func.count()).group_by(Batch.state))
    return {state: int(n) for state, n in rows}
