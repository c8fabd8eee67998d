"""Shared pieces of the SQL adapter: id lists, dialect-specific inserts, the guarded move."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from sqlalchemy import (
    any_,
    func,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from batchline.domain.states import BatchState, Move
from batchline.models import Batch, Request

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


@overload
def guarded_move(
    session: Session,
    move: Move[Any],
    *where: Any,
    unindexed: bool = ...,
    synchronize: bool = ...,
    returning: None = ...,
    **values: Any,
) -> int: ...


@overload
def guarded_move(
    session: Session,
    move: Move[Any],
    *where: Any,
    unindexed: bool = ...,
    synchronize: bool = ...,
    returning: Any,
    **values: Any,
) -> list[Any]: ...


def guarded_move(
    session: Session,
    move: Move[Any],
    *where: Any,
    unindexed: bool = False,
    synchronize: bool = True,
    returning: Any = None,
    **values: Any,
) -> int | list[Any]:
    """Make `move` on the rows matching `where` that are in its source state.

    Every state change of a batch or request goes through here, so the source
    state always comes from `batchline.domain.states`. Returns how many rows
    moved, or with `returning` that column of each row that moved. `unindexed`
    writes the state guard so no index can serve it (see ingest._still_in_batch).
    """
    model: Any = Batch if isinstance(move.target, BatchState) else Request
    state = model.state + "" if unindexed else model.state
    stmt = update(model).where(state == move.source, *where).values(state=move.target, **values)
    if not synchronize:
        stmt = stmt.execution_options(synchronize_session=False)
    if returning is not None:
        return list(session.scalars(stmt.returning(returning)))
    return changed(session.execute(stmt))


def move_batch(session: Session, batch_id: int, move: Move[BatchState], **values: Any) -> bool:
    moved: int = guarded_move(session, move, Batch.id == batch_id, returning=None, **values)
    return moved == 1


def get_batch(session: Session, batch_id: int) -> Batch | None:
    return session.get(Batch, batch_id)
