"""`batchline status`: queue depth, requests and batches by state, spend, in flight."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from batchline import ledger
from batchline.adapters import queries
from batchline.adapters.intake_counts import dead_letters, queue_depth
from batchline.adapters.sql import controls as controls_sql
from batchline.cli.output import counts, echo_json, out, row_dict
from batchline.cli.shared import friendly_errors, load_settings
from batchline.database import session_scope
from batchline.deadline_report import at_risk_before, deadline_figures, describe_deadlines
from batchline.domain.pauses import describe as describe_pause
from batchline.domain.pauses import how_it_ends, pause_kind
from batchline.losses import lost_count
from batchline.services import capacity
from batchline.settings import Settings


def render_status(settings: Settings) -> Group:
    with session_scope(settings) as session:
        requests = queries.requests_by_state(session)
        batches = queries.batches_by_state(session)
        tokens = queries.token_totals(session)
        spent = ledger.spend(session)
        capped = ledger.spend_cap_reached(session, settings.daily_spend_cap_usd, datetime.now(UTC))
        paused = controls_sql.submission_paused(session)
        deadlines = deadline_figures(session, at_risk_before(settings))
        room = capacity.capacity_use(session, settings.max_in_flight_requests)
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
    summary.add_row("requests", counts(requests))
    summary.add_row("batches", counts(batches))
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
    summary.add_row("deadlines", describe_deadlines(deadlines, spent.fallback_usd))
    buried = dead_letters(settings)
    summary.add_row(
        "bad data",
        f"dead-lettered intake {'unreachable' if buried is None else buried}  " + counts(bad),
    )
    summary.add_row(
        "submission",
        f"PAUSED: {describe_pause(paused)}"
        if paused
        else (f"WAITING: {capped}" if capped else "running"),
    )
    summary.add_row("capacity", room.describe())
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
            "fallback_usd": spent.fallback_usd,
            "duplicate_results": tokens.duplicates,
            "deadlines": asdict(deadline_figures(session, at_risk_before(settings))),
            "paused": _pause_document(controls_sql.submission_paused(session)),
            "capacity": _capacity_document(
                capacity.capacity_use(session, settings.max_in_flight_requests)
            ),
            "in_flight": [
                row_dict(b, "id remote_id state request_count")
                for b in queries.in_flight_batches(session)
            ],
        }


def _capacity_document(use: capacity.CapacityUse) -> dict[str, int | None]:
    """Requests in flight at the API, and the limits (None: no limit set)."""
    return {
        "in_flight": use.in_flight,
        "prepared": use.prepared,
        "limit": use.limit or None,
        "effective_limit": use.effective_limit or None,
        "lowered": use.effective,
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
