"""Shared pieces of the SQL adapter: id lists, dialect-specific inserts, the guarded batch move."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    any_,
    func,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from batchline.domain.states import BatchState
from batchline.models import Batch

ID_CHUNK = 5_000


def changed(result: Any) -> int:
    """Rows an UPDATE matched: the caller won its guarded transition iff this is 1."""
    return int(result.rowcount)


def chunks(items: Sequence[Any], size: int = ID_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def among(session: Session, column: Any, values: Sequence[str]) -> Any:
    """`column IN values`. On PostgreSQL as `= ANY(...)` over one text parameter:
    an IN list of thousands of parameters makes psycopg parse a query that long,
    and an array parameter is dumped element by element in Python."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(func.string_to_array(joined(values), ","))
    return column.in_(values)


def joined(values: Sequence[Any]) -> str:
    text_values = [str(v) for v in values]
    # Ids and custom_ids never hold a comma (see batchline.domain.custom_ids).
    if any("," in v for v in text_values):
        raise ValueError("a comma in an id cannot be passed as a joined list")
    return ",".join(text_values)


def insert_for(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def move_batch(session: Session, batch_id: int, src: Iterable[BatchState], **values: Any) -> bool:
    result = session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.state.in_(list(src))).values(**values)
    )
    return changed(result) == 1


def get_batch(session: Session, batch_id: int) -> Batch | None:
    return session.get(Batch, batch_id)
