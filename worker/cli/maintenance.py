"""Operator actions on stored work: `retry` a batch's failures, `purge` old requests,
`resume` paused submission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from batchline.adapters import maintenance
from batchline.adapters.sql import controls as controls_sql
from batchline.cli.shared import batch_number, friendly_errors, load_settings
from batchline.database import session_scope


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


@click.command()
@friendly_errors
def resume() -> None:
    """Resume submission after it was paused (billing, authentication, spend limit)."""
    with session_scope(load_settings(), write=True) as session:
        was = controls_sql.resume_submission(session)
    click.echo("submission resumed" if was else "submission was not paused")
