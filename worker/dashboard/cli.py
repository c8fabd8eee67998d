"""`batchline dashboard`: serve the web dashboard with uvicorn."""

from __future__ import annotations

import ipaddress
import logging

import click

LOOPBACK = ("localhost",)


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8710, show_default=True, type=int, help="Port to listen on.")
def dashboard(host: str, port: int) -> None:
    """Serve the web dashboard: queue, batches, requests, spend; live, with actions."""
    from batchline.cli.shared import load_settings
    from batchline.dashboard.app import create_app
    from batchline.logs import configure
    from batchline.web import serve_app

    settings = load_settings()
    # Like Flower in compose: reachable beyond this machine only behind a login.
    if not settings.dashboard_basic_auth and not _is_loopback(host):
        raise click.ClickException(
            f"refusing to serve on {host} without BATCHLINE_DASHBOARD_BASIC_AUTH (user:password)"
        )
    configure()
    logging.getLogger("batchline.dashboard").info("dashboard on http://%s:%d", host, port)
    serve_app(create_app(settings), host, port)
