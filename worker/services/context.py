"""What a service function needs: settings, SQL sessions and the ports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from batchline.adapters.batch_api import BatchApi
from batchline.adapters.intake import IntakeStream
from batchline.adapters.messages_api import SyncMessages
from batchline.settings import Settings


class Notifier(Protocol):
    def settled(self, request_ids: Sequence[str]) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pipeline:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    api: BatchApi
    intake: IntakeStream
    notifier: Notifier
    clock: Callable[[], datetime] = field(default=utcnow)
    # The synchronous Messages API, for the deadline fallback (None: not configured).
    messages: SyncMessages | None = None
    # Intake's count of requests in a row that decoded yet made no row, across
    # chunks (services.intake._judge_failed_rows): a bad deploy is told from poison by it.
    rows_failed_in_a_row: int = 0
