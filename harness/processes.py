"""Real batchline processes for acceptance and fault tests: celery worker and beat.

Each process gets its environment explicitly (database, Redis, emulator), logs
to a file the test can read, and is always stopped: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
CELERY = [str(BIN / "celery"), "-A", "batchline"]


def service_env(database_url: str, redis_url: str, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))}
    env.update(
        BATCHLINE_DATABASE_URL=database_url,
        BATCHLINE_REDIS_URL=redis_url,
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY="sk-ant-test-acceptance",
        BATCHLINE_MAX_WAIT_SECONDS="1",
        BATCHLINE_POLL_INTERVAL_SECONDS="1",
        BATCHLINE_INTAKE_INTERVAL_SECONDS="0.5",
        BATCHLINE_RECONCILE_INTERVAL_SECONDS="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class ServiceProcesses:
    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cwd: Path | None = None

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def worker(
        self, name: str = "worker", concurrency: int = 2, loglevel: str = "INFO"
    ) -> subprocess.Popen[bytes]:
        return self.start(
            name,
            [
                *CELERY,
                "worker",
                # Only batchline's own queue, as the README's worker command.
                "-Q",
                self.env.get("BATCHLINE_CELERY_QUEUE", "batchline"),
                f"--loglevel={loglevel}",
                f"--concurrency={concurrency}",
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
        )

    def beat(self, name: str = "beat", loglevel: str = "INFO") -> subprocess.Popen[bytes]:
        schedule = self.log_dir / f"{name}-schedule"
        return self.start(name, [*CELERY, "beat", f"--loglevel={loglevel}", "-s", str(schedule)])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        """SIGTERM to every process at once, then wait for each (SIGKILL after 15 s):
        they shut down side by side rather than one after another (a warm Celery
        shutdown takes seconds, and a test's teardown paid them in turn)."""
        procs = [p for p in (self.procs.pop(n) for n in list(self.procs)) if p.poll() is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
