"""The `batchline` command line: one tool, `--help` everywhere, one-line errors."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from typing import Any, TypeVar

import click

from batchline.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn expected failures into one clear line and exit code 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from sqlalchemy.exc import OperationalError

        from batchline.domain.validation import InvalidRequest

        try:
            return fn(*args, **kwargs)
        except (SettingsError, InvalidRequest) as exc:
            raise click.ClickException(str(exc)) from None
        except RedisConnectionError as exc:
            raise click.ClickException(f"Redis is not reachable: {exc}") from None
        except OperationalError as exc:
            raise click.ClickException(f"the database is not reachable: {exc.orig}") from None

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """batchline: run Messages API requests through Message Batches, at half the price."""


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@friendly_errors
def db_upgrade(revision: str) -> None:
    """Apply the migrations to BATCHLINE_DATABASE_URL (SQLite file by default)."""
    from batchline.database import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {revision}")


@cli.command()
@click.option("--concurrency", default=2, show_default=True, help="Worker processes.")
@friendly_errors
def run(concurrency: int) -> None:
    """Run the service (worker and beat) on embedded defaults until Ctrl-C."""
    from batchline.local import LocalStartError, local_service

    _stop_on_signals()
    try:
        with local_service(load_settings(), _say, concurrency=concurrency) as service:
            _say("batchline is running; Ctrl-C stops it")
            while service.worker.poll() is None:
                time.sleep(0.5)
            raise click.ClickException(f"the worker exited; see {service.log_path}")
    except LocalStartError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        _say("stopped")


@cli.command()
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for results.")
@friendly_errors
def demo(timeout: float) -> None:
    """Replay the seed cookbook's two examples through the whole service, then exit."""
    from batchline.demo import run_demo
    from batchline.local import LocalStartError, local_service

    settings = replace(
        load_settings(),
        max_wait_seconds=2.0,
        poll_interval_seconds=1.0,
        intake_interval_seconds=0.5,
    )
    try:
        with local_service(settings, _say) as service:
            ok = run_demo(service.settings, _say, timeout)
    except LocalStartError as exc:
        raise click.ClickException(str(exc)) from None
    if not ok:
        raise click.ClickException("the demo did not finish; see .batchline/worker.log")


def _stop_on_signals() -> None:
    """SIGTERM (docker, systemd) and SIGINT stop as Ctrl-C does, cleaning up children,
    even when the shell started us with SIGINT ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _say(message: str) -> None:
    click.echo(message, err=True)


def _register_commands() -> None:
    # Imported for their @cli.command side effects; each module is one area.
    from batchline import cli_io, cli_ops, doctor, metrics  # noqa: F401
    from batchline.dashboard.cli import dashboard
    from batchline.emulator.cli import emulator

    cli.add_command(emulator)
    cli.add_command(dashboard)


_register_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
