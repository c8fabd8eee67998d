"""`batchline serve`: the HTTP intake on uvicorn."""

from __future__ import annotations

import signal

import click

from batchline.cli import friendly_errors, load_settings


@click.command()
@click.option(
    "--bind", default=None, help="host:port (default BATCHLINE_HTTP_BIND, 127.0.0.1:8080)."
)
@friendly_errors
def serve(bind: str | None) -> None:
    """Serve the HTTP intake API (POST /v1/requests, GET /v1/requests/ID, ...)."""
    import uvicorn

    from batchline.http_api.app import create_app

    settings = load_settings()
    host, _, port = (bind or settings.http_bind).rpartition(":")
    if not host or not port.isdigit():
        raise click.ClickException(f"--bind must be host:port, got {bind!r}")
    app = create_app(settings)  # checks the tokens before listening
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal
    # to the handler that was there before it; a no-op one makes that a clean exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    click.echo(f"batchline serve listening on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False)
