"""The built wheel, installed into a fresh virtualenv, inside an application
that has its own `models.py`, `worker.py` (its Celery app) and `migrations/`:
the application enqueues through `batchline`, `celery -A batchline` worker and
beat complete the request against the emulator, and the application's own
Celery worker on the same broker receives only its own tasks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchline.emulator import EmulatorServer
from harness.processes import ServiceProcesses, wait_for
from harness.redis_server import PrivateRedis

pytestmark = [pytest.mark.acceptance, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]

APP_MODELS = """
    # The application's own models module: batchline must never import this one.
    class Batch:
        owner = "the application"
"""
APP_WORKER = """
    # The application's own Celery app, named `worker` as many are.
    import os

    import redis
    from celery import Celery

    app = Celery("myapp", broker=os.environ["APP_BROKER"])
    app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


    @app.task(name="myapp.record")
    def record(value):
        redis.Redis.from_url(os.environ["APP_BROKER"]).rpush("myapp:done", value)
"""
APP_ENQUEUE = """
    # What the application does: its own modules loaded, then batchline's API.
    import sys

    import models
    import worker
    import batchline
    from batchline import enqueue

    assert models.Batch.owner == "the application"
    print("batchline from", batchline.__file__, batchline.__version__)
    worker.record.delay("own-task")
    handle = enqueue(
        {"model": "claude-3-5-sonnet-20241022", "max_tokens": 16,
         "messages": [{"role": "user", "content": "hello from the app"}]},
        key="app-1",
    )
    result = handle.result(timeout=120)
    print("result", result.type)
    sys.exit(0 if result.type == "succeeded" else 1)
"""


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("worker", "models", "migrations"):
        shutil.copytree(
            REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(dist.glob("batchline-*.whl"))


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, "--no-index", str(wheel)], check=True, timeout=300)
    # The dependencies come from this test run's environment (nothing is downloaded).
    # Its site-packages is added as a plain path, so its .pth files (the editable
    # batchline among them) are not processed: only the wheel's batchline exists.
    fresh_site = next((venv / "lib").glob("python3*/site-packages"))
    (fresh_site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _write_app(folder: Path) -> None:
    (folder / "migrations" / "versions").mkdir(parents=True)
    (folder / "migrations" / "env.py").write_text("# the application's own alembic env\n")
    (folder / "models.py").write_text(textwrap.dedent(APP_MODELS))
    (folder / "worker.py").write_text(textwrap.dedent(APP_WORKER))
    (folder / "enqueue_it.py").write_text(textwrap.dedent(APP_ENQUEUE))


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    # A private Redis: on the shared one, another process's Celery (the bench's
    # default database, say) could put tasks on the `celery` queue this test watches.
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


def test_wheel__installed_beside_an_application_completes_a_request_and_shares_the_broker(
    tmp_path: Path,
    redis_url: str,
    emulator_factory: Callable[..., EmulatorServer],
) -> None:
    venv = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    installed = next((venv / "lib").glob("python3*/site-packages"))
    assert (installed / "batchline" / "py.typed").exists()  # type checkers read our hints
    top_level = {p.name for p in installed.iterdir() if not p.name.endswith((".pth", "-info"))}
    assert top_level - {"pip", "_distutils_hack", "setuptools", "pkg_resources"} == {"batchline"}
    app = tmp_path / "app"
    _write_app(app)
    emulator = emulator_factory(processing_seconds=1.0)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BATCHLINE_", "ANTHROPIC_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
        BATCHLINE_DATABASE_URL=f"sqlite:///{app / 'batchline.sqlite3'}",
        BATCHLINE_REDIS_URL=redis_url,
        BATCHLINE_MAX_WAIT_SECONDS="1",
        BATCHLINE_POLL_INTERVAL_SECONDS="1",
        BATCHLINE_INTAKE_INTERVAL_SECONDS="0.5",
        ANTHROPIC_BASE_URL=emulator.base_url,
        ANTHROPIC_API_KEY="sk-ant-wheel-test",
        APP_BROKER=redis_url,
        PYTHONUNBUFFERED="1",
    )
    bin_ = venv / "bin"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=app, env=env, capture_output=True, text=True, timeout=180
        )

    upgraded = run(str(bin_ / "batchline"), "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]

    procs = ServiceProcesses(env, tmp_path, cwd=app)  # the application's folder
    # The dependencies' own scripts are not in the fresh venv: `python -m celery`.
    celery = [str(bin_ / "python"), "-m", "celery"]
    for name, args in {
        "bl-worker": ["-A", "batchline", "worker", "-Q", "batchline", "--concurrency=1"],
        "bl-beat": ["-A", "batchline", "beat", "-s", str(tmp_path / "beat-schedule")],
        "app-worker": ["-A", "worker", "worker", "--concurrency=1"],
    }.items():
        extra = ["-n", f"{name}@%h", "--without-mingle", "--without-gossip"]
        procs.start(name, [*celery, *args, *(extra if "worker" in args else []), "-l", "INFO"])
    try:
        done = subprocess.run(
            [str(bin_ / "python"), "enqueue_it.py"],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr[-3000:] + procs.log("bl-worker")
        assert f"batchline from {venv}" in done.stdout
        assert "result succeeded" in done.stdout

        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            wait_for(lambda: client.llen("myapp:done") == 1, 30, "the application's own task")
        finally:
            client.close()
    finally:
        procs.stop_all()
    app_log, bl_log = procs.log("app-worker"), procs.log("bl-worker")
    assert "batchline." not in app_log and "unregistered" not in app_log.lower(), app_log
    assert "myapp.record" not in bl_log and "unregistered" not in bl_log.lower(), bl_log
