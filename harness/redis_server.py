"""A private `redis-server` with its append-only file on, that a test may kill.

server = PrivateRedis(tmp_path / "redis").start()
server.kill()      # SIGKILL: no shutdown, no final save
server.start()     # same port, same dir: reloads from the AOF
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from batchline.adapters.redis_health import redis_answers
from batchline.local import free_port


class PrivateRedis:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        # A port picked here may be taken by another process before redis-server
        # binds it (tests run in parallel): the first start may then pick again.
        self._may_repick = port is None
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> PrivateRedis:
        for _ in range(2):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                (self.data_dir / "redis.log").unlink()
        return self._start(timeout)

    def _start(self, timeout: float) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.data_dir), "--appendonly", "yes", "--save", ""]
        args += ["--maxmemory-policy", "noeviction", "--logfile", "redis.log"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None and self._may_repick and self._port_in_use():
                self.proc = None
                raise PortTaken(self.port)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private redis-server did not start on port {self.port}")
            time.sleep(0.1)
        self._may_repick = False  # a restart after a kill keeps its port and its AOF
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.kills += 1
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def _answers(self) -> bool:
        return redis_answers(self.url)

    def _port_in_use(self) -> bool:
        log = self.data_dir / "redis.log"
        return log.exists() and "Address already in use" in log.read_text(errors="replace")


class PortTaken(RuntimeError):
    """Another process took the port picked for a private redis-server first."""
