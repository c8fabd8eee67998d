"""Durable enqueue (BATCHLINE_DURABLE_ENQUEUE): requests go straight into SQL as queued.

For a Redis without persistence: `enqueue` returns only once the request is
committed, so no Redis restart or flush can lose it. It costs a SQL
transaction per call (or per `enqueue_many`) instead of a Redis round trip.
An idempotency key is unique in SQL: a key already used returns that request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters.intake import IntakeEntry
from batchline.adapters.sql import intake as intake_sql
from batchline.errors import BrokerUnavailable
from batchline.services.intake import request_row


class DurableIntake:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session], max_attempts: int) -> None:
        self._engine = engine
        self._sessions = sessions
        self._max_attempts = max_attempts

    def close(self) -> None:
        self._engine.dispose()

    def add(self, entries: Sequence[tuple[IntakeEntry, str | None]]) -> dict[str, str]:
        """Commit every entry in one transaction; returns each entry's id -> the id that
        holds its request (another one when its key was already used)."""
        now = datetime.now(UTC)
        rows = [request_row(entry, self._max_attempts, now) for entry, _key in entries]
        try:
            return self._insert(entries, rows)
        except OperationalError as exc:
            raise BrokerUnavailable(
                f"the database refused the durable enqueue: {exc.orig}; nothing was enqueued"
            ) from exc

    def _insert(
        self, entries: Sequence[tuple[IntakeEntry, str | None]], rows: list[dict[str, Any]]
    ) -> dict[str, str]:
        with self._sessions.begin() as session:
            inserted = intake_sql.insert_requests(session, rows)
            held = {entry.request_id: entry.request_id for entry, _key in entries}
            if inserted < len(rows):
                present = intake_sql.existing_request_ids(session, list(held))
                for entry, key in entries:
                    if entry.request_id not in present:
                        held[entry.request_id] = intake_sql.request_id_for_key(session, key) or ""
        return held
