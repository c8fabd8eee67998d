"""The Message Batches operations, independent of HTTP.

Each operation first records the end of any batch whose time has come
(`settle`), so every answer reflects the emulated "now".
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from . import lifecycle
from .clock import EmulatedClock
from .errors import ApiError, invalid_request, not_found
from .faults import FaultState
from .ids import batch_id as new_batch_id
from .ids import derived_id
from .messages import MessagesApi
from .outcomes import Planner
from .prompts import cache_prefix, mentions_cache, read_prompt
from .replies import build_message, params_digest
from .store import BatchRow, RequestInsert, RequestRow, Store
from .validation import NON_BETA, Surface, parse_create_body

MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 20


@dataclass(frozen=True)
class Page:
    data: list[dict[str, object]]
    has_more: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "data": self.data,
            "has_more": self.has_more,
            "first_id": self.data[0]["id"] if self.data else None,
            "last_id": self.data[-1]["id"] if self.data else None,
        }


class BatchService:
    def __init__(
        self,
        store: Store,
        clock: EmulatedClock,
        faults: FaultState,
        processing_seconds: float,
        max_queued_requests: int | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults
        self.processing_seconds = processing_seconds
        self.max_queued_requests = max_queued_requests
        self.messages = MessagesApi(store, clock)
        # Checking the queue and inserting must be one step, or two creates
        # on two connections could both fit under the limit and both land.
        self._create_lock = threading.Lock()

    # -- operations -------------------------------------------------------

    def create(self, body: bytes | bytearray, surface: Surface = NON_BETA) -> BatchRow:
        pairs = parse_create_body(body)
        with self._create_lock:
            now = self.clock.now()
            self.settle_due(now)  # ended batches' cache writes must be visible to this one
            self._check_queue(len(pairs), now)
            return self._insert(pairs, surface, now)

    def _check_queue(self, adding: int, now: float) -> None:
        """The API's rate limit on requests waiting in batches: a 429 over it."""
        limit = self.max_queued_requests
        if limit is None:
            return
        waiting = self.store.unended()
        queued = sum(row.request_count for row in waiting if row.deleted_at is None)
        if queued + adding <= limit:
            return
        ends = [lifecycle.ending(row).at for row in waiting]
        wait = max(1, math.ceil(min(ends, default=now + 60) - now))
        raise ApiError(
            "rate_limit_error",
            f"Number of batch requests in the processing queue would exceed your "
            f"organization's rate limit: {queued:,} waiting + {adding:,} new > {limit:,}",
            headers={"retry-after": str(wait)},
        )

    def _insert(
        self, pairs: list[tuple[str, dict[str, Any]]], surface: Surface, now: float
    ) -> BatchRow:
        config = self.faults.config
        processing = config.processing_seconds
        if processing is None:
            processing = self.processing_seconds
        new_id = new_batch_id()
        planner = Planner(
            config,
            batch_id=new_id,
            created_at=now,
            processing_seconds=processing,
            surface=surface,
        )
        live_keys = self.store.live_cache_keys(now)
        stuck: list[bool] = []
        rows = (self._request_row(planner, c, p, live_keys, stuck) for c, p in pairs)
        row = BatchRow(
            seq=0,
            id=new_id,
            created_at=now,
            expires_at=now + lifecycle.EXPIRY_SECONDS,
            natural_end_at=now + processing,
            cancel_initiated_at=None,
            ended_at=None,
            end_reason=None,
            request_count=len(pairs),
            succeeded=0,
            errored=0,
            canceled=0,
            expired=0,
            deleted_at=None,
            response_lost=False,
        )
        return self.store.insert_batch(row, rows, lambda: None if stuck else now + processing)

    def retrieve(self, batch_id: str) -> BatchRow:
        row = self._live(batch_id)
        return self._settled(row)

    def list_page(self, query: dict[str, list[str]], base_url: str) -> Page:
        limit = _limit(query)
        after_id, before_id = _one(query, "after_id"), _one(query, "before_id")
        if after_id and before_id:
            raise invalid_request("after_id and before_id cannot both be given")
        now = self.clock.now()
        self.settle_due(now)
        after_seq = self._cursor(after_id) if after_id else None
        before_seq = self._cursor(before_id) if before_id else None
        rows = self.store.page(limit, after_seq=after_seq, before_seq=before_seq)
        has_more = len(rows) > limit
        rows = rows[:limit]
        if before_seq is not None:
            rows.reverse()
        return Page([self.render(r, base_url, now) for r in rows], has_more)

    def cancel(self, batch_id: str) -> BatchRow:
        row = self.retrieve(batch_id)
        if row.ended_at is not None:
            raise invalid_request(f"Batch {batch_id} has already ended and cannot be canceled")
        self.store.cancel(row.seq, self.clock.now())
        return self.retrieve(batch_id)

    def delete(self, batch_id: str) -> dict[str, object]:
        row = self.retrieve(batch_id)
        if row.ended_at is None:
            raise invalid_request(
                f"Batch {batch_id} cannot be deleted while it is {lifecycle.status(row)}; "
                "cancel it and wait for it to end first"
            )
        self.store.delete(row, self.clock.now())
        return {"id": row.id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> Iterator[bytes]:
        """The batch's JSONL lines (each ending in a newline), generated as read."""
        row = self.retrieve(batch_id)
        if row.ended_at is None:
            raise invalid_request(f"Batch {batch_id} is still processing; results are not ready")
        if lifecycle.archived_at(row, self.clock.now()) is not None:
            raise not_found(f"The results of batch {batch_id} are no longer available (archived)")
        cutoff, cut_outcome = lifecycle.cutoff_of(row)
        return (_result_line(row.id, r, cutoff, cut_outcome) for r in self.store.requests(row))

    def records(self, *, with_custom_ids: bool) -> dict[str, object]:
        self.settle_due(self.clock.now())
        batches = []
        for row in self.store.all_batches():
            record = lifecycle.render_record(row)
            if with_custom_ids:
                record["custom_ids"] = self.store.custom_ids(row.seq)
            batches.append(record)
        return {
            "batches": batches,
            "creates": len(batches),
            "lost_create_responses": self.faults.lost_create_total,
            "messages": self.messages.ledger(),
        }

    def render(self, row: BatchRow, base_url: str, now: float | None = None) -> dict[str, object]:
        now = self.clock.now() if now is None else now
        return lifecycle.render(row, now=now, base_url=base_url)

    # -- helpers ----------------------------------------------------------

    def settle_due(self, now: float) -> None:
        for row in self.store.unended():
            if lifecycle.is_due(row, now):
                self._settle(row)

    def _settled(self, row: BatchRow) -> BatchRow:
        if not lifecycle.is_due(row, self.clock.now()):
            return row
        self._settle(row)
        settled = self.store.get(row.id)
        assert settled is not None
        return settled

    def _settle(self, row: BatchRow) -> None:
        end = lifecycle.ending(row)
        self.store.settle(row.seq, ended_at=end.at, reason=end.reason, cutoff=end.cutoff)

    def _live(self, batch_id: str) -> BatchRow:
        row = self.store.get(batch_id)
        if row is None or row.deleted_at is not None:
            raise not_found(f"No message batch with id {batch_id!r}")
        return row

    def _cursor(self, batch_id: str) -> int:
        row = self.store.get(batch_id)
        if row is None:
            raise invalid_request(f"Invalid pagination cursor: no message batch {batch_id!r}")
        return row.seq

    @staticmethod
    def _request_row(
        planner: Planner,
        custom_id: str,
        params: dict[str, Any],
        live_keys: set[bytes],
        stuck: list[bool],
    ) -> RequestInsert:
        raw = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
        plan = planner.plan(custom_id, params, raw)
        if plan.done_at is None and not stuck:
            stuck.append(True)
        key, ttl, hit = None, None, 0
        if plan.outcome == "succeeded" and mentions_cache(raw):
            prefix = cache_prefix(params)
            if prefix is not None:
                key, ttl, hit = prefix.key, prefix.ttl_seconds, int(prefix.key in live_keys)
        return (
            custom_id,
            raw,
            plan.outcome,
            plan.error_type,
            plan.error_message,
            plan.done_at,
            plan.long_chars,
            key,
            ttl,
            hit,
        )


def _limit(query: dict[str, list[str]]) -> int:
    raw = _one(query, "limit")
    if raw is None:
        return DEFAULT_LIST_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise invalid_request("limit: Input should be a valid integer") from None
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid_request(f"limit: Input should be between 1 and {MAX_LIST_LIMIT}")
    return limit


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _result_line(batch_id: str, req: RequestRow, cutoff: float, cut_outcome: str) -> bytes:
    result: dict[str, Any]
    if req.done_at is None or req.done_at > cutoff:
        result = {"type": cut_outcome}
    elif req.outcome == "errored":
        error = {"type": req.error_type, "message": req.error_message}
        request_id = derived_id("req", batch_id.encode(), req.custom_id.encode())
        result = {
            "type": "errored",
            "error": {"type": "error", "error": error, "request_id": request_id},
        }
    elif req.outcome == "expired":
        result = {"type": "expired"}
    else:
        result = {"type": "succeeded", "message": _message(batch_id, req)}
    return orjson.dumps({"custom_id": req.custom_id, "result": result}) + b"\n"


def _message(batch_id: str, req: RequestRow) -> dict[str, Any]:
    digest = params_digest(req.params)
    params = orjson.loads(req.params)
    return build_message(
        read_prompt(params),
        params=params,
        digest=digest,
        message_id=derived_id("msg", batch_id.encode(), req.custom_id.encode(), digest),
        long_chars=req.long_chars,
        cache_hit=req.cache_hit,
    )
