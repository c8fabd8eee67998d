"""`batchline serve`: the HTTP intake on uvicorn."""

from __future__ import annotations

import click

from batchline.cli.shared import friendly_errors, load_settings
from batchline.web import serve_app


@click.command()
@click.option(
    "--bind", default=None, help="host:port (default BATCHLINE_HTTP_BIND, 127.0.0.1:8080)."
)
@friendly_errors
def serve(bind: str | None) -> None:
    """Serve the HTTP intake API (POST /v1/requests, GET /v1/requests/ID, ...)."""

    from batchline.http_api.app import create_app

    settings = load_settings()
    host, _, port = (bind or settings.http_bind).rpartition(":")
    if not host or not port.isdigit():
        raise click.ClickException(f"--bind must be host:port, got {bind!r}")
    app = create_app(settings)  # checks the tokens before listening
    click.echo(f"batchline serve listening on http://{host}:{port}", err=True)
    serve_app(app, host, int(port))
