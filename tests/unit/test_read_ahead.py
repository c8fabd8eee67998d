"""read_ahead: the next item is prepared while the caller holds the current one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from batchline.services.read_ahead import read_ahead


def test_read_ahead__keeps_order_and_prepares_the_next_item_meanwhile() -> None:
    prepared: list[int] = []
    second_ready = threading.Event()

    def prepare(item: int) -> int:
        prepared.append(item)
        if item == 2:
            second_ready.set()
        return item * 10

    out = []
    for value in read_ahead(iter([1, 2, 3]), prepare):
        if value == 10:
            # Item 2 is prepared while the caller still works on item 1.
            assert second_ready.wait(5)
        out.append(value)
    assert out == [10, 20, 30] and prepared == [1, 2, 3]


def test_read_ahead__an_error_reaches_the_caller_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise RuntimeError("stream broke")

    got = []
    with pytest.raises(RuntimeError, match="stream broke"):
        for value in read_ahead(items(), lambda i: i):
            got.append(value)
    assert got == [1]


def test_read_ahead__holds_at_most_one_item_ahead() -> None:
    taken = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for i in range(10):
            taken += 1
            yield i

    for value in read_ahead(items(), lambda i: i):
        assert taken <= value + 2
