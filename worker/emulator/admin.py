"""A small typed client for the emulator's admin endpoints (`/_emulator/...`).

Usable from tests and from other processes (a chaos test driving a worker
fleet): faults, the emulated clock, and the emulator's own records of every
batch ever created.
"""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .faults import FaultConfig


@dataclass(frozen=True)
class BatchRecord:
    id: str
    request_count: int
    processing_status: str
    end_reason: str | None
    created_at: str
    ended_at: str | None
    cancel_initiated_at: str | None
    deleted: bool
    response_lost: bool
    request_counts: Mapping[str, int]
    custom_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Records:
    """Every batch the emulator ever created (deleted ones included), oldest first."""

    batches: tuple[BatchRecord, ...]
    creates: int
    lost_create_responses: int
    # The synchronous Messages API's ledger: id, model, stream, price_multiplier
    # (1.0: full price), usage; oldest first.
    messages: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Records:
        batches = []
        for raw in data["batches"]:
            values = dict(raw)
            if values.get("custom_ids") is not None:
                values["custom_ids"] = tuple(values["custom_ids"])
            batches.append(BatchRecord(**values))
        return cls(
            tuple(batches),
            int(data["creates"]),
            int(data["lost_create_responses"]),
            tuple(data.get("messages", ())),
        )


@dataclass(frozen=True)
class ClockInfo:
    now: str
    now_epoch: float
    speed: float
    offset_seconds: float


class AdminError(RuntimeError):
    """The emulator refused an admin call; the message is its explanation."""


class EmulatorAdmin:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        # Loopback admin calls must not go through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get_faults(self) -> FaultConfig:
        return FaultConfig.from_dict(self._call("GET", "/_emulator/faults"))

    def set_faults(self, faults: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the live faults: `faults` (default: none), with `changes` applied."""
        config = dataclasses.replace(faults or FaultConfig(), **changes)
        return FaultConfig.from_dict(self._call("PUT", "/_emulator/faults", config.to_dict()))

    def update_faults(self, **changes: Any) -> FaultConfig:
        """Change some fault settings, keeping the others as they are live."""
        return self.set_faults(self.get_faults(), **changes)

    def clear_faults(self) -> FaultConfig:
        return self.set_faults(FaultConfig())

    def advance_clock(self, seconds: float) -> ClockInfo:
        return ClockInfo(**self._call("POST", "/_emulator/clock", {"advance_seconds": seconds}))

    def set_clock_speed(self, speed: float) -> ClockInfo:
        return ClockInfo(**self._call("POST", "/_emulator/clock", {"speed": speed}))

    def clock(self) -> ClockInfo:
        return ClockInfo(**self._call("GET", "/_emulator/clock"))

    def records(self, *, custom_ids: bool = False) -> Records:
        path = "/_emulator/records" + ("?custom_ids=true" if custom_ids else "")
        return Records.from_dict(self._call("GET", path))

    def health(self) -> bool:
        return bool(self._call("GET", "/_emulator/health").get("ok"))

    def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                answer = orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                detail = orjson.loads(exc.read() or b"{}").get("error", {}).get("message")
            raise AdminError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        if not isinstance(answer, dict):
            raise AdminError(f"{method} {path}: unexpected answer {answer!r}")
        return answer
