"""SQL for counting requests Redis lost (batchline.losses): one control row, one count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from batchline.models import Control, Request

EPOCHS_CONTROL = "intake_epochs"


def load_epochs(session: Session) -> dict[str, Any]:
    # FOR UPDATE: two observers (beat, `batchline status`) must not both close an epoch.
    row = session.scalar(select(Control).where(Control.name == EPOCHS_CONTROL).with_for_update())
    if row is None or not row.value:
        return {}
    value = orjson.loads(row.value)
    return value if isinstance(value, dict) else {}


def save_epochs(session: Session, record: dict[str, Any], now: datetime) -> None:
    value = orjson.dumps(record).decode()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Control).values(name=EPOCHS_CONTROL, value=value, updated_at=now)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Control.name], set_={"value": value, "updated_at": now}
        )
    )


def count_ids_between(session: Session, first_ms: int, last_ms: int) -> int:
    """Requests in SQL whose id was made between these times (ids start with their ms)."""
    low, high = f"{first_ms:012x}", f"{last_ms + 1:012x}"
    count = session.scalar(
        select(func.count()).select_from(Request).where(Request.id >= low, Request.id < high)
    )
    return int(count or 0)
