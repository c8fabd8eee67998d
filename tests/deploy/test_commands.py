"""Every command docker-compose.yml runs exists here and starts, against the local services.

Each test takes a service's `command` and its health check from the compose
file, gives it the environment compose would (env file + `environment`), with
only the addresses changed for this machine: PostgreSQL a throwaway database,
Redis database 9, listening ports free ones on loopback, the API nowhere.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, inspect

from batchline.http_api.auth import token_digest
from batchline.keys import RedisKeys
from batchline.local import free_port
from tests.deploy import compose_file
from tests.deploy.conftest import PG_ADMIN_URL
from tests.deploy.processes import NO_API, http_get, process_env, run, running

pytestmark = pytest.mark.integration

# The services each test below starts; a new service must get a test here.
COVERED = {
    "redis",
    "postgres",
    "migrate",
    "worker",
    "beat",
    "flower",
    "emulator",
    "intake",
    "dashboard",
}


def local_env(
    service: Mapping[str, Any], dotenv: Mapping[str, str], **addresses: str
) -> dict[str, str]:
    """The service's container environment, pointed at this machine's services."""
    env = compose_file.container_env(service, dotenv)
    if "ANTHROPIC_API_KEY" in env:
        env |= NO_API
    overrides = {
        "BATCHLINE_DATABASE_URL": addresses.get("database_url"),
        "BATCHLINE_REDIS_URL": addresses.get("redis_url"),
    }
    for name, value in overrides.items():
        if name in env:
            assert value is not None, f"this test must give {name}"
            env[name] = value
    return process_env(env)


def command(service: Mapping[str, Any], *extra: str) -> list[str]:
    argv = [str(arg) for arg in service["command"]]
    assert shutil.which(argv[0], path=process_env()["PATH"]), f"{argv[0]} is not installed"
    return [*argv, *extra]


def healthcheck(service: Mapping[str, Any], replace: Mapping[str, str] | None = None) -> list[str]:
    argv = compose_file.healthcheck_argv(service)
    for old, new in (replace or {}).items():
        assert any(old in arg for arg in argv), f"{old!r} not in the health check {argv}"
        argv = [arg.replace(old, new) for arg in argv]
    return argv


def test_commands__every_service_is_covered(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == COVERED


def test_redis__command_runs_durable_and_password_protected(
    services: dict[str, dict[str, Any]], dotenv: dict[str, str], tmp_path: Path
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed here")
    redis_service, port = services["redis"], free_port()
    env = process_env(compose_file.container_env(redis_service, dotenv))
    argv = [*redis_service["command"], "--port", str(port), "--bind", "127.0.0.1"]
    check = healthcheck(redis_service, {"-p 6379": f"-p {port}"})
    with running(argv, env, tmp_path) as server:
        server.wait_for_log("Ready to accept connections")
        assert run(check, env, tmp_path).returncode == 0
        anonymous = {k: v for k, v in env.items() if k != "REDISCLI_AUTH"}
        assert run(check, anonymous, tmp_path).returncode != 0
        client = redis.Redis(port=port, password=_requirepass(redis_service))
        try:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        finally:
            client.close()
        assert server.stop() == 0
    assert (tmp_path / "appendonlydir").is_dir() or (tmp_path / "appendonly.aof").exists()


def _requirepass(service: Mapping[str, Any]) -> str:
    argv = service["command"]
    return str(argv[argv.index("--requirepass") + 1])


def test_postgres__healthcheck_runs(
    services: dict[str, dict[str, Any]], dotenv: dict[str, str], tmp_path: Path
) -> None:
    if shutil.which("pg_isready") is None:
        pytest.skip("pg_isready is not installed here")
    from sqlalchemy.engine import make_url

    port = str(make_url(PG_ADMIN_URL).port or 5432)
    env = process_env(compose_file.container_env(services["postgres"], dotenv), {"PGPORT": port})
    result = run(healthcheck(services["postgres"]), env, tmp_path, timeout=15)
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrate__command_upgrades_an_empty_database_and_is_rerunnable(
    services: dict[str, dict[str, Any]], dotenv: dict[str, str], fresh_database: str, tmp_path: Path
) -> None:
    migrate = services["migrate"]
    env = local_env(migrate, dotenv, database_url=fresh_database, redis_url="redis://unused")
    for _ in range(2):  # `docker compose up` runs it again on every start
        result = run(command(migrate), env, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    engine = create_engine(fresh_database)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "alembic_version" in tables
    assert len(tables) > 1


def test_worker__command_starts_answers_its_healthcheck_and_stops_on_sigterm(
    services: dict[str, dict[str, Any]],
    dotenv: dict[str, str],
    fresh_database: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    worker, node = services["worker"], f"deploytest-{uuid.uuid4().hex[:8]}"
    env = local_env(worker, dotenv, database_url=fresh_database, redis_url=redis_url)
    # In a container the node name is celery@<container hostname> = celery@$HOSTNAME.
    env["HOSTNAME"] = node
    with running(command(worker, f"--hostname=celery@{node}"), env, tmp_path) as proc:
        proc.wait_for_log(f"celery@{node} ready.")
        check = run(healthcheck(worker), env, tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "pong" in check.stdout
        assert proc.stop() == 0
    # ...and fails when that worker is gone.
    gone = run(healthcheck(worker, {"--timeout 10": "--timeout 1"}), env, tmp_path)
    assert gone.returncode != 0


def test_beat__command_takes_the_lock_and_releases_it_on_sigterm(
    services: dict[str, dict[str, Any]],
    dotenv: dict[str, str],
    fresh_database: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    beat = services["beat"]
    env = local_env(beat, dotenv, database_url=fresh_database, redis_url=redis_url)
    lock = RedisKeys().beat_lock
    client = redis.Redis.from_url(redis_url)
    try:
        with running(command(beat), env, tmp_path) as proc:
            proc.wait_for_log("beat: Starting")
            proc.wait_until("the beat lock", lambda: bool(client.exists(lock)))
            assert proc.stop() == 0
        assert not client.exists(lock)
    finally:
        client.close()


def flower_argv(flower: Mapping[str, Any], port: int) -> list[str]:
    # Later options win: the same command, on a free loopback port.
    return command(flower, "--address=127.0.0.1", f"--port={port}")


def test_flower__command_serves_its_api_only_with_basic_auth(
    services: dict[str, dict[str, Any]], dotenv: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    flower, port = services["flower"], free_port()
    env = local_env(flower, dotenv, redis_url=redis_url)
    auth = env["FLOWER_BASIC_AUTH"]
    check = healthcheck(flower, {":5555/": f":{port}/"})
    api = f"http://127.0.0.1:{port}/api/workers"
    with running(flower_argv(flower, port), env, tmp_path) as proc:
        proc.wait_until("Flower's health check", lambda: run(check, env, tmp_path).returncode == 0)
        assert http_get(api)[0] == 401
        assert http_get(api, auth=auth.split(":")[0] + ":wrong")[0] == 401
        status, body = http_get(api, auth=auth)
        assert status == 200, body
        assert proc.stop() == 0


def test_flower__lists_batchline_task_names_after_a_run(
    services: dict[str, dict[str, Any]],
    dotenv: dict[str, str],
    fresh_database: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    migrate, worker, flower = services["migrate"], services["worker"], services["flower"]
    worker_env = local_env(worker, dotenv, database_url=fresh_database, redis_url=redis_url)
    assert run(command(migrate), worker_env, tmp_path).returncode == 0
    flower_env, port = local_env(flower, dotenv, redis_url=redis_url), free_port()
    node = f"deploytest-{uuid.uuid4().hex[:8]}"
    with (
        running(command(worker, f"--hostname=celery@{node}"), worker_env, tmp_path) as w,
        running(flower_argv(flower, port), flower_env, tmp_path) as f,
    ):
        w.wait_for_log(f"celery@{node} ready.")
        tasks_url = f"http://127.0.0.1:{port}/api/tasks"
        f.wait_until(
            "Flower's API", lambda: http_get(tasks_url, flower_env["FLOWER_BASIC_AUTH"])[0] == 200
        )
        sweep = _run_sweep_until_flower_lists_it(tasks_url, flower_env, worker_env, tmp_path)
        assert sweep["state"] == "SUCCESS", sweep


def _run_sweep_until_flower_lists_it(
    tasks_url: str, flower_env: Mapping[str, str], env: Mapping[str, str], cwd: Path
) -> dict[str, Any]:
    # Flower subscribes to events a moment after its HTTP server is up, so a
    # task sent too early may go unseen: send again, a bounded number of times.
    call = ["celery", "-A", "batchline", "call", "batchline.sweep"]
    for _ in range(3):
        sent = run(call, env, cwd)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        task_id = sent.stdout.strip()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            status, body = http_get(tasks_url, flower_env["FLOWER_BASIC_AUTH"])
            task = json.loads(body).get(task_id) if status == 200 else None
            if (
                task
                and task.get("name") == "batchline.sweep"
                and task.get("state")
                in {
                    "SUCCESS",
                    "FAILURE",
                }
            ):
                return dict(task)
            time.sleep(0.3)
    raise AssertionError(f"Flower never listed batchline.sweep at {tasks_url}")


def test_emulator__command_starts_answers_its_healthcheck_and_stops(
    services: dict[str, dict[str, Any]], dotenv: dict[str, str], tmp_path: Path
) -> None:
    emulator, port = services["emulator"], free_port()
    env = local_env(emulator, dotenv)
    data_dir = tmp_path / "emulator-data"
    argv = command(
        emulator, "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)
    )
    check = healthcheck(emulator, {":8765/": f":{port}/"})
    with running(argv, env, tmp_path) as proc:
        proc.wait_until(
            "the emulator's health check", lambda: run(check, env, tmp_path).returncode == 0
        )
        status, _ = http_get(f"http://127.0.0.1:{port}/v1/messages/batches")
        assert status == 401  # the API itself wants a key
        assert proc.stop() == 0


def test_intake__command_serves_with_a_token_answers_its_healthcheck_and_stops(
    services: dict[str, dict[str, Any]],
    dotenv: dict[str, str],
    fresh_database: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    migrate, intake, port = services["migrate"], services["intake"], free_port()
    env = local_env(intake, dotenv, database_url=fresh_database, redis_url=redis_url)
    assert run(command(migrate), env, tmp_path).returncode == 0
    env["BATCHLINE_HTTP_TOKENS"] = token_digest("deploy-test-token")
    argv = [arg.replace("0.0.0.0:8080", f"127.0.0.1:{port}") for arg in command(intake)]
    check = healthcheck(intake, {":8080/": f":{port}/"})
    with running(argv, env, tmp_path) as proc:
        proc.wait_until(
            "the intake's health check", lambda: run(check, env, tmp_path).returncode == 0
        )
        assert http_get(f"http://127.0.0.1:{port}/v1/batches")[0] == 401
        assert proc.stop() == 0


def test_dashboard__command_serves_behind_its_login_answers_its_healthcheck_and_stops(
    services: dict[str, dict[str, Any]],
    dotenv: dict[str, str],
    fresh_database: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    migrate, dashboard, port = services["migrate"], services["dashboard"], free_port()
    assert (
        run(
            command(migrate),
            local_env(migrate, dotenv, database_url=fresh_database, redis_url=redis_url),
            tmp_path,
        ).returncode
        == 0
    )
    env = local_env(dashboard, dotenv, database_url=fresh_database, redis_url=redis_url)
    argv = [
        arg.replace("0.0.0.0", "127.0.0.1").replace("8710", str(port)) for arg in command(dashboard)
    ]
    check = healthcheck(dashboard, {":8710/": f":{port}/"})
    with running(argv, env, tmp_path) as proc:
        proc.wait_until(
            "the dashboard's health check", lambda: run(check, env, tmp_path).returncode == 0
        )
        assert http_get(f"http://127.0.0.1:{port}/")[0] == 401  # the login is asked for
        assert proc.stop() == 0
