"""The API key lives only in process memory (DESIGN.md invariant 5).

Given the service (celery worker and beat at DEBUG, and Flower) run with a
distinctive key that the emulator really checks; when requests succeed, one
fails, one create is not accepted, one create's outcome is unknown and one is
refused; then the key appears nowhere: not in any SQL row, any Redis key or
value (streams, lists of Celery messages, hashes, sets), the worker, beat or
Flower logs, Flower's API, or the text of the errors a wrong key provokes.
"""

from __future__ import annotations

import traceback
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import redis
from sqlalchemy import select, text

from batchline.adapters.anthropic_api import AnthropicBatchApi
from batchline.adapters.batch_api import CreateRefused
from batchline.database import make_engine
from batchline.emulator import EmulatorServer, FaultConfig
from batchline.local import free_port
from batchline.models import Request
from batchline.producer import Producer
from batchline.settings import Settings
from harness.processes import CELERY, ServiceProcesses, service_env, wait_for

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.acceptance]

KEY = f"sk-ant-SECRET-{uuid.uuid4()}"
# The distinctive tail alone: a key cut or masked in the middle still shows it.
TAIL = KEY.rsplit("-", 1)[1]

PARAMS: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hello"}],
}
FAILING = {
    **PARAMS,
    "messages": [{"role": "user", "content": "[[emulator:errored:not_found_error]]"}],
}
FINAL = {"succeeded", "failed", "expired", "canceled"}


@pytest.fixture
def service(
    pg_db: str, redis_url: str, emulator_factory: Any, tmp_path: Path
) -> Iterator[tuple[ServiceProcesses, EmulatorServer, int]]:
    emulator = emulator_factory(processing_seconds=0.5, api_key=KEY)
    env = service_env(
        pg_db,
        redis_url,
        emulator.base_url,
        ANTHROPIC_API_KEY=KEY,
        BATCHLINE_CREATE_TIMEOUT_SECONDS="3",
        BATCHLINE_CLOCK_SKEW_SECONDS="1",
        FLOWER_UNAUTHENTICATED_API="true",
    )
    procs = ServiceProcesses(env, tmp_path)
    flower_port = free_port()
    procs.worker(loglevel="DEBUG")
    procs.beat(loglevel="DEBUG")
    procs.start(
        "flower",
        [
            *CELERY,
            "flower",
            "--address=127.0.0.1",
            f"--port={flower_port}",
            "--logging=debug",
        ],
    )
    try:
        yield procs, emulator, flower_port
    finally:
        procs.stop_all()


def test_secrets__the_api_key_is_nowhere_but_in_process_memory(
    service: tuple[ServiceProcesses, EmulatorServer, int],
    pg_db: str,
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    procs, emulator, flower_port = service
    settings = Settings(database_url=pg_db, redis_url=redis_url)
    # 529 on the first create (not accepted), 500 on the next (outcome unknown).
    emulator.set_faults(FaultConfig(scripted_errors={"create": [529, 500]}))
    with Producer(settings) as producer:
        ids = [h.id for h in producer.enqueue_many([PARAMS, PARAMS, PARAMS, FAILING])]
        wait_final(pg_db, ids, procs)
        # A create refused for good: its request fails with the API's reason.
        emulator.set_faults(FaultConfig(scripted_errors={"create": [400]}))
        refused = producer.enqueue(PARAMS).id
        wait_final(pg_db, [refused], procs)
    states = final_states(pg_db, [*ids, refused])
    assert sorted(states.values()) == ["failed", "failed", "succeeded", "succeeded", "succeeded"]

    # The probes find the key when it is there (a control), and the logs are the real thing.
    assert leaks_in("control", f"x{KEY}y") and leaks_in("control", f"sk-ant-…{TAIL}")
    assert "POST " + emulator.base_url in procs.log("worker")
    found: list[str] = []
    found += leaks_in("SQL", sql_dump(pg_db))
    found += leaks_in("Redis", redis_dump(redis_client))
    flower = flower_dump(flower_port)
    assert "worker@" in flower, "Flower answered nothing useful: " + flower[:500]
    found += leaks_in("Flower API", flower)
    procs.stop_all()
    for name in ("worker", "beat", "flower"):
        log = procs.log(name)
        assert log, f"no {name} log"
        found += leaks_in(f"{name} log", log)
    assert '"level":"DEBUG"' in procs.log("worker"), "the worker did not log at DEBUG"
    found += leaks_in("errors", error_texts(emulator))
    assert not found, found


def wait_final(db_url: str, ids: list[str], procs: ServiceProcesses) -> None:
    try:
        wait_for(lambda: _all_final(db_url, ids), 90, "requests final", step=0.5)
    except AssertionError:
        pytest.fail("not final; worker log tail:\n" + procs.log("worker")[-3000:])


def _all_final(db_url: str, ids: list[str]) -> bool:
    states = final_states(db_url, ids)
    return len(states) == len(ids) and set(states.values()) <= FINAL


def final_states(db_url: str, ids: list[str]) -> dict[str, str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Request.id, Request.state).where(Request.id.in_(ids)))
            return {i: s for i, s in rows}
    finally:
        engine.dispose()


def leaks_in(where: str, blob: str) -> list[str]:
    return [f"{where}: ...{blob[max(0, i - 80) : i + 80]!r}..." for i in _hits(blob)]


def _hits(blob: str) -> list[int]:
    out = []
    for needle in (KEY, TAIL):
        start = blob.find(needle)
        if start >= 0:
            out.append(start)
    return out


def sql_dump(db_url: str) -> str:
    engine = make_engine(db_url)
    parts = []
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            for table in list(tables):
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                parts.append(f"{table}: {len(rows)} rows\n" + "\n".join(map(repr, rows)))
    finally:
        engine.dispose()
    dump = "\n".join(parts)
    assert "requests: 0 rows" not in dump
    return dump


def redis_dump(client: redis.Redis) -> str:
    parts = []
    for key in client.scan_iter(count=500):
        kind = str(client.type(key).decode())  # type: ignore[union-attr]
        value: object
        if kind == "string":
            value = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = f"<{kind}>"
        parts.append(f"{key!r} {kind} {value!r}")
    assert parts, "Redis is empty: nothing was checked"
    # Celery bodies are base64 in the list entries: decode what decodes.
    return "\n".join(parts) + "\n" + _decoded(parts)


def _decoded(parts: list[str]) -> str:
    import base64
    import re

    out = []
    for match in re.finditer(r'"body": ?"([A-Za-z0-9+/=]{16,})"', "\n".join(parts)):
        try:
            out.append(base64.b64decode(match.group(1)).decode(errors="replace"))
        except ValueError:
            continue
    return "\n".join(out)


def flower_dump(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(path: str) -> str:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return str(answer.read().decode(errors="replace"))

    wait_for(lambda: _answers(get), 60, "Flower to answer")
    return "\n".join(get(p) for p in ("/api/workers", "/api/tasks", "/api/tasks?limit=1000"))


def _answers(get: Any) -> bool:
    try:
        get("/api/workers")
        return True
    except OSError:
        return False


def error_texts(emulator: EmulatorServer) -> str:
    """Errors a wrong or missing key provokes, as text, repr and traceback."""
    wrong = f"sk-ant-SECRET-{uuid.uuid4()}"
    texts = []
    for key in (KEY + "-typo", wrong):
        api = AnthropicBatchApi(key, emulator.base_url, create_timeout=5, max_retries=0)
        try:
            with pytest.raises(CreateRefused) as refused:
                api.create([b'{"requests": []}'])
            texts.append(_all_text(refused.value))
            with pytest.raises(anthropic.AuthenticationError) as denied:
                api.retrieve("msgbatch_nope")
            texts.append(_all_text(denied.value))
        finally:
            api.close()
        assert key not in "\n".join(texts)
    texts.append(repr(Settings(api_key=KEY)))
    texts.append(str(Settings.from_env({"ANTHROPIC_API_KEY": KEY})))
    return "\n".join(texts)


def _all_text(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])
