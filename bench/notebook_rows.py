"""The tables a notebook user writes requests and results into, and the row made
of one SDK result: shared by the naive ingestion baseline (`bench.ingest`) and
the cookbook's script beside the service (`bench.notebook`), so both baselines
do the same work per result."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class NotebookBase(DeclarativeBase):
    pass


class NotebookRequest(NotebookBase):
    __tablename__ = "notebook_requests"
    custom_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)


class NotebookResult(NotebookBase):
    __tablename__ = "notebook_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(64))
    result_type: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(String)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)


def result_row(entry: Any) -> NotebookResult:
    """The row for one `MessageBatchIndividualResponse`, as the notebook's loop makes it."""
    result = entry.result
    message = getattr(result, "message", None)
    first = message.content[0] if message is not None and message.content else None
    return NotebookResult(
        custom_id=entry.custom_id,
        result_type=result.type,
        text=getattr(first, "text", None),
        input_tokens=message.usage.input_tokens if message else None,
        output_tokens=message.usage.output_tokens if message else None,
        raw=entry.model_dump(mode="json"),
    )
