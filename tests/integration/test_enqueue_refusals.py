"""Bad input is refused at the door: an error naming the problem, nothing enqueued."""

from __future__ import annotations

import math
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from batchline.database import make_engine
from batchline.domain.validation import InvalidRequest
from batchline.keys import RedisKeys
from batchline.models import Request
from batchline.producer import Item, Producer
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

GOOD = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda p: p.enqueue("not a mapping"), "mapping"),
        (lambda p: p.enqueue({**GOOD, "stream": True}), "stream"),
        (lambda p: p.enqueue({**GOOD, "max_tokens": "5"}), "max_tokens"),
        (lambda p: p.enqueue(GOOD, key="has space"), "key"),
        (lambda p: p.enqueue(GOOD, tags={"t": [1]}), "tag"),
        (lambda p: p.enqueue(GOOD, max_attempts=0), "max_attempts"),
        (lambda p: p.enqueue_many([GOOD, GOOD, {**GOOD, "messages": None}]), "item 2"),
        (lambda p: p.enqueue_many([Item(GOOD, key="k"), Item(GOOD, key="k")]), "twice"),
        (lambda p: p.enqueue_many([GOOD, {**GOOD, "metadata": {"x": math.inf}}]), "non-finite"),
    ],
)
def test_enqueue__bad_input_raises_and_leaves_redis_and_sql_untouched(
    sqlite_db: str, redis_url: str, redis_client: redis.Redis, call: Any, named: str
) -> None:
    with (
        Producer(make_settings(sqlite_db, redis_url)) as producer,
        pytest.raises(InvalidRequest, match=named),
    ):
        call(producer)

    assert redis_client.dbsize() == 0
    assert redis_client.exists(RedisKeys().intake_stream) == 0
    engine = make_engine(sqlite_db)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Request)) == 0
    engine.dispose()


def test_enqueue__same_key_twice_gives_back_the_first_request(
    sqlite_db: str, redis_url: str, redis_client: redis.Redis
) -> None:
    with Producer(make_settings(sqlite_db, redis_url)) as producer:
        first = producer.enqueue(GOOD, key="order-17")
        again = producer.enqueue({**GOOD, "max_tokens": 9}, key="order-17")
        [many] = producer.enqueue_many([Item(GOOD, key="order-17")])
    assert first == again == many
    assert redis_client.xlen(RedisKeys().intake_stream) == 1
