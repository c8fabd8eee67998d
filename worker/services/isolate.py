"""Storing many rows so that one bad row never holds back the others.

Rows go in together, in one transaction, as fast as ever. Should the database
refuse the data, the rows are split in halves, each half its own transaction,
until the row it refuses is alone; that row is handed to `refused` with the
error, and every other row is stored. One bad row among n costs about
2·log2(n) extra transactions; a chunk with no bad row costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from batchline.adapters.bulk import DATA_REFUSALS

T = TypeVar("T")


def store_isolating(
    items: Sequence[T],
    store: Callable[[Sequence[T]], None],
    refused: Callable[[T, Exception], None],
) -> None:
    """`store(items)`, split on a refusal until the refused item is alone.

    `store` must commit or roll back whole: a part that fails leaves nothing.
    """
    pending = [items] if items else []
    while pending:
        part = pending.pop()
        try:
            store(part)
        except DATA_REFUSALS as exc:
            if len(part) == 1:
                refused(part[0], exc)
                continue
            middle = len(part) // 2
            # The first half is popped first, so rows keep their order.
            pending += [part[middle:], part[:middle]]


def one_line(exc: Exception) -> str:
    """A database error as one short line, for a dead letter or a request's error."""
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return f"{type(getattr(exc, 'orig', None) or exc).__name__}: {text.splitlines()[0][:300]}"
