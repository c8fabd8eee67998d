"""Running the compose file's commands here: bounded waits, every process stopped.

Each process is started in its own session, so stopping it also reaches the
children it forked (Celery's prefork pool), and nothing outlives a test.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

VENV_BIN = str(Path(sys.executable).parent)
# Variables the test machine may have that would change what the commands do.
_DROPPED_PREFIXES = ("BATCHLINE_", "ANTHROPIC_", "FLOWER_", "CELERY_", "REDISCLI_", "PG")
# Nothing listens on the discard port: no command here can reach a real API.
NO_API = {
    "ANTHROPIC_API_KEY": "deploy-test-not-a-real-key",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
}


def process_env(*layers: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    env["PATH"] = os.pathsep.join([VENV_BIN, env.get("PATH", "")])
    for layer in layers:
        env.update(layer)
    return env


class Running:
    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited ({self.proc.returncode}) before {what}:\n{self.log()}"
                )
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout}s:\n{self.log()[-4000:]}")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        self.wait_until(f"{text!r} in the log", lambda: text in self.log(), timeout)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as `docker compose stop` sends; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout}s after SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@contextmanager
def running(argv: list[str], env: Mapping[str, str], cwd: Path) -> Iterator[Running]:
    log_path = cwd / f"{Path(argv[0]).name}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process = Running(proc, log_path)
        try:
            yield process
        finally:
            process.kill()


def run(
    argv: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def http_get(url: str, auth: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read()
