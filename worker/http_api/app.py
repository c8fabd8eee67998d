"""The ASGI app of `batchline serve`: intake, lookups, long-polls, batches, OpenAPI, metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from anyio import to_thread
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchline.database import READ_ONLY, make_engine, make_session_factory
from batchline.domain.tokens import Principal, parse_tokens
from batchline.http_api import views
from batchline.http_api.auth import authenticate
from batchline.http_api.errors import ApiError, invalid
from batchline.http_api.intake import (
    Accepted,
    enqueue_jsonl,
    enqueue_one,
    header_options,
    read_body,
)
from batchline.http_api.openapi import document
from batchline.producer import Producer
from batchline.settings import Settings, SettingsError

# Longest long-poll one GET may hold; clients poll again after it.
MAX_WAIT_SECONDS = 60.0
JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "batchline_http_requests",
            "HTTP calls answered, by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "batchline_http_request_seconds",
            "Time to answer an HTTP call, by route",
            ["route", "method"],
            registry=self.registry,
        )
        self.enqueued = Counter(
            "batchline_http_enqueued_requests",
            "Message requests accepted over HTTP",
            registry=self.registry,
        )


class Service:
    """What every handler shares: settings, tokens, one producer and a read-only session factory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.principals = parse_tokens(settings.http_tokens)
        if not self.principals:
            raise SettingsError(
                "BATCHLINE_HTTP_TOKENS is empty: batchline serve needs at least one token"
            )
        self.producer = Producer(settings)
        self.metrics = Metrics()
        self._engine = make_engine(settings.database_url)
        self.sessions: sessionmaker[Session] = make_session_factory(
            self._engine.execution_options(**{READ_ONLY: True})
        )

    def close(self) -> None:
        self.producer.close()
        self._engine.dispose()


def create_app(settings: Settings) -> Starlette:
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    def route(
        path: str,
        handler: Callable[[Request, Service, Principal], Awaitable[Response]],
        method: str,
        *,
        public: bool = False,
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                principal = Principal("") if public else authorize(service, request)
                response = await handler(request, service, None if public else principal)  # type: ignore[arg-type]
            except ApiError as exc:
                response = exc.response()
            service.metrics.requests.labels(path, method, str(response.status_code)).inc()
            service.metrics.seconds.labels(path, method).observe(time.perf_counter() - started)
            return response

        return Route(path, endpoint, methods=[method])

    routes = [
        route("/v1/requests", post_requests, "POST"),
        route("/v1/requests/by-key/{key:path}", get_request_by_key, "GET"),
        route("/v1/requests/{request_id}", get_request, "GET"),
        route("/v1/batches", get_batches, "GET"),
        route("/v1/batches/{batch_id}", get_batch, "GET"),
        route("/openapi.json", get_openapi, "GET", public=True),
        route("/metrics", get_metrics, "GET", public=True),
        route("/health", get_health, "GET", public=True),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    return app


def authorize(service: Service, request: Request) -> Principal:
    principal = authenticate(service.principals, request.headers.get("authorization"))
    if principal is None:
        raise ApiError(
            401,
            "authentication_error",
            "a valid bearer token is required (Authorization: Bearer …)",
        )
    return principal


async def post_requests(request: Request, service: Service, principal: Principal) -> Response:
    settings = service.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in JSONL_TYPES:
        if "idempotency-key" in request.headers:
            raise invalid(
                "a JSONL body's custom_ids are its keys; Idempotency-Key is for one request"
            )
        accepted = await enqueue_jsonl(
            request,
            service.producer,
            principal,
            settings.http_max_body_bytes,
            settings.http_max_bulk_bytes,
        )
        service.metrics.enqueued.inc(len(accepted))
        return JSONResponse({"requests": [described(a) for a in accepted]}, status_code=202)
    if content_type not in ("application/json", ""):
        raise ApiError(
            415,
            "invalid_request_error",
            "send application/json (one request) or application/jsonl (many)",
        )
    body = await read_body(request, settings.http_max_body_bytes)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"the body is not JSON ({exc})") from None
    one = await enqueue_one(service.producer, principal, doc, header_options(request))
    service.metrics.enqueued.inc()
    return JSONResponse(
        described(one), status_code=202, headers={"Location": f"/v1/requests/{one.request_id}"}
    )


def described(accepted: Accepted) -> dict[str, Any]:
    out: dict[str, Any] = {"id": accepted.request_id, "url": f"/v1/requests/{accepted.request_id}"}
    if accepted.custom_id is not None:
        out["custom_id"] = accepted.custom_id
    elif accepted.key is not None:
        out["key"] = accepted.key
    return out


def wait_seconds(request: Request) -> float | None:
    raw = request.query_params.get("wait")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise invalid(f"wait must be a number of seconds, got {raw!r:.40}") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise invalid(f"wait must be from 0 to {MAX_WAIT_SECONDS:g} seconds")
    return value


async def get_request(request: Request, service: Service, principal: Principal) -> Response:
    return await answer_request(request, service, principal, request.path_params["request_id"])


async def get_request_by_key(request: Request, service: Service, principal: Principal) -> Response:
    key = principal.key_prefix() + request.path_params["key"]
    handle = await to_thread.run_sync(service.producer.handle_for_key, key)
    if handle is None:
        raise ApiError(404, "not_found_error", "no request has this key")
    return await answer_request(request, service, principal, handle.id)


async def answer_request(
    request: Request, service: Service, principal: Principal, request_id: str
) -> Response:
    if not views.REQUEST_ID.match(request_id):
        raise ApiError(404, "not_found_error", "no such request")
    wait = wait_seconds(request)
    if wait:
        # Not final in time: answered with the state as it is now.
        with contextlib.suppress(TimeoutError):
            await service.producer.handle(request_id).wait(timeout=wait)
    view = await to_thread.run_sync(views.request_state, service.sessions, request_id, principal)
    return JSONResponse(view)


async def get_batches(request: Request, service: Service, principal: Principal) -> Response:
    views.check_unscoped(principal)
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise invalid("limit must be an integer from 1 to 1000")
    state = request.query_params.get("state")
    data = await to_thread.run_sync(views.batches, service.sessions, state, int(raw))
    return JSONResponse({"data": data})


async def get_batch(request: Request, service: Service, principal: Principal) -> Response:
    views.check_unscoped(principal)
    data = await to_thread.run_sync(views.batch, service.sessions, request.path_params["batch_id"])
    return JSONResponse(data)


async def get_openapi(request: Request, service: Service, principal: Principal) -> Response:
    return JSONResponse(document())


async def get_metrics(request: Request, service: Service, principal: Principal) -> Response:
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def get_health(request: Request, service: Service, principal: Principal) -> Response:
    return JSONResponse({"status": "ok"})
