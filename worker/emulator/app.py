"""Routing, authentication and fault decisions: a request in, an answer out.

Knows nothing of sockets; `server.py` turns answers into bytes. API routes
need a key (`x-api-key` or `Authorization: Bearer`) and `anthropic-version`;
the admin routes under `/_emulator/` need neither.
"""

from __future__ import annotations

import hmac
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import orjson

from . import sse
from .errors import TYPE_BY_STATUS, ApiError, invalid_request, not_found
from .faults import FaultConfig
from .service import BatchService
from .validation import Surface

_BATCHES = "/v1/messages/batches"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile("/v1/messages"), "messages"),
    ("POST", re.compile("/v1/messages/count_tokens"), "count_tokens"),
    ("POST", re.compile(rf"{_BATCHES}"), "create"),
    ("GET", re.compile(rf"{_BATCHES}"), "list"),
    ("GET", re.compile(rf"{_BATCHES}/(?P<id>[^/]+)"), "retrieve"),
    ("DELETE", re.compile(rf"{_BATCHES}/(?P<id>[^/]+)"), "delete"),
    ("POST", re.compile(rf"{_BATCHES}/(?P<id>[^/]+)/cancel"), "cancel"),
    ("GET", re.compile(rf"{_BATCHES}/(?P<id>[^/]+)/results"), "results"),
)
_RETRY_AFTER_STATUSES = (429, 529)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes | bytearray
    base_url: str


@dataclass(frozen=True)
class JsonAnswer:
    status: int
    body: object
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamAnswer:
    lines: Iterator[bytes]
    faults: FaultConfig
    rng: random.Random


@dataclass(frozen=True)
class EventAnswer:
    """Server-sent events (a streamed message)."""

    events: Iterator[bytes]


@dataclass(frozen=True)
class DropAnswer:
    """Close the connection without answering (a lost response)."""


Answer = JsonAnswer | StreamAnswer | EventAnswer | DropAnswer


class App:
    def __init__(self, service: BatchService, api_key: str | None) -> None:
        self.service = service
        self._api_key = api_key
        self._api: Mapping[str, Callable[[Request, str], Answer]] = {
            "create": self._create,
            "list": self._list,
            "retrieve": self._retrieve,
            "delete": self._delete,
            "cancel": self._cancel,
            "results": self._results,
            "messages": self._message,
            "count_tokens": self._count_tokens,
        }
        self._admin: Mapping[tuple[str, str], Callable[[Request], object]] = {
            ("GET", "/_emulator/health"): lambda _: {"ok": True},
            ("GET", "/_emulator/faults"): lambda _: self.service.faults.config.to_dict(),
            ("PUT", "/_emulator/faults"): self._put_faults,
            ("GET", "/_emulator/clock"): lambda _: self.service.clock.state().to_dict(),
            ("POST", "/_emulator/clock"): self._post_clock,
            ("GET", "/_emulator/records"): self._records,
        }

    def dispatch(self, request: Request) -> Answer:
        admin = self._admin.get((request.method, request.path))
        if admin is not None:
            return JsonAnswer(200, admin(request))
        endpoint, batch_id = _route(request.method, request.path)
        self._authenticate(request.headers)
        if not request.headers.get("anthropic-version"):
            raise invalid_request("anthropic-version: header is required")
        self._inject(endpoint)
        return self._api[endpoint](request, batch_id)

    # -- API --------------------------------------------------------------

    def _create(self, request: Request, _: str) -> Answer:
        row = self.service.create(request.body, _surface(request))
        if self.service.faults.take_lost_create():
            self.service.store.mark_response_lost(row.seq)
            status = self.service.faults.config.lost_create_status
            if status is None:
                return DropAnswer()
            error_type = TYPE_BY_STATUS[status]
            message = f"Emulated {error_type} on create after the batch was made (injected fault)"
            raise ApiError(error_type, message, status=status)
        return JsonAnswer(200, self.service.render(row, request.base_url))

    def _list(self, request: Request, _: str) -> Answer:
        return JsonAnswer(200, self.service.list_page(request.query, request.base_url).to_dict())

    def _retrieve(self, request: Request, batch_id: str) -> Answer:
        return JsonAnswer(
            200, self.service.render(self.service.retrieve(batch_id), request.base_url)
        )

    def _delete(self, _: Request, batch_id: str) -> Answer:
        return JsonAnswer(200, self.service.delete(batch_id))

    def _cancel(self, request: Request, batch_id: str) -> Answer:
        return JsonAnswer(200, self.service.render(self.service.cancel(batch_id), request.base_url))

    def _results(self, _: Request, batch_id: str) -> Answer:
        lines = self.service.results(batch_id)
        faults = self.service.faults
        return StreamAnswer(lines, faults.config, faults.split_sizes())

    def _message(self, request: Request, _: str) -> Answer:
        message, stream = self.service.messages.create(request.body, _surface(request))
        return EventAnswer(sse.events(message)) if stream else JsonAnswer(200, message)

    def _count_tokens(self, request: Request, _: str) -> Answer:
        return JsonAnswer(200, self.service.messages.count_tokens(request.body, _surface(request)))

    def _authenticate(self, headers: Message) -> None:
        offered = [headers.get("x-api-key") or ""]
        authorization = headers.get("authorization") or ""
        if authorization[:7].lower() == "bearer ":
            offered.append(authorization[7:].strip())
        offered = [key for key in offered if key]
        if not offered:
            raise ApiError("authentication_error", "x-api-key header is required")
        expected = self._api_key
        if expected is not None and not any(
            hmac.compare_digest(key.encode(), expected.encode()) for key in offered
        ):
            raise ApiError("authentication_error", "invalid x-api-key")

    def _inject(self, endpoint: str) -> None:
        status = self.service.faults.http_error(endpoint)
        if status is None:
            return
        headers = {}
        if status in _RETRY_AFTER_STATUSES:
            wait = self.service.faults.config.retry_after_seconds
            headers = {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(int(wait * 1000))}
        error_type = TYPE_BY_STATUS[status]
        message = f"Emulated {error_type} on {endpoint} (injected fault)"
        raise ApiError(error_type, message, status=status, headers=headers)

    # -- admin ------------------------------------------------------------

    def _put_faults(self, request: Request) -> object:
        data = _json_object(request.body)
        try:
            config = FaultConfig.from_dict(data)
        except ValueError as exc:
            raise invalid_request(str(exc)) from None
        self.service.faults.replace(config)
        return self.service.faults.config.to_dict()

    def _post_clock(self, request: Request) -> object:
        data = _json_object(request.body)
        clock = self.service.clock
        try:
            if "speed" in data:
                clock.set_speed(float(data["speed"]))
            if "advance_seconds" in data:
                clock.advance(float(data["advance_seconds"]))
        except (TypeError, ValueError) as exc:
            raise invalid_request(str(exc)) from None
        return clock.state().to_dict()

    def _records(self, request: Request) -> object:
        wanted = request.query.get("custom_ids", ["false"])[-1].lower() in ("1", "true", "yes")
        return self.service.records(with_custom_ids=wanted)


def _route(method: str, path: str) -> tuple[str, str]:
    known_path = False
    for route_method, pattern, endpoint in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        known_path = True
        if route_method == method:
            return endpoint, match.groupdict().get("id") or ""
    if known_path:
        raise not_found(f"{method} is not supported on {path}")
    raise not_found(f"Not found: {path}")


def _surface(request: Request) -> Surface:
    return Surface.of(request.query, request.headers.get("anthropic-beta"))


def _json_object(body: bytes | bytearray) -> dict[str, Any]:
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object")
    return data
