"""`batchline metrics`: serve the Prometheus metrics of `batchline.metrics`."""

from __future__ import annotations

import time

import click
from prometheus_client import start_http_server

from batchline.cli.shared import friendly_errors, load_settings
from batchline.database import database_problem
from batchline.metrics import registry_for


@click.command()
@click.option("--port", default=9808, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@friendly_errors
def metrics(port: int, host: str) -> None:
    """Serve Prometheus metrics on http://HOST:PORT/metrics until Ctrl-C."""
    settings = load_settings()
    problem = database_problem(settings)
    if problem is not None:
        click.echo(f"warning: {problem}", err=True)
    server, thread = start_http_server(port, addr=host, registry=registry_for(settings))
    click.echo(f"metrics on http://{host}:{port}/metrics", err=True)
    try:
        while thread.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        server.shutdown()
