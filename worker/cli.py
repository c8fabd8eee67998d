"""The `batchline` command line: one tool, `--help` everywhere, one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from worker.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn expected failures into one clear line and exit code 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from sqlalchemy.exc import OperationalError

        from worker.domain.validation import InvalidRequest

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
    from worker.database import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at revision {revision}")


def _register_optional() -> None:
    try:
        from worker.emulator.cli import emulator
    except ImportError:  # pragma: no cover - the emulator ships with the package
        return
    cli.add_command(emulator)


_register_optional()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
