"""Read-side answers of the HTTP API, from SQL (run off the event loop)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters import queries
from batchline.adapters.sql import rows as rows_sql
from batchline.handles import to_sdk_result
from batchline.http_api.auth import Principal
from batchline.http_api.errors import ApiError
from batchline.models import Batch

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_TERMINAL = {"succeeded", "failed", "canceled", "expired"}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def request_state(
    sessions: sessionmaker[Session], request_id: str, principal: Principal
) -> dict[str, Any]:
    with sessions() as session:
        view = queries.request_view(session, request_id)
        if view is None:
            # Not in SQL yet (still in the intake stream) or unknown: nothing to show but that.
            return {"id": request_id, "state": "pending", "result": None}
        if principal.scope is not None:
            name, value = principal.scope
            if (view.tags or {}).get(name) != value:
                raise ApiError(404, "not_found_error", "no such request")
        found = queries.final_result_body(session, request_id) if view.state in _TERMINAL else None
    result = None
    if view.state in _TERMINAL:
        result = to_sdk_result(view.state, view.last_error, found).model_dump(
            mode="json", exclude_unset=True
        )
    key = view.idempotency_key
    if key is not None:
        key = key.removeprefix(principal.key_prefix())
    return {
        "id": view.id,
        "state": view.state,
        "key": key,
        "tags": view.tags or {},
        "attempts": view.attempts,
        "created_at": _iso(view.created_at),
        "finished_at": _iso(view.finished_at),
        # The Batch API's result line shape: custom_id (the key) and result.
        "custom_id": key,
        "result": result,
    }


def check_unscoped(principal: Principal) -> None:
    if principal.scope is not None:
        name, value = principal.scope
        raise ApiError(
            403,
            "permission_error",
            f"batches mix tenants; a token scoped to {name}={value} cannot list them",
        )


def _batch(row: Batch) -> dict[str, Any]:
    return {
        "id": row.id,
        "remote_id": row.remote_id,
        "state": row.state,
        "processing_status": row.processing_status,
        "request_count": row.request_count,
        "request_counts": {
            "processing": row.count_processing,
            "succeeded": row.count_succeeded,
            "errored": row.count_errored,
            "canceled": row.count_canceled,
            "expired": row.count_expired,
        },
        "created_at": _iso(row.created_at),
        "ended_at": _iso(row.remote_ended_at),
        "error": row.error,
    }


def batches(sessions: sessionmaker[Session], state: str | None, limit: int) -> list[dict[str, Any]]:
    with sessions() as session:
        return [_batch(row) for row in queries.list_batches(session, state, limit)]


def batch(sessions: sessionmaker[Session], batch_id: str) -> dict[str, Any]:
    with sessions() as session:
        found = queries.find_batch_id(session, batch_id)
        row = None if found is None else rows_sql.get_batch(session, found)
        if row is None:
            raise ApiError(404, "not_found_error", "no such batch")
        return _batch(row)
