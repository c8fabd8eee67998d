"""`batchline run` and `batchline demo`: the whole service on this machine."""

from __future__ import annotations

import signal
import time

import click

from batchline.cli.shared import friendly_errors, load_settings, say
from batchline.settings import Settings


@click.command()
@click.option("--concurrency", default=2, show_default=True, help="Worker processes.")
@friendly_errors
def run(concurrency: int) -> None:
    """Run the service (worker and beat) on embedded defaults until Ctrl-C."""
    from batchline.local import LocalStartError, local_service

    _stop_on_signals()
    try:
        with local_service(load_settings(), say, concurrency=concurrency) as service:
            say("batchline is running; Ctrl-C stops it")
            pause = _PauseWatch(service.settings)
            while service.worker.poll() is None:
                time.sleep(0.5)
                pause.check()
            raise click.ClickException(f"the worker exited; see {service.log_path}")
    except LocalStartError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        say("stopped")


@click.command()
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
        confirm_live(settings, say, assume_yes=yes)
    try:
        with local_service(settings, say, offline=not live) as service:
            ok = run_demo(service.settings, say, timeout)
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
            say(describe(reason) if reason else "submission resumed")
            self._shown = reason


def _stop_on_signals() -> None:
    """SIGTERM (docker, systemd) and SIGINT stop as Ctrl-C does, cleaning up children,
    even when the shell started us with SIGINT ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
