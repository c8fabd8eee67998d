"""`batchline requests`: look at single requests."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from batchline.adapters import queries
from batchline.cli.output import REQUEST_FIELDS, echo_json, fields_table, out, row_dict
from batchline.cli.shared import friendly_errors, load_settings
from batchline.database import session_scope


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
