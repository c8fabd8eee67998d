"""Bad input is refused at the door: a clear error naming the problem, nothing enqueued.

Given a producer on real Redis and SQL (or the environment a service starts
from, or a JSONL file for `batchline enqueue`); when the input is malformed;
then the error names the problem, and Redis and SQL stay empty.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from batchline.database import make_engine
from batchline.domain.validation import InvalidRequest
from batchline.models import Request
from batchline.producer import Item, Producer
from batchline.settings import Settings, SettingsError
from tests.conftest import make_settings

pytestmark = [pytest.mark.fault, pytest.mark.integration]

GOOD: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
}


def _msgs(messages: object) -> dict[str, Any]:
    return {**GOOD, "messages": messages}


def _deep() -> object:
    value: object = "x"
    for _ in range(10_000):
        value = {"x": [value]}
    return value


# The producer is typed Any here: these calls break its signature on purpose.
Call = Callable[[Any], object]

PRODUCER_CASES: list[tuple[str, Call, str]] = [
    ("params a string", lambda p: p.enqueue("hello"), "params must be a mapping"),
    ("params a list", lambda p: p.enqueue([GOOD]), "params must be a mapping"),
    ("params None", lambda p: p.enqueue(None), "params must be a mapping"),
    ("no model", lambda p: p.enqueue({k: v for k, v in GOOD.items() if k != "model"}), "model"),
    ("empty model", lambda p: p.enqueue({**GOOD, "model": ""}), "model"),
    ("model a number", lambda p: p.enqueue({**GOOD, "model": 3}), "model"),
    (
        "no max_tokens",
        lambda p: p.enqueue({"model": "m", "messages": GOOD["messages"]}),
        "max_tokens",
    ),
    ("max_tokens 0", lambda p: p.enqueue({**GOOD, "max_tokens": 0}), "max_tokens"),
    ("max_tokens a string", lambda p: p.enqueue({**GOOD, "max_tokens": "5"}), "max_tokens"),
    ("max_tokens a bool", lambda p: p.enqueue({**GOOD, "max_tokens": True}), "max_tokens"),
    ("max_tokens a float", lambda p: p.enqueue({**GOOD, "max_tokens": 5.5}), "max_tokens"),
    ("no messages", lambda p: p.enqueue({"model": "m", "max_tokens": 5}), "messages"),
    ("empty messages", lambda p: p.enqueue(_msgs([])), "messages"),
    ("messages a string", lambda p: p.enqueue(_msgs("hi")), "messages"),
    ("message not a mapping", lambda p: p.enqueue(_msgs(["hi"])), r"messages\[0\]"),
    ("bad role", lambda p: p.enqueue(_msgs([{"role": "system", "content": "x"}])), "role"),
    ("content a number", lambda p: p.enqueue(_msgs([{"role": "user", "content": 7}])), "content"),
    ("block without type", lambda p: p.enqueue(_msgs([{"role": "user", "content": [{}]}])), "type"),
    ("unknown parameter", lambda p: p.enqueue({**GOOD, "temprature": 1}), "temprature"),
    ("stream true", lambda p: p.enqueue({**GOOD, "stream": True}), "stream"),
    ("system a number", lambda p: p.enqueue({**GOOD, "system": 5}), "system"),
    (
        "stop_sequences a string",
        lambda p: p.enqueue({**GOOD, "stop_sequences": "x"}),
        "stop_sequences",
    ),
    ("tools a mapping", lambda p: p.enqueue({**GOOD, "tools": {}}), "tools"),
    ("temperature a string", lambda p: p.enqueue({**GOOD, "temperature": "hot"}), "temperature"),
    ("metadata a list", lambda p: p.enqueue({**GOOD, "metadata": []}), "metadata"),
    ("NaN inside", lambda p: p.enqueue({**GOOD, "metadata": {"x": math.nan}}), "non-finite"),
    ("non-string key", lambda p: p.enqueue({**GOOD, "metadata": {1: "x"}}), "non-string key"),
    ("not JSON-able value", lambda p: p.enqueue({**GOOD, "metadata": {"x": {1, 2}}}), "JSON"),
    ("key with a space", lambda p: p.enqueue(GOOD, key="a b"), "key"),
    ("key empty", lambda p: p.enqueue(GOOD, key=""), "key"),
    ("key too long", lambda p: p.enqueue(GOOD, key="k" * 201), "key"),
    ("key a number", lambda p: p.enqueue(GOOD, key=5), "key"),
    ("tags a list", lambda p: p.enqueue(GOOD, tags=["a"]), "tags must be a mapping"),
    ("tag value a list", lambda p: p.enqueue(GOOD, tags={"t": [1]}), "tag 't'"),
    ("tag name empty", lambda p: p.enqueue(GOOD, tags={"": 1}), "tag names"),
    ("tags too big", lambda p: p.enqueue(GOOD, tags={"t": "x" * 5000}), "tags may be at most"),
    ("U+0000 in a tag", lambda p: p.enqueue(GOOD, tags={"t": "a\u0000"}), "U\\+0000"),
    ("U+0000 in the model", lambda p: p.enqueue({**GOOD, "model": "m\u0000"}), "U\\+0000"),
    ("nested 10,000 deep", lambda p: p.enqueue({**GOOD, "metadata": _deep()}), "nested deeper"),
    ("on_result blank", lambda p: p.enqueue(GOOD, on_result=" "), "on_result"),
    ("max_attempts 0", lambda p: p.enqueue(GOOD, max_attempts=0), "max_attempts"),
    ("max_attempts 101", lambda p: p.enqueue(GOOD, max_attempts=101), "max_attempts"),
    ("max_attempts a string", lambda p: p.enqueue(GOOD, max_attempts="3"), "max_attempts"),
    (
        "request over 255 MB",
        lambda p: p.enqueue(_msgs([{"role": "user", "content": "x" * 255_000_001}])),
        "bytes encoded",
    ),
    ("many: last item bad", lambda p: p.enqueue_many([GOOD, GOOD, _msgs(None)]), "item 2"),
    ("many: first item bad", lambda p: p.enqueue_many(["x", GOOD]), "item 0"),
    (
        "many: key twice",
        lambda p: p.enqueue_many([Item(GOOD, key="k"), Item(GOOD, key="k")]),
        "twice",
    ),
    (
        "many: bad Item tags",
        lambda p: p.enqueue_many([GOOD, Item(GOOD, tags=5)]),  # type: ignore[arg-type]
        "item 1",
    ),
]


@pytest.mark.parametrize(
    ("call", "named"),
    [pytest.param(call, named, id=name) for name, call, named in PRODUCER_CASES],
)
def test_enqueue__malformed_input_names_the_problem_and_enqueues_nothing(
    sqlite_db: str, redis_url: str, redis_client: redis.Redis, call: Call, named: str
) -> None:
    with (
        Producer(make_settings(sqlite_db, redis_url)) as producer,
        pytest.raises(InvalidRequest, match=named),
    ):
        call(producer)

    assert_nothing_enqueued(redis_client, sqlite_db)


SETTINGS_CASES: list[tuple[dict[str, str], str]] = [
    ({"BATCHLINE_DATABASE_URL": "mysql://db/x"}, "BATCHLINE_DATABASE_URL"),
    ({"BATCHLINE_DATABASE_URL": "not a url"}, "BATCHLINE_DATABASE_URL"),
    ({"BATCHLINE_REDIS_URL": "http://127.0.0.1:6379"}, "BATCHLINE_REDIS_URL"),
    ({"BATCHLINE_REDIS_URL": "127.0.0.1:6379"}, "BATCHLINE_REDIS_URL"),
    ({"ANTHROPIC_BASE_URL": "ftp://api.example"}, "ANTHROPIC_BASE_URL"),
    ({"BATCHLINE_POLL_INTERVAL_SECONDS": "-1"}, "BATCHLINE_POLL_INTERVAL_SECONDS"),
    ({"BATCHLINE_INTAKE_INTERVAL_SECONDS": "0"}, "BATCHLINE_INTAKE_INTERVAL_SECONDS"),
    ({"BATCHLINE_RECONCILE_INTERVAL_SECONDS": "soon"}, "BATCHLINE_RECONCILE_INTERVAL_SECONDS"),
    ({"BATCHLINE_MAX_WAIT_SECONDS": "-0.5"}, "BATCHLINE_MAX_WAIT_SECONDS"),
    ({"BATCHLINE_MAX_BATCH_REQUESTS": "1e3"}, "BATCHLINE_MAX_BATCH_REQUESTS"),
    ({"BATCHLINE_MAX_BATCH_REQUESTS": "100001"}, "BATCHLINE_MAX_BATCH_REQUESTS"),
    ({"BATCHLINE_MAX_BATCH_BYTES": "300000000"}, "BATCHLINE_MAX_BATCH_BYTES"),
    ({"BATCHLINE_MAX_ATTEMPTS": "three"}, "BATCHLINE_MAX_ATTEMPTS"),
    ({"BATCHLINE_CREATE_TIMEOUT_SECONDS": "nan"}, "BATCHLINE_CREATE_TIMEOUT_SECONDS"),
    ({"BATCHLINE_POLL_INTERVAL_SECONDS": "inf"}, "BATCHLINE_POLL_INTERVAL_SECONDS"),
    ({"BATCHLINE_CLOCK_SKEW_SECONDS": "-5"}, "BATCHLINE_CLOCK_SKEW_SECONDS"),
    ({"BATCHLINE_DAILY_SPEND_CAP_USD": "-1"}, "BATCHLINE_DAILY_SPEND_CAP_USD"),
    ({"BATCHLINE_PRIME_MIN_GROUP": "-2"}, "BATCHLINE_PRIME_MIN_GROUP"),
    ({"BATCHLINE_MAX_RESULT_LINE_BYTES": "0"}, "BATCHLINE_MAX_RESULT_LINE_BYTES"),
    ({"BATCHLINE_INGEST_DEADLINE_SECONDS": "3600"}, "BATCHLINE_INGEST_DEADLINE_SECONDS"),
    ({"BATCHLINE_INGEST_CONCURRENCY": "0"}, "BATCHLINE_INGEST_CONCURRENCY"),
]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param(env, named, id="+".join(f"{k}={v}" for k, v in env.items()))
        for env, named in SETTINGS_CASES
    ],
)
def test_settings__bad_environment_names_the_variable(
    env: dict[str, str], named: str, redis_client: redis.Redis
) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)
    assert redis_client.dbsize() == 0


def test_settings__bad_database_url_error_hides_its_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"BATCHLINE_DATABASE_URL": "mysql://u:hunter2-pw@db/x"})
    assert "hunter2-pw" not in str(caught.value)


def assert_nothing_enqueued(client: redis.Redis, db_url: str) -> None:
    assert client.dbsize() == 0, sorted(client.keys())
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Request)) == 0
    engine.dispose()


# -- batchline enqueue FILE.jsonl -------------------------------------------

LINE = (
    b'{"custom_id": "%s", "params": {"model": "m", "max_tokens": 5, '
    b'"messages": [{"role": "user", "content": "hi"}]}}\n'
)


def _good(custom_id: str) -> bytes:
    return LINE % custom_id.encode()


FILE_CASES: list[tuple[str, bytes, int, str]] = [
    ("truncated last line", _good("a") + _good("b")[:40], 2, "invalid JSON"),
    ("invalid JSON", _good("a") + b"{custom_id: a}\n", 2, "invalid JSON"),
    ("not an object", _good("a") + _good("b") + b"[1, 2]\n", 3, "object"),
    ("custom_id a number", b'{"custom_id": 5, "params": {}}\n', 1, "custom_id"),
    ("custom_id bad chars", _good("a b"), 1, "custom_id"),
    ("params max_tokens a string", _good("a").replace(b"5", b'"5"'), 1, "max_tokens"),
    ("params missing", b'{"custom_id": "a"}\n', 1, "params must be a mapping"),
    ("unexpected field", b'{"custom_id": "a", "params": {}, "x": 1}\n', 1, "unexpected field"),
    ("duplicate custom_id", _good("a") + _good("b") + _good("a"), 3, "already on line 1"),
    ("not UTF-8", _good("a") + b'{"custom_id": "\xff\xfe", "params": {}}\n', 2, "not UTF-8"),
    (
        "huge request",
        _good("a")
        + b'{"custom_id": "b", "params": {"model": "m", "max_tokens": 5, "messages": '
        + b'[{"role": "user", "content": "'
        + b"x" * 255_000_001
        + b'"}]}}\n',
        2,
        "bytes encoded",
    ),
]


@pytest.mark.parametrize(
    ("content", "line", "named"),
    [pytest.param(c, n, named, id=name) for name, c, n, named in FILE_CASES],
)
def test_cli_enqueue__bad_file_fails_on_one_line_naming_line_and_problem(
    sqlite_db: str,
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    content: bytes,
    line: int,
    named: str,
) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))}
    env.update(BATCHLINE_DATABASE_URL=sqlite_db, BATCHLINE_REDIS_URL=redis_url)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "batchline"), "enqueue", str(path)],
        env=env,
        capture_output=True,
        timeout=120,
    )

    assert done.returncode != 0
    error_lines = [s for s in done.stderr.decode(errors="replace").splitlines() if s.strip()]
    assert len(error_lines) == 1, done.stderr[:2000]
    assert f"{path}:{line}:" in error_lines[0]
    assert named in error_lines[0]
    assert len(error_lines[0]) < 500
    assert_nothing_enqueued(redis_client, sqlite_db)
