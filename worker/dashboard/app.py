"""The dashboard's web application (Starlette): pages, live fragments and actions.

Auth follows Flower's rule in this project: basic auth from a setting
(BATCHLINE_DASHBOARD_BASIC_AUTH, `user:password`, comma-separated for several).
With it set, every page asks for it; without it, pages are readable (the CLI
binds only to loopback then) and every action is refused. Actions also need a
CSRF token from the confirmation page and are logged with who did them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from batchline import control
from batchline.adapters import maintenance, queries
from batchline.adapters.sql import controls as controls_sql
from batchline.dashboard import charts, data, series
from batchline.database import READ_ONLY, make_engine, make_session_factory, session_scope
from batchline.settings import Settings

HERE = Path(__file__).parent
log = logging.getLogger("batchline.dashboard")
TYPES = {".js": "text/javascript", ".css": "text/css"}

# What each action does, what it acts on, and the sentence the confirmation shows.
ACTIONS: dict[str, str] = {
    "cancel-batch": "Cancel batch {target}",
    "retry-batch": "Queue again the failed and expired requests of batch {target}",
    "cancel-request": "Cancel queued request {target}",
    "resume": "Resume submission (clear the pause)",
}


def parse_users(spec: str) -> dict[str, str]:
    """`user:password[,user:password...]` as Flower's --basic-auth takes it."""
    users: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise ValueError("must be user:password (several: comma-separated)")
        users[user] = password
    return users


class Dashboard:
    def __init__(self, settings: Settings, secret: bytes | None = None) -> None:
        self.settings = settings
        self.users = parse_users(settings.dashboard_basic_auth)
        # Signs CSRF tokens; per process, so a restart invalidates open forms.
        self.secret = secret or secrets.token_bytes(32)
        self.engine = make_engine(settings.database_url)
        self.sessions = make_session_factory(self.engine.execution_options(**{READ_ONLY: True}))
        self.redis = data.redis_client(settings)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self.templates.globals["chart"] = charts.bars

    # --- auth ---------------------------------------------------------------

    def user(self, request: Request) -> str | None:
        """The authenticated user, or None (no credentials, wrong ones, or no users set)."""
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not self.users:
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected, password):
            return None
        return user

    def csrf_token(self, user: str) -> str:
        return hmac.new(self.secret, user.encode(), hashlib.sha256).hexdigest()

    # --- pages --------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def render(self, request: Request, page: str, status: int = 200, **context: Any) -> Response:
        """The whole page, or with ?fragment=1 only its live part (what the script swaps in)."""
        template = self.templates.get_template(page)
        # Pages without a live part (confirmation, not found) are not refreshed.
        live = "live" in template.blocks
        context.update(
            live=live,
            request=request,
            refresh=self.settings.dashboard_refresh_seconds,
            now=datetime.now(UTC),
            flash=request.query_params.get("done"),
        )
        if request.query_params.get("fragment") == "1":
            if not live:
                return PlainTextResponse("this page has no live part", 404)
            block = template.blocks["live"]
            html = "".join(block(template.new_context(context)))
            return HTMLResponse(html, status_code=status)
        return HTMLResponse(template.render(context), status_code=status)

    def overview(self, request: Request) -> Response:
        with self.session() as session:
            now = datetime.now(UTC)
            view = data.overview(session, self.settings, now, self.redis)
            recent = [b.id for b in queries.list_batches(session, None, series.BATCHES)]
            found = series.series(session, now, request.query_params.get("tag"), recent)
        finish = data.histogram(found.finish_seconds)
        return self.render(request, "overview.html", o=view, s=found, finish=finish)

    def batches(self, request: Request) -> Response:
        state = request.query_params.get("state") or None
        with self.session() as session:
            rows = data.batch_list(session, state)
        return self.render(request, "batches.html", batches=rows, state=state or "")

    def batch(self, request: Request) -> Response:
        with self.session() as session:
            page = data.batch_page(session, int(request.path_params["batch_id"]))
        if page is None:
            return self.render(request, "missing.html", 404, what="batch")
        return self.render(request, "batch.html", p=page)

    def requests(self, request: Request) -> Response:
        query = request.query_params.get("q", "")
        with self.session() as session:
            found = data.find_requests(session, query)
        if len(found) == 1 and request.query_params.get("fragment") != "1":
            return RedirectResponse(f"/requests/{quote(found[0])}", 303)
        return self.render(request, "requests.html", q=query, found=found)

    def request_detail(self, request: Request) -> Response:
        with self.session() as session:
            page = data.request_page(session, request.path_params["request_id"])
        if page is None:
            return self.render(request, "missing.html", 404, what="request")
        return self.render(request, "request.html", p=page)

    # --- actions ------------------------------------------------------------

    def confirm(self, request: Request) -> Response:
        action, target = request.path_params["action"], request.path_params["target"]
        if action not in ACTIONS:
            return PlainTextResponse("no such action", 404)
        user = self.user(request)
        if user is None:
            return self.refused(request)
        return self.render(
            request,
            "confirm.html",
            action=action,
            target=target,
            sentence=ACTIONS[action].format(target=target),
            csrf=self.csrf_token(user),
        )

    async def act(self, request: Request) -> Response:
        action, target = request.path_params["action"], request.path_params["target"]
        if action not in ACTIONS:
            return PlainTextResponse("no such action", 404)
        user = self.user(request)
        if user is None:
            log.warning("dashboard action refused: not authenticated", extra={"task": action})
            return self.refused(request)
        form = parse_qs((await request.body()).decode(errors="replace"))
        token = (form.get("csrf") or [""])[0]
        if not hmac.compare_digest(token, self.csrf_token(user)):
            log.warning("dashboard action refused: bad CSRF token", extra={"task": action})
            return PlainTextResponse("refused: missing or wrong CSRF token", 403)
        outcome = self.perform(action, target)
        log.info(
            "dashboard action %s %s by %s: %s",
            action,
            target,
            user,
            outcome,
            extra={"task": action},
        )
        back = "/" if action == "resume" else _page_of(action, target)
        return RedirectResponse(f"{back}?done={quote(outcome)}", 303)

    def perform(self, action: str, target: str) -> str:
        settings = self.settings
        if action == "cancel-batch":
            ok = control.cancel_batch(int(target), settings)
            return "cancel requested" if ok else "cannot be canceled now"
        if action == "cancel-request":
            ok = control.cancel_request(target, settings)
            return "canceled" if ok else "not queued: cannot be canceled"
        if action == "retry-batch":
            with session_scope(settings, write=True) as session:
                moved = maintenance.requeue_failed(session, int(target), datetime.now(UTC))
            return f"{moved} requests queued again"
        with session_scope(settings, write=True) as session:
            return "resumed" if controls_sql.resume_submission(session) else "was not paused"

    def refused(self, request: Request) -> Response:
        if not self.users:
            return PlainTextResponse(
                "refused: actions need BATCHLINE_DASHBOARD_BASIC_AUTH (user:password)", 403
            )
        return _challenge()


def _page_of(action: str, target: str) -> str:
    return f"/requests/{quote(target)}" if action == "cancel-request" else f"/batches/{target}"


def _challenge() -> Response:
    return PlainTextResponse(
        "authentication required", 401, {"WWW-Authenticate": 'Basic realm="batchline"'}
    )


def create_app(settings: Settings, secret: bytes | None = None) -> Starlette:
    board = Dashboard(settings, secret)

    def guarded(page: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            # As with Flower: once users are set, nothing is shown without a login.
            if board.users and board.user(request) is None:
                return _challenge()
            if _is_async(page):
                result: Response = await page(request)
                return result
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(page, request)

        return endpoint

    # The few assets, read once: served by name only, so no path reaches the disk
    # (and the strict editable install's symlinks need no special case).
    assets = {
        path.name: (path.read_bytes(), TYPES[path.suffix])
        for path in (HERE / "static").iterdir()
        if path.suffix in TYPES
    }

    async def static(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("not found", 404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "max-age=300"})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", guarded(board.overview)),
        Route("/batches", guarded(board.batches)),
        Route("/batches/{batch_id:int}", guarded(board.batch)),
        Route("/requests", guarded(board.requests)),
        Route("/requests/{request_id}", guarded(board.request_detail)),
        Route("/actions/{action}/{target}", guarded(board.confirm), methods=["GET"]),
        Route("/actions/{action}/{target}", guarded(board.act), methods=["POST"]),
        Route("/healthz", health),
        Route("/static/{name}", static),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        board.engine.dispose()
        board.redis.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = board
    return app


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)
