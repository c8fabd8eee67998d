"""`batchline db`: the database schema's migrations."""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError

from batchline.cli.shared import friendly_errors, load_settings
from batchline.database import (
    alembic_config,
    current_and_head,
    database_problem,
    make_engine,
    upgrade,
)
from batchline.settings import Settings, redact


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head", required=False)
@click.option("--revision", "revision_option", default=None, hidden=True)
@friendly_errors
def db_upgrade(revision: str, revision_option: str | None) -> None:
    """Apply the migrations to BATCHLINE_DATABASE_URL (up to REVISION, default head)."""
    settings = load_settings()
    upgrade(settings.database_url, revision_option or revision)
    click.echo(f"database at revision {_current(settings)[0]}")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@friendly_errors
def db_downgrade(revision: str, yes: bool) -> None:
    """Revert the migrations down to REVISION (an id, -1, or base: drops every table)."""
    from alembic import command

    settings = load_settings()
    current, _head = _current(settings)
    if not yes:
        click.confirm(
            f"downgrade {redact(settings.database_url)} from {current} to {revision}? "
            "Tables and columns added since are dropped with their data",
            abort=True,
        )
    command.downgrade(alembic_config(settings.database_url), revision)
    click.echo(f"database at revision {_current(settings)[0]}")


@db.command("current")
@friendly_errors
def db_current() -> None:
    """The database's migration revision, and whether it is the code's head."""
    settings = load_settings()
    current, head = _current(settings)
    if current is None:
        raise click.ClickException(
            f"{redact(settings.database_url)} has no batchline tables: run `batchline db upgrade`"
        )
    click.echo(f"{current} (head)" if current == head else f"{current} (head is {head})")


@db.command("history")
@friendly_errors
def db_history() -> None:
    """Every migration, newest first; the database's own is marked (current)."""
    from alembic.script import ScriptDirectory

    settings = load_settings()
    scripts = ScriptDirectory.from_config(alembic_config(settings.database_url))
    try:
        current = _current(settings)[0]
    except click.ClickException:
        current = None
    for script in scripts.walk_revisions():
        marks = [
            m for m, on in (("head", script.is_head), ("current", script.revision == current)) if on
        ]
        label = f" ({', '.join(marks)})" if marks else ""
        click.echo(f"{script.down_revision or '<base>'} -> {script.revision}{label}, {script.doc}")


def _current(settings: Settings) -> tuple[str | None, str | None]:
    engine = make_engine(settings.database_url)
    try:
        return current_and_head(engine)
    except SQLAlchemyError:
        raise click.ClickException(database_problem(settings) or "database error") from None
    finally:
        engine.dispose()
