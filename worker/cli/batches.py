"""`batchline batches`: list, show and cancel batches."""

from __future__ import annotations

import click
from rich.table import Table

from batchline.adapters import queries
from batchline.adapters.sql import rows as rows_sql
from batchline.cli.output import BATCH_FIELDS, counts, echo_json, fields_table, out, row_dict
from batchline.cli.shared import batch_number, friendly_errors, load_settings
from batchline.database import session_scope
from batchline.domain.states import BatchState

BATCH_STATES = click.Choice([s.value for s in BatchState])


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
        table.add_row("requests", counts(states))
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
