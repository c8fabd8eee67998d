"""Operating commands: status, batches, requests, retry, purge."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import redis
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from batchline import ledger
from batchline.adapters import maintenance, queries
from batchline.adapters.intake import RedisIntakeStream
from batchline.adapters.redis_health import make_client
from batchline.adapters.sql import controls as controls_sql
from batchline.adapters.sql import rows as rows_sql
from batchline.cli import friendly_errors, load_settings
from batchline.database import session_scope
from batchline.domain.pauses import describe as describe_pause
from batchline.domain.pauses import how_it_ends, pause_kind
from batchline.domain.states import BatchState, RequestState
from batchline.keys import RedisKeys
from batchline.losses import lost_count
from batchline.settings import Settings


def echo_json(value: object) -> None:
    """One JSON document on stdout, for scripts (`--json`)."""
    import orjson

    click.echo(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode())


def row_dict(obj: object, names: str) -> dict[str, object]:
    return {name: getattr(obj, name) for name in names.split()}


def batch_number(session: Any, given: str) -> int:
    """A batch the user named (local number or msgbatch_…); exit 1 when unknown."""
    found = queries.find_batch_id(session, given)
    if found is None:
        raise click.ClickException(
            f"no batch {given!r}: give a local batch number or its msgbatch_… id "
            "(`batchline batches list`)"
        )
    return found


BATCH_FIELDS = (
    "id remote_id state origin processing_status request_count body_bytes count_succeeded "
    "count_errored count_canceled count_expired submit_tries cancel_requested error "
    "created_at submitted_at remote_created_at remote_expires_at remote_ended_at ingested_at"
)
REQUEST_FIELDS = (
    "id state idempotency_key batch_id attempts charged_attempts last_error tags "
    "created_at finished_at"
)
REQUEST_STATES = click.Choice([s.value for s in RequestState])
BATCH_STATES = click.Choice([s.value for s in BatchState])


def out() -> Console:
    """A console on the current stdout; wide when piped, so tables are not cut."""
    return Console(width=None if sys.stdout.isatty() else 200)


def queue_depth(settings: Settings) -> int | None:
    client = make_client(settings)
    try:
        return RedisIntakeStream(client, RedisKeys(settings.stream_key_prefix)).depth()
    except redis.RedisError:
        return None
    finally:
        client.close()


def dead_letters(settings: Settings) -> int | None:
    """Intake entries (or single requests of bundles) dead-lettered, with a reason each."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
    try:
        return RedisIntakeStream(client, RedisKeys(settings.stream_key_prefix)).dead_letter_count()
    except redis.RedisError:
        return None
    finally:
        client.close()


def render_status(settings: Settings) -> Group:
    with session_scope(settings) as session:
        requests = queries.requests_by_state(session)
        batches = queries.batches_by_state(session)
        tokens = queries.token_totals(session)
        spent = ledger.spend(session)
        capped = ledger.spend_cap_reached(session, settings.daily_spend_cap_usd, datetime.now(UTC))
        paused = controls_sql.submission_paused(session)
        bad = queries.bad_results(session)
        flying = queries.in_flight_batches(session)
        expiring = queries.results_expiring(
            session, datetime.now(UTC), timedelta(hours=settings.results_expiry_margin_hours)
        )
        rows = [
            (
                b.id,
                b.remote_id,
                b.state,
                b.request_count,
                b.created_at,
                b.remote_created_at,
                b.remote_expires_at,
                b.count_succeeded + b.count_errored + b.count_canceled + b.count_expired,
            )
            for b in flying
        ]
    depth = queue_depth(settings)
    lost = lost_count(settings)
    summary = Table(title="batchline status", show_header=False)
    summary.add_row("intake queue (Redis)", "unreachable" if depth is None else str(depth))
    summary.add_row(
        "lost by Redis before SQL",
        "unknown (Redis unreachable)" if lost is None else str(lost),
    )
    summary.add_row("requests", _counts(requests))
    summary.add_row("batches", _counts(batches))
    summary.add_row(
        "tokens",
        f"input {tokens.input_tokens:,}  output {tokens.output_tokens:,}  "
        f"cache write {tokens.cache_write_tokens:,}  cache read {tokens.cache_read_tokens:,}",
    )
    summary.add_row(
        "spend (batch prices)",
        f"${spent.batch_usd:.4f}  saved ${spent.saving_usd:.4f} against synchronous"
        + (
            f"  ({spent.unknown_cost_results} results of unknown price)"
            if spent.unknown_cost_results
            else ""
        ),
    )
    summary.add_row("duplicate results", str(tokens.duplicates))
    buried = dead_letters(settings)
    summary.add_row(
        "bad data",
        f"dead-lettered intake {'unreachable' if buried is None else buried}  " + _counts(bad),
    )
    summary.add_row(
        "submission",
        f"PAUSED: {describe_pause(paused)}"
        if paused
        else (f"WAITING: {capped}" if capped else "running"),
    )
    for batch in expiring:
        summary.add_row(
            "[bold red]results expiring[/]",
            f"batch {batch.id} ({batch.remote_id}): ingest before its 29-day window closes",
        )
    parts: list[object] = [summary]
    if rows:
        parts.append(_in_flight_table(rows))
    return Group(*parts)  # type: ignore[arg-type]


def _in_flight_table(rows: Sequence[tuple[Any, ...]]) -> Table:
    table = Table(title="in-flight batches")
    for column in ("batch", "remote id", "state", "requests", "done", "elapsed of 24 h"):
        table.add_column(column)
    now = datetime.now(UTC)
    for batch_id, remote_id, state, count, created, remote_created, expires, done in rows:
        start = remote_created or created
        window = ((expires or start + timedelta(hours=24)) - start).total_seconds()
        elapsed = max(0.0, (now - start).total_seconds())
        bar = ProgressBar(total=window, completed=min(elapsed, window), width=24)
        table.add_row(
            str(batch_id), str(remote_id or "-"), str(state), str(count), f"{done}/{count}", bar
        )
    return table


def fields_table(title: str, obj: object, names: str) -> Table:
    """A two-column table of the named attributes of one object."""
    table = Table(show_header=False, title=title)
    for name in names.split():
        table.add_row(name, str(getattr(obj, name)))
    return table


def _counts(counts: dict[str, int]) -> str:
    return "  ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"


def status_document(settings: Settings) -> dict[str, object]:
    with session_scope(settings) as session:
        tokens = queries.token_totals(session)
        spent = ledger.spend(session)
        return {
            "intake_queue": queue_depth(settings),
            "requests": queries.requests_by_state(session),
            "batches": queries.batches_by_state(session),
            "tokens": {
                "input": tokens.input_tokens,
                "output": tokens.output_tokens,
                "cache_write": tokens.cache_write_tokens,
                "cache_read": tokens.cache_read_tokens,
            },
            "spend_usd": spent.batch_usd,
            "saving_usd": spent.saving_usd,
            "duplicate_results": tokens.duplicates,
            "paused": _pause_document(controls_sql.submission_paused(session)),
            "in_flight": [
                row_dict(b, "id remote_id state request_count")
                for b in queries.in_flight_batches(session)
            ],
        }


def _pause_document(reason: str | None) -> dict[str, str] | None:
    if reason is None:
        return None
    return {"reason": reason, "kind": pause_kind(reason), "ends": how_it_ends(reason)}


@click.command()
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between refreshes.",
)
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="With --watch: stop after N."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
@friendly_errors
def status(watch: bool, interval: float, count: int | None, as_json: bool) -> None:
    """Queue depth, requests and batches by state, tokens, in-flight batches."""
    settings = load_settings()
    if as_json:
        echo_json(status_document(settings))
        return
    if not watch:
        out().print(render_status(settings))
        return
    refreshes = 0
    try:
        with Live(render_status(settings), console=out(), refresh_per_second=4) as live:
            while count is None or refreshes < count:
                time.sleep(interval)
                live.update(render_status(settings))
                refreshes += 1
    except KeyboardInterrupt:
        pass


@click.group()
def batches() -> None:
    """List, show and cancel batches."""


@batches.command("list")
@click.option(
    "--state",
    default=None,
    type=BATCH_STATES,
    help="Only batches in this state.",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@friendly_errors
def batches_list(state: str | None, limit: int, as_json: bool) -> None:
    """The most recent batches."""
    with session_scope(load_settings()) as session:
        found = queries.list_batches(session, state, limit)
        if as_json:
            echo_json([row_dict(b, BATCH_FIELDS) for b in found])
            return
        table = Table()
        for column in (
            "id",
            "remote id",
            "state",
            "origin",
            "requests",
            "succeeded",
            "errored",
            "canceled",
            "expired",
            "created",
        ):
            table.add_column(column)
        for b in found:
            table.add_row(
                str(b.id),
                b.remote_id or "-",
                b.state,
                b.origin,
                str(b.request_count),
                str(b.count_succeeded),
                str(b.count_errored),
                str(b.count_canceled),
                str(b.count_expired),
                f"{b.created_at:%Y-%m-%d %H:%M:%S}",
            )
    out().print(table)


@batches.command("show")
@click.argument("batch")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@friendly_errors
def batches_show(batch: str, as_json: bool) -> None:
    """One batch (local number or msgbatch_… id): remote state, counts, timestamps,
    and its requests' states."""
    with session_scope(load_settings()) as session:
        batch_id = batch_number(session, batch)
        row = rows_sql.get_batch(session, batch_id)
        states = queries.batch_request_states(session, batch_id)
        cache = queries.batch_cache_stats(session, batch_id)
        if as_json:
            echo_json(
                {
                    **row_dict(row, BATCH_FIELDS),
                    "requests": states,
                    "cache_write_tokens": cache.cache_write_tokens,
                    "cache_read_tokens": cache.cache_read_tokens,
                }
            )
            return
        table = fields_table(f"batch {batch_id}", row, BATCH_FIELDS)
        table.add_row("requests", _counts(states))
        table.add_row(
            "prompt cache",
            f"written {cache.cache_write_tokens:,}  read {cache.cache_read_tokens:,}  "
            f"hit rate {cache.hit_rate:.0%}",
        )
    out().print(table)


@batches.command("cancel")
@click.argument("batch")
@friendly_errors
def batches_cancel(batch: str) -> None:
    """Ask for a batch (local number or msgbatch_… id) to be canceled; its next poll
    sends the cancel."""
    from batchline.control import cancel_batch

    settings = load_settings()
    with session_scope(settings) as session:
        batch_id = batch_number(session, batch)
    if not cancel_batch(batch_id, settings):
        raise click.ClickException(f"batch {batch_id} is past cancelling (already ended)")
    click.echo(f"batch {batch_id}: cancel requested")


@click.group()
def requests() -> None:
    """Look at single requests."""


@requests.command("show")
@click.argument("request")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option("--raw", is_flag=True, help="Print only the final result's line, as the API sent it.")
@friendly_errors
def requests_show(request: str, as_json: bool, raw: bool) -> None:
    """A request (its id, idempotency key or custom_id): state and every attempt."""
    with session_scope(load_settings()) as session:
        request_id = queries.find_request_id(session, request)
        view = None if request_id is None else queries.request_view(session, request_id)
        if request_id is None or view is None:
            raise click.ClickException(
                f"no request {request!r} in SQL by id, key or custom_id "
                "(just enqueued? intake moves it within seconds)"
            )
        if raw:
            found = queries.final_result_line(session, request_id)
            if found is None or found[1] is None:
                raise click.ClickException(f"request {request_id} has no stored result line")
            sys.stdout.buffer.write(found[1] + b"\n")
            return
        if as_json:
            attempts = "batch_id custom_id result_type error_type input_tokens output_tokens"
            echo_json(
                {
                    **row_dict(view, REQUEST_FIELDS),
                    "attempts_history": [
                        row_dict(r, f"{attempts} duplicate")
                        for r in queries.request_history(session, request_id)
                    ],
                }
            )
            return
        table = fields_table(f"request {request_id}", view, REQUEST_FIELDS)
        history = Table(title="attempts")
        for column in ("batch", "custom_id", "result", "error", "input", "output", "duplicate"):
            history.add_column(column)
        for r in queries.request_history(session, request_id):
            history.add_row(
                str(r.batch_id),
                r.custom_id,
                r.result_type,
                r.error_type or "-",
                str(r.input_tokens),
                str(r.output_tokens),
                str(r.duplicate),
            )
    out().print(table, history)


@click.command()
@click.argument("batch")
@click.option(
    "--include-final",
    is_flag=True,
    help="Also requests that failed for a reason retrying does not cure (invalid_request_error…).",
)
@friendly_errors
def retry(batch: str, include_final: bool) -> None:
    """Queue again the failed and expired requests of a batch (local number or
    msgbatch_… id), with a fresh retry budget."""
    with session_scope(load_settings(), write=True) as session:
        batch_id = batch_number(session, batch)
        final = 0 if include_final else maintenance.count_final_failures(session, batch_id)
        moved = maintenance.requeue_failed(
            session, batch_id, datetime.now(UTC), include_final=include_final
        )
    click.echo(f"batch {batch_id}: {moved} requests queued again")
    if final:
        click.echo(
            f"skipped {final} that failed for a final reason (e.g. invalid_request_error): "
            "they would fail again; --include-final queues them too"
        )


@click.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    type=click.FloatRange(min=0),
    help="Days: final requests finished before this are deleted with their results.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly_errors
def purge(older_than: float, yes: bool) -> None:
    """Retention: delete final requests (and emptied batches) older than N days."""
    if older_than < 0:
        raise click.BadParameter("must be >= 0", param_hint="--older-than")
    cutoff = datetime.now(UTC) - timedelta(days=older_than)
    settings = load_settings()
    with session_scope(settings) as session:
        count = maintenance.count_purgeable(session, cutoff)
    if count == 0:
        click.echo(f"nothing to purge: no final request finished before {cutoff:%Y-%m-%d %H:%M}")
        return
    if not yes:
        click.confirm(
            f"delete {count:,} final requests finished before {cutoff:%Y-%m-%d %H:%M} UTC, "
            "with their results (and the batches left empty)?",
            abort=True,
            err=True,
        )
    with session_scope(settings, write=True) as session:
        requests_gone, batches_gone = maintenance.purge_finished(session, cutoff)
    click.echo(f"purged {requests_gone} requests and {batches_gone} batches")
