"""`batchline doctor`: check a live setup and say what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import click
import httpx2
import redis
from sqlalchemy.exc import SQLAlchemyError

from batchline.adapters import queries
from batchline.adapters.anthropic_api import DEFAULT_BASE_URL
from batchline.adapters.redis_health import redis_problems
from batchline.adapters.sql import controls as controls_sql
from batchline.cli import friendly_errors, load_settings, redact
from batchline.database import current_and_head, make_engine, make_session_factory, session_scope
from batchline.domain.pauses import how_it_ends
from batchline.domain.timing import parse_http_date
from batchline.ledger import spend_cap_reached
from batchline.settings import Settings

MAX_CLOCK_SKEW_SECONDS = 30.0


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""
    warning: bool = False  # worth saying, not worth a non-zero exit


def check_redis(settings: Settings) -> list[Finding]:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        problems = redis_problems(client)
    except redis.AuthenticationError:
        return [
            Finding(
                False,
                f"Redis at {redact(settings.redis_url)} refused the credentials",
                "check BATCHLINE_REDIS_URL",
            )
        ]
    except redis.RedisError as exc:
        return [
            Finding(
                False,
                f"Redis at {redact(settings.redis_url)} (BATCHLINE_REDIS_URL) is not reachable "
                f"({exc})",
                "start that Redis or fix BATCHLINE_REDIS_URL",
            )
        ]
    finally:
        client.close()
    found = [Finding(False, p.split(": ", 1)[0], p.split("; ", 1)[-1]) for p in problems]
    if urlsplit(settings.redis_url).password is None:
        found.append(
            Finding(
                False,
                "Redis URL has no password",
                "require a password (requirepass) and put it in the URL",
                warning=True,
            )
        )
    ok = [Finding(True, "Redis reachable, noeviction, append-only file on")]
    return (found or ok) + _losses(settings)


def _losses(settings: Settings) -> list[Finding]:
    from batchline.losses import lost_count

    lost = lost_count(settings)
    if not lost:
        return []
    return [
        Finding(
            False,
            f"Redis lost {lost} accepted requests before they reached SQL",
            "their handles report `lost`: enqueue them again; turn on `appendonly yes` "
            "or BATCHLINE_DURABLE_ENQUEUE=true",
            warning=True,
        )
    ]


def check_database(settings: Settings) -> list[Finding]:
    engine = make_engine(settings.database_url)
    try:
        current, head = current_and_head(engine)
        if current != head:
            return [
                Finding(
                    False,
                    f"database at migration {current}, code expects {head}",
                    "run `batchline db upgrade`",
                )
            ]
        with make_session_factory(engine)() as session:
            paused = controls_sql.submission_paused(session)
            capped = spend_cap_reached(session, settings.daily_spend_cap_usd, datetime.now(UTC))
            margin = timedelta(hours=settings.results_expiry_margin_hours)
            expiring = queries.results_expiring(session, datetime.now(UTC), margin)
    except SQLAlchemyError as exc:
        return [
            Finding(
                False,
                f"database at {redact(settings.database_url)} (BATCHLINE_DATABASE_URL) "
                f"not reachable ({type(exc).__name__})",
                "start it or fix BATCHLINE_DATABASE_URL",
            )
        ]
    finally:
        engine.dispose()
    found = [Finding(True, "database reachable and migrated")]
    if paused:
        found.append(Finding(False, f"submission is paused: {paused}", how_it_ends(paused)))
    for batch in expiring:
        found.append(
            Finding(
                False,
                f"batch {batch.id} ({batch.remote_id}) results not ingested and "
                "their 29-day window closes soon",
                "check the workers' logs; `batchline batches show` for its state",
            )
        )
    if capped:
        found.append(
            Finding(False, capped, "raise BATCHLINE_DAILY_SPEND_CAP_USD or wait", warning=True)
        )
    return found


def check_api(settings: Settings) -> list[Finding]:
    if not settings.api_key:
        return [Finding(False, "ANTHROPIC_API_KEY is not set", "export ANTHROPIC_API_KEY")]
    base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
    headers = {"x-api-key": settings.api_key, "anthropic-version": "2023-06-01"}
    try:
        answer = httpx2.get(f"{base}/v1/messages/batches?limit=1", headers=headers, timeout=10)
    except httpx2.HTTPError as exc:
        return [
            Finding(
                False,
                f"API not reachable at {base} ({type(exc).__name__})",
                "check ANTHROPIC_BASE_URL and the network",
            )
        ]
    if answer.status_code in (401, 403):
        return [
            Finding(
                False, f"API refused the key (HTTP {answer.status_code})", "check ANTHROPIC_API_KEY"
            )
        ]
    found = [Finding(answer.status_code == 200, f"API answered HTTP {answer.status_code}")]
    return found + _clock_skew(answer.headers.get("date"))


def _clock_skew(date_header: str | None) -> list[Finding]:
    api_now = parse_http_date(date_header)
    if api_now is None:
        return []
    skew = (datetime.now(UTC) - api_now).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        return [
            Finding(
                False,
                f"clock differs from the API's by {skew:.0f}s",
                "sync this machine's clock (NTP): the reconciler compares times",
            )
        ]
    return [Finding(True, f"clock within {abs(skew):.0f}s of the API's")]


def check_flower(url: str | None) -> list[Finding]:
    """Flower shows every task's arguments: it must not answer strangers."""
    if not url:
        return []
    try:
        answer = httpx2.get(f"{url.rstrip('/')}/api/workers", timeout=5)
    except httpx2.HTTPError as exc:
        return [
            Finding(
                False,
                f"Flower not reachable at {url} ({type(exc).__name__})",
                "check BATCHLINE_FLOWER_URL",
                warning=True,
            )
        ]
    if answer.status_code == 200:
        return [
            Finding(
                False,
                "Flower answers without authentication",
                "start it with --basic-auth (or FLOWER_BASIC_AUTH)",
            )
        ]
    return [Finding(True, f"Flower requires authentication (HTTP {answer.status_code})")]


def run_checks(settings: Settings) -> list[Finding]:
    flower = settings.flower_url
    return (
        check_redis(settings)
        + check_database(settings)
        + check_api(settings)
        + check_flower(flower)
    )


@click.command()
@friendly_errors
def doctor() -> None:
    """Check Redis, the database, the API key and the clock; exit 1 on problems."""
    findings = run_checks(load_settings())
    failed = False
    for finding in findings:
        mark = "ok  " if finding.ok else ("warn" if finding.warning else "FAIL")
        click.echo(f"[{mark}] {finding.what}" + (f" -> {finding.fix}" if finding.fix else ""))
        failed = failed or (not finding.ok and not finding.warning)
    if failed:
        raise SystemExit(1)


@click.command()
@friendly_errors
def resume() -> None:
    """Resume submission after it was paused (billing, authentication, spend limit)."""
    with session_scope(load_settings(), write=True) as session:
        was = controls_sql.resume_submission(session)
    click.echo("submission resumed" if was else "submission was not paused")
