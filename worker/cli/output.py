"""How commands print: tables for people, JSON for scripts."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

BATCH_FIELDS = (
    "id remote_id state origin processing_status request_count body_bytes count_succeeded "
    "count_errored count_canceled count_expired submit_tries cancel_requested error "
    "created_at submitted_at remote_created_at remote_expires_at remote_ended_at ingested_at"
)
REQUEST_FIELDS = (
    "id state idempotency_key batch_id attempts charged_attempts last_error tags "
    "created_at finished_at"
)


def echo_json(value: object) -> None:
    """One JSON document on stdout, for scripts (`--json`)."""
    import orjson

    click.echo(orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode())


def row_dict(obj: object, names: str) -> dict[str, object]:
    return {name: getattr(obj, name) for name in names.split()}


def out() -> Console:
    """A console on the current stdout; wide when piped, so tables are not cut."""
    return Console(width=None if sys.stdout.isatty() else 200)


def fields_table(title: str, obj: object, names: str) -> Table:
    """A two-column table of the named attributes of one object."""
    table = Table(show_header=False, title=title)
    for name in names.split():
        table.add_row(name, str(getattr(obj, name)))
    return table


def counts(by_name: dict[str, int]) -> str:
    return "  ".join(f"{k} {v:,}" for k, v in sorted(by_name.items())) or "none"
