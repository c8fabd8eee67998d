"""The `batchline` command line: one tool, `--help` everywhere, one-line errors."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from functools import wraps
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from batchline.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Commands load on first use: `batchline --help` must not import the SDK,
# SQLAlchemy or Celery. name: (module, attribute, the help line shown in lists).
LAZY_COMMANDS = {
    "batches": ("batchline.cli_ops", "batches", "List, show and cancel batches."),
    "dashboard": (
        "batchline.dashboard.cli",
        "dashboard",
        "Serve the web dashboard: queue, batches, requests, spend; live, with actions.",
    ),
    "doctor": (
        "batchline.doctor",
        "doctor",
        "Check Redis, the database, the API key and the clock; exit 1 on problems.",
    ),
    "emulator": (
        "batchline.emulator.cli",
        "emulator",
        "Run an emulator of the Message Batches API for offline pipelines and CI.",
    ),
    "enqueue": (
        "batchline.cli_io",
        "enqueue",
        "Enqueue every request of a JSONL file (or - for standard input) of {custom_id,…",
    ),
    "metrics": (
        "batchline.metrics",
        "metrics",
        "Serve Prometheus metrics on http://HOST:PORT/metrics until Ctrl-C.",
    ),
    "purge": (
        "batchline.cli_ops",
        "purge",
        "Retention: delete final requests (and emptied batches) older than N days.",
    ),
    "requests": ("batchline.cli_ops", "requests", "Look at single requests."),
    "results": ("batchline.cli_io", "results", "Get results out."),
    "resume": (
        "batchline.doctor",
        "resume",
        "Resume submission after it was paused (billing, authentication, spend limit).",
    ),
    "retry": (
        "batchline.cli_ops",
        "retry",
        "Queue again the failed and expired requests of a batch (local number or…",
    ),
    "serve": (
        "batchline.http_api.command",
        "serve",
        "Serve the HTTP intake API (POST /v1/requests, GET /v1/requests/ID, ...).",
    ),
    "status": (
        "batchline.cli_ops",
        "status",
        "Queue depth, requests and batches by state, tokens, in-flight batches.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands live in other modules, imported only when run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            command = getattr(import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][2]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def friendly_errors(fn: F) -> F:
    """Turn expected failures into one clear line and exit code 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import RedisError
        from sqlalchemy.exc import SQLAlchemyError

        from batchline.domain.validation import InvalidRequest
        from batchline.settings import SettingsError

        try:
            return fn(*args, **kwargs)
        except (SettingsError, InvalidRequest) as exc:
            raise click.ClickException(str(exc)) from None
        except RedisError as exc:
            raise click.ClickException(redis_problem(load_settings(), exc)) from None
        except SQLAlchemyError as exc:
            problem = database_problem(load_settings())
            raise click.ClickException(problem or f"database error: {_first_line(exc)}") from None

    return wrapper  # type: ignore[return-value]


def redis_problem(settings: Settings, exc: Exception) -> str:
    return (
        f"Redis at {redact(settings.redis_url)} (BATCHLINE_REDIS_URL) does not answer "
        f"({_first_line(exc)}): start it or fix BATCHLINE_REDIS_URL"
    )


def database_problem(settings: Settings) -> str | None:
    """What is wrong with the configured database, as one line saying what to do;
    None when it answers and is at the migrations' head."""
    from sqlalchemy.exc import SQLAlchemyError

    from batchline.database import current_and_head, make_engine

    where = f"the database at {redact(settings.database_url)}"
    engine = make_engine(settings.database_url)
    try:
        current, head = current_and_head(engine)
    except SQLAlchemyError as exc:
        return (
            f"{where} (BATCHLINE_DATABASE_URL) does not answer ({_first_line(exc)}): "
            "start it or fix BATCHLINE_DATABASE_URL"
        )
    finally:
        engine.dispose()
    if current is None:
        return f"{where} has no batchline tables yet: run `batchline db upgrade`"
    if current != head:
        return f"{where} is at migration {current}, not {head}: run `batchline db upgrade`"
    return None


def redact(url: str) -> str:
    """A URL fit to print: its password replaced."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_settings() -> Settings:
    from batchline.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchline", prog_name="batchline")
def cli() -> None:
    """batchline: run Messages API requests through Message Batches, at half the price."""


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head", required=False)
@click.option("--revision", "revision_option", default=None, hidden=True)
@friendly_errors
def db_upgrade(revision: str, revision_option: str | None) -> None:
    """Apply the migrations to BATCHLINE_DATABASE_URL (up to REVISION, default head)."""
    from batchline.database import upgrade

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

    from batchline.database import alembic_config

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

    from batchline.database import alembic_config

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
    from sqlalchemy.exc import SQLAlchemyError

    from batchline.database import current_and_head, make_engine

    engine = make_engine(settings.database_url)
    try:
        return current_and_head(engine)
    except SQLAlchemyError:
        raise click.ClickException(database_problem(settings) or "database error") from None
    finally:
        engine.dispose()


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
            pause = _PauseWatch(service.settings)
            while service.worker.poll() is None:
                time.sleep(0.5)
                pause.check()
            raise click.ClickException(f"the worker exited; see {service.log_path}")
    except LocalStartError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        _say("stopped")


@cli.command()
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for results.")
@click.option(
    "--live",
    is_flag=True,
    help="Use the real API with ANTHROPIC_API_KEY (billed; shows the estimate and asks first).",
)
@click.option("--yes", is_flag=True, help="With --live: do not ask.")
@friendly_errors
def demo(timeout: float, live: bool, yes: bool) -> None:
    """Replay the seed cookbook's two examples through the whole service, then exit.

    Offline by default: the bundled emulator answers even when ANTHROPIC_API_KEY
    is set, so the demo never spends money unless you pass --live."""
    from batchline.demo import confirm_live, run_demo
    from batchline.local import LocalStartError, local_service

    settings = load_settings().replace(
        max_wait_seconds=2.0,
        poll_interval_seconds=1.0,
        intake_interval_seconds=0.5,
    )
    if live:
        confirm_live(settings, _say, assume_yes=yes)
    try:
        with local_service(settings, _say, offline=not live) as service:
            ok = run_demo(service.settings, _say, timeout)
    except LocalStartError as exc:
        raise click.ClickException(str(exc)) from None
    if not ok:
        raise click.ClickException("the demo did not finish; see .batchline/worker.log")


class _PauseWatch:
    """Says in the run terminal when submission pauses (why, how it ends) and
    when it resumes: once per change, not on every check."""

    EVERY = 5.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._shown: str | None = None
        self._next = 0.0

    def check(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.EVERY
        from sqlalchemy.exc import SQLAlchemyError

        from batchline.adapters.sql.controls import submission_paused
        from batchline.database import session_scope
        from batchline.domain.pauses import describe

        try:
            with session_scope(self._settings) as session:
                reason = submission_paused(session)
        except SQLAlchemyError:
            return  # the worker's own log says why the database is away
        if reason != self._shown:
            _say(describe(reason) if reason else "submission resumed")
            self._shown = reason


def _stop_on_signals() -> None:
    """SIGTERM (docker, systemd) and SIGINT stop as Ctrl-C does, cleaning up children,
    even when the shell started us with SIGINT ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _say(message: str) -> None:
    click.echo(message, err=True)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
