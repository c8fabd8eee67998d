"""An in-memory Batch API port, for unit tests of the services.

It keeps batches as the API does (counts all `processing` until the end),
answers every request `succeeded` unless told otherwise, and can lose a
create's answer after making the batch, the case the reconciler exists for.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import orjson

from batchline.adapters.batch_api import (
    CreateNotAccepted,
    CreateOutcomeUnknown,
    CreateRefused,
    RemoteBatch,
)

# (custom_id, params) -> the `result` object of the line.
Responder = Callable[[str, dict[str, object]], dict[str, object]]


def succeed(custom_id: str, params: dict[str, object]) -> dict[str, object]:
    return {
        "type": "succeeded",
        "message": {
            "id": f"msg_{custom_id[-12:]}",
            "type": "message",
            "role": "assistant",
            "model": params.get("model", "unknown"),
            "content": [{"type": "text", "text": f"reply to {custom_id}"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, "service_tier": "batch"},
        },
    }


@dataclass
class _Stored:
    batch: RemoteBatch
    requests: list[tuple[str, dict[str, object]]]


@dataclass
class MemoryBatchApi:
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    respond: Responder = succeed
    lose_next_creates: int = 0
    refuse_next_creates: list[Exception] = field(default_factory=list)
    batches: dict[str, _Stored] = field(default_factory=dict)
    create_calls: int = 0
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    create_betas: list[list[str]] = field(default_factory=list)

    def create(self, body: Iterable[bytes], betas: Sequence[str] = ()) -> RemoteBatch:
        self.create_calls += 1
        self.create_betas.append(list(betas))
        if self.refuse_next_creates:
            raise self.refuse_next_creates.pop(0)
        doc = orjson.loads(b"".join(body))
        requests = [(r["custom_id"], r["params"]) for r in doc["requests"]]
        now = self.now()
        remote = RemoteBatch(
            id=f"msgbatch_{next(self._ids):06d}",
            processing_status="in_progress",
            processing=len(requests),
            succeeded=0,
            errored=0,
            canceled=0,
            expired=0,
            created_at=now,
            expires_at=now + timedelta(hours=24),
        )
        self.batches[remote.id] = _Stored(remote, requests)
        if self.lose_next_creates:
            self.lose_next_creates -= 1
            raise CreateOutcomeUnknown("answer lost (memory fake)")
        return remote

    def end(self, remote_id: str) -> None:
        stored = self.batches[remote_id]
        kinds = [self.respond(c, p)["type"] for c, p in stored.requests]
        stored.batch = replace(
            stored.batch,
            processing_status="ended",
            processing=0,
            succeeded=kinds.count("succeeded"),
            errored=kinds.count("errored"),
            canceled=kinds.count("canceled"),
            expired=kinds.count("expired"),
            ended_at=self.now(),
            results_url=f"memory://{remote_id}/results",
        )

    def end_all(self) -> None:
        for remote_id, stored in self.batches.items():
            if not stored.batch.ended:
                self.end(remote_id)

    def retrieve(self, remote_id: str) -> RemoteBatch:
        return self.batches[remote_id].batch

    def list_recent(self, created_after: datetime) -> Iterator[RemoteBatch]:
        newest_first = sorted(self.batches.values(), key=lambda s: s.batch.created_at, reverse=True)
        for stored in newest_first:
            if stored.batch.created_at <= created_after:
                return
            yield stored.batch

    def server_time(self) -> datetime | None:
        return self.now()

    def cancel(self, remote_id: str) -> RemoteBatch:
        stored = self.batches[remote_id]
        stored.batch = replace(
            stored.batch, processing_status="canceling", cancel_initiated_at=self.now()
        )
        return stored.batch

    @contextmanager
    def results(self, remote_id: str) -> Iterator[Iterator[bytes]]:
        stored = self.batches[remote_id]
        lines = (
            orjson.dumps({"custom_id": c, "result": self.respond(c, p)}) + b"\n"
            for c, p in stored.requests
        )
        yield iter(lines)


__all__ = ["CreateNotAccepted", "CreateRefused", "MemoryBatchApi", "succeed"]
