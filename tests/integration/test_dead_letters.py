"""`batchline dead-letters`: list what intake set aside, and send it back.

Over real Redis and SQL: a letter sent back is taken in once its cause is
fixed, one still bad is set aside again, and the depth count stays right for a
bundle going round twice.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select

from batchline.adapters.dead_letters import DeadLetters
from batchline.cli import cli
from batchline.domain.custom_ids import new_request_id
from batchline.keys import RedisKeys
from batchline.models import Request
from batchline.producer import Producer
from batchline.services import intake
from batchline.services.context import Pipeline
from harness.poison import PARAMS, dead_letters, failing_rows
from harness.redis_faults import LimitedRedis
from harness.redis_faults import limited_redis as limited_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATCHLINE_REDIS_URL", pipeline.settings.redis_url)
    monkeypatch.setenv("BATCHLINE_DATABASE_URL", pipeline.settings.database_url)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, ["dead-letters", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def stored_ids(pipeline: Pipeline) -> set[str]:
    with pipeline.sessions() as session:
        return set(session.scalars(select(Request.id)))


def test_dead_letters__one_sent_back_after_its_cause_is_fixed_is_taken_in(
    pipeline: Pipeline,
    redis_client: redis.Redis,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Producer(pipeline.settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS] * 5)]
    victim = ids[2]
    fix = failing_rows(monkeypatch, AttributeError("a fault fixed in the next release"), victim)
    assert intake.run_intake(pipeline, "t") == 4

    [listed] = orjson.loads(invoke(runner, "list", "--json"))
    assert listed["request_ids"] == [victim]
    assert "AttributeError: a fault fixed in the next release" in listed["reason"]
    assert victim in invoke(runner, "list")

    fix()  # the fixed release
    sent = invoke(runner, "requeue", listed["letter_id"])
    assert "sent back to intake: 1 dead letters (1 requests)" in sent
    assert dead_letters(redis_client) == []
    assert intake.run_intake(pipeline, "t") == 1
    assert stored_ids(pipeline) == set(ids)
    assert pipeline.intake.depth() == 0
    assert "no dead letters" in invoke(runner, "list")


def test_dead_letters__a_bundle_still_bad_goes_round_once_more_and_the_depth_stays_right(
    pipeline: Pipeline, redis_client: redis.Redis, runner: CliRunner
) -> None:
    # Three ids but two bodies: not splittable, so the whole bundle is one letter.
    ids = [new_request_id() for _ in range(3)]
    fields = {
        b"id": " ".join(ids).encode(),
        b"p": b"\n".join([orjson.dumps(PARAMS)] * 2),
        b"m": b"\n".join([orjson.dumps({"model": "claude-test", "t": 1.0})] * 2),
    }
    keys = RedisKeys()
    redis_client.xadd(keys.intake_stream, fields)  # type: ignore[arg-type]
    redis_client.incrby(keys.intake_bundled_extra, 2)  # as a bundle's writer counts it
    assert pipeline.intake.depth() == 3
    intake.run_intake(pipeline, "t")
    assert pipeline.intake.depth() == 0
    [letter] = dead_letters(redis_client)

    sent = invoke(runner, "requeue", "--all")

    assert "sent back to intake: 1 dead letters (3 requests)" in sent
    assert pipeline.intake.depth() == 3
    assert intake.run_intake(pipeline, "t") == 0
    [again] = dead_letters(redis_client)
    assert again[b"id"] == letter[b"id"]
    assert b"differ in number" in letter[b"reason"] and b"differ in number" in again[b"reason"]
    assert pipeline.intake.depth() == 0
    assert stored_ids(pipeline) == set()


def test_dead_letters__an_id_naming_no_letter_moves_nothing(
    pipeline: Pipeline, runner: CliRunner
) -> None:
    out = invoke(runner, "requeue", "1-0")
    assert "sent back to intake: 0 dead letters (0 requests)" in out
    assert "1 named no dead letter" in out
    assert "name the letters" in invoke(runner, "requeue", code=2)
    assert "name the letters" in invoke(runner, "requeue", "1-0", "--all", code=2)


def test_dead_letters__a_requeue_redis_refuses_when_full_keeps_the_letter(
    limited_redis: LimitedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis past its maxmemory refuses the move back whole, as it refuses any
    # write: the letter stays, and no entry is added past the limit.
    client = redis.Redis.from_url(limited_redis.url)
    keys = RedisKeys()
    fields: dict[Any, Any] = {b"id": new_request_id().encode(), b"p": orjson.dumps(PARAMS)}
    fields[b"m"] = orjson.dumps({"model": "claude-test", "t": 1.0})
    letter_id = client.xadd(keys.dead_letters, {**fields, b"reason": b"refused", b"entry": b"1-0"})
    used: Any = client.info("memory")["used_memory"]
    try:
        client.config_set("maxmemory", str(used // 2))  # full, whatever the build's baseline
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            DeadLetters(client, keys).requeue([letter_id.decode()])  # type: ignore[union-attr]
        monkeypatch.setenv("BATCHLINE_REDIS_URL", limited_redis.url)
        out = invoke(CliRunner(), "requeue", "--all", code=1)
        assert "past its maxmemory" in out and "nothing was changed" in out
        assert client.xlen(keys.dead_letters) == 1
        assert client.exists(keys.intake_stream) == 0
    finally:
        client.close()
