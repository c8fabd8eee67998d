"""The one-command local service: embedded defaults for `batchline run` and `demo`.

- Database: BATCHLINE_DATABASE_URL, else a SQLite file under .batchline/,
  migrated on start.
- Redis: BATCHLINE_REDIS_URL when it is set (and it must answer: a silent
  fallback would run the service on a Redis the application does not enqueue
  to), else a private `redis-server` (from PATH) with its append-only file on.
- API: the emulator when `offline` (the demo's default) or no key is set,
  else the real one.
- Worker and beat: one `celery worker -B` child process on batchline's queue.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from batchline.adapters.redis_health import redis_answers
from batchline.database import upgrade
from batchline.settings import DEFAULT_DATA_DIR, Settings, redact

Say = Callable[[str], None]


class LocalStartError(RuntimeError):
    """The local service could not start; the message says what to install or fix."""


@dataclass(frozen=True)
class LocalService:
    settings: Settings
    worker: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for servers started here)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(data_dir: Path, say: Say) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise LocalStartError(
            "no Redis answers at BATCHLINE_REDIS_URL and redis-server is not on PATH: "
            "install it (apt-get install redis-server) or set BATCHLINE_REDIS_URL"
        )
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LocalStartError(f"private redis-server did not start ({binary})")
            time.sleep(0.1)
        say(f"started a private redis-server on port {port} (append-only file in {data_dir})")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def local_service(
    settings: Settings,
    say: Say,
    *,
    processing_seconds: float = 2.0,
    concurrency: int = 2,
    offline: bool = False,
) -> Iterator[LocalService]:
    """Start everything the service needs; stop all of it on exit."""
    data_dir = DEFAULT_DATA_DIR
    with ExitStack() as stack:
        if settings.configured("redis_url"):
            if not redis_answers(settings.redis_url):
                raise LocalStartError(
                    f"Redis at BATCHLINE_REDIS_URL ({redact(settings.redis_url)}) does not "
                    "answer: start it, or unset BATCHLINE_REDIS_URL to use a private redis-server"
                )
            say(f"Redis: {redact(settings.redis_url)} (BATCHLINE_REDIS_URL)")
        else:
            url = stack.enter_context(private_redis(data_dir / "redis", say))
            settings = settings.replace(redis_url=url)
            say(f"Redis: {url} (private redis-server; set BATCHLINE_REDIS_URL to use yours)")
        _migrate(settings, say)
        if offline or settings.api_key is None:
            from batchline.emulator import EmulatorServer

            emulator = stack.enter_context(EmulatorServer(processing_seconds=processing_seconds))
            settings = settings.replace(api_key="emulator-key", base_url=emulator.base_url)
            why = "offline demo" if offline else "ANTHROPIC_API_KEY is not set"
            say(f"API: using the emulator at {emulator.base_url} ({why}; nothing is billed)")
        else:
            from batchline.adapters.anthropic_api import DEFAULT_BASE_URL

            say(f"API: {settings.base_url or DEFAULT_BASE_URL} (ANTHROPIC_API_KEY; billed)")
        log_path = data_dir / "worker.log"
        worker = stack.enter_context(_worker_and_beat(settings, log_path, concurrency))
        say(f"worker and beat started (pid {worker.pid}); log: {log_path}")
        yield LocalService(settings, worker, log_path)


@contextmanager
def _worker_and_beat(
    settings: Settings, log_path: Path, concurrency: int
) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    schedule = log_path.parent / "beat-schedule"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "batchline",
        "worker",
        "-B",
        "-s",
        str(schedule),
        "-Q",
        settings.celery_queue,
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args,
            env=child_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop(proc)


def _migrate(settings: Settings, say: Say) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    where = "BATCHLINE_DATABASE_URL" if settings.configured("database_url") else "embedded SQLite"
    try:
        upgrade(settings.database_url)
    except SQLAlchemyError as exc:
        raise LocalStartError(
            f"database at {redact(settings.database_url)} ({where}) does not answer "
            f"({type(exc).__name__}): start it or fix BATCHLINE_DATABASE_URL"
        ) from None
    say(f"database: {redact(settings.database_url)} ({where}, migrated to head)")


def child_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: every setting in force (the whole Settings, as
    variables), the key passed only here; no stale BATCHLINE_/ANTHROPIC_ variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BATCHLINE_") and k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")
    }
    env.update(settings.to_env())
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
