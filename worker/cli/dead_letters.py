"""`batchline dead-letters`: what intake set aside, and sending it back to intake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import click
from rich.table import Table

from batchline.adapters.dead_letters import DeadLetters
from batchline.adapters.redis_health import make_client
from batchline.cli.output import echo_json, out
from batchline.cli.shared import friendly_errors, load_settings
from batchline.keys import RedisKeys


@click.group("dead-letters")
def dead_letters() -> None:
    """Intake entries set aside with a reason: list them, or send them back to intake."""


@contextmanager
def _letters() -> Iterator[DeadLetters]:
    settings = load_settings()
    client = make_client(settings)
    try:
        yield DeadLetters(client, RedisKeys(settings.stream_key_prefix))
    finally:
        client.close()


@dead_letters.command("list")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Oldest first."
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of a table.")
@friendly_errors
def list_letters(limit: int, as_json: bool) -> None:
    """The oldest dead letters: their ids, requests and reasons."""
    with _letters() as letters:
        shown = letters.oldest(limit)
    if as_json:
        echo_json([asdict(letter) for letter in shown])
        return
    if not shown:
        click.echo("no dead letters")
        return
    table = Table("letter", "requests", "reason", "intake entry")
    for letter in shown:
        ids = " ".join(letter.request_ids[:3]) + (" …" if len(letter.request_ids) > 3 else "")
        table.add_row(letter.letter_id, ids, letter.reason, letter.entry_id)
    out().print(table)


@dead_letters.command("requeue")
@click.argument("letter_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
@friendly_errors
def requeue(letter_ids: tuple[str, ...], every: bool) -> None:
    """Send dead letters (by letter id, or --all) back to intake, exactly as enqueued.

    For letters whose cause is fixed (a bad deploy's first request, a database
    refusal); one still bad is dead-lettered again, with its reason."""
    if bool(letter_ids) == every:
        raise click.UsageError("name the letters to send back (their ids), or --all")
    with _letters() as letters:
        chosen = list(letters.all_ids()) if every else list(letter_ids)
        moved, requests = letters.requeue(chosen)
    click.echo(f"sent back to intake: {moved} dead letters ({requests} requests)")
    if moved < len(chosen):
        click.echo(
            f"{len(chosen) - moved} named no dead letter (already sent back?): "
            "`batchline dead-letters list` shows those left"
        )
