"""What every command shares: settings loading, one-line errors, naming a batch.

Command modules import this; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from batchline.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn expected failures into one clear line and exit code 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import RedisError
        from sqlalchemy.exc import SQLAlchemyError

        from batchline.database import database_problem, first_line
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
            raise click.ClickException(problem or f"database error: {first_line(exc)}") from None

    return wrapper  # type: ignore[return-value]


def redis_problem(settings: Settings, exc: Exception) -> str:
    from batchline.adapters.redis_health import is_out_of_memory
    from batchline.database import first_line
    from batchline.settings import redact

    if is_out_of_memory(exc):
        return (
            f"Redis at {redact(settings.redis_url)} is past its maxmemory and refused the "
            f"write ({first_line(exc)}); nothing was changed: retry once the workers have "
            "moved requests to SQL, or raise maxmemory"
        )
    return (
        f"Redis at {redact(settings.redis_url)} (BATCHLINE_REDIS_URL) does not answer "
        f"({first_line(exc)}): start it or fix BATCHLINE_REDIS_URL"
    )


def load_settings() -> Settings:
    from batchline.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def batch_number(session: Session, given: str) -> int:
    """A batch the user named (local number or msgbatch_…); exit 1 when unknown."""
    from batchline.adapters import queries

    found = queries.find_batch_id(session, given)
    if found is None:
        raise click.ClickException(
            f"no batch {given!r}: give a local batch number or its msgbatch_… id "
            "(`batchline batches list`)"
        )
    return found


def say(message: str) -> None:
    """A progress line for the person at the terminal, on standard error."""
    click.echo(message, err=True)
