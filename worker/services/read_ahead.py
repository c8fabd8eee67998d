"""Preparing the next piece of work while the current one is written.

Ingestion alternates between the interpreter (reading and parsing a chunk of
result lines) and the database (writing the previous chunk), and each waits
for the other. With the next chunk read and parsed in a thread while the
database works on the current one, the two overlap: psycopg releases the GIL
while it waits for the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

_END = object()


def read_ahead(items: Iterator[T], prepare: Callable[[T], U]) -> Iterator[U]:
    """`prepare(item)` for each item in order, the next one computed in a thread
    while the caller handles the current one. At most one item is held ahead,
    so memory stays that of two chunks; an exception in reading or preparing
    reaches the caller at the item it belongs to."""

    def step() -> object:
        item = next(items, _END)
        return _END if item is _END else prepare(item)  # type: ignore[arg-type]

    with ThreadPoolExecutor(1, thread_name_prefix="batchline-read-ahead") as pool:
        pending = pool.submit(step)
        while (ready := pending.result()) is not _END:
            pending = pool.submit(step)
            yield ready  # type: ignore[misc]
