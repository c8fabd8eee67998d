"""The `batchline` command line: one tool, `--help` everywhere, one-line errors.

Each command group lives in its own module and imports nothing from here; this
root only names them. `batchline --help` must not import the SDK, SQLAlchemy or
Celery, so each command is added as a stand-in (`LazyCommand`) whose module is
imported only when the command runs.
"""

from __future__ import annotations

import sys

import click

from batchline.cli.lazy import LazyCommand, LazyGroup

# name: (module, attribute, the help line shown in lists). Every command of the
# tool is here; tests/unit/test_cli_registry.py fails on one that is not.
LAZY_COMMANDS = {
    "batches": ("batchline.cli.batches", "batches", "List, show and cancel batches."),
    "dashboard": (
        "batchline.dashboard.cli",
        "dashboard",
        "Serve the web dashboard: queue, batches, requests, spend; live, with actions.",
    ),
    "db": ("batchline.cli.db", "db", "Database schema commands."),
    "dead-letters": (
        "batchline.cli.dead_letters",
        "dead_letters",
        "Intake entries set aside with a reason: list them, or send them back to intake.",
    ),
    "demo": (
        "batchline.cli.run",
        "demo",
        "Replay the seed cookbook's two examples through the whole service, then exit.",
    ),
    "doctor": (
        "batchline.cli.doctor",
        "doctor",
        "Check Redis, the database, the API key and the clock; exit 1 on problems.",
    ),
    "emulator": (
        "batchline.emulator.cli",
        "emulator",
        "Run an emulator of the Message Batches API for offline pipelines and CI.",
    ),
    "enqueue": (
        "batchline.cli.enqueue",
        "enqueue",
        "Enqueue every request of a JSONL file (or - for standard input) of {custom_id,…",
    ),
    "metrics": (
        "batchline.cli.metrics",
        "metrics",
        "Serve Prometheus metrics on http://HOST:PORT/metrics until Ctrl-C.",
    ),
    "purge": (
        "batchline.cli.maintenance",
        "purge",
        "Retention: delete final requests (and emptied batches) older than N days.",
    ),
    "requests": ("batchline.cli.requests", "requests", "Look at single requests."),
    "results": ("batchline.cli.results", "results", "Get results out."),
    "resume": (
        "batchline.cli.maintenance",
        "resume",
        "Resume submission after it was paused (billing, authentication, spend limit).",
    ),
    "retry": (
        "batchline.cli.maintenance",
        "retry",
        "Queue again the failed and expired requests of a batch (local number or…",
    ),
    "run": (
        "batchline.cli.run",
        "run",
        "Run the service (worker and beat) on embedded defaults until Ctrl-C.",
    ),
    "serve": (
        "batchline.http_api.command",
        "serve",
        "Serve the HTTP intake API (POST /v1/requests, GET /v1/requests/ID, ...).",
    ),
    "status": (
        "batchline.cli.status",
        "status",
        "Queue depth, requests and batches by state, tokens, in-flight batches.",
    ),
}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchline", prog_name="batchline")
def cli() -> None:
    """batchline: run Messages API requests through Message Batches, at half the price."""


for _name, (_module, _attribute, _shown) in LAZY_COMMANDS.items():
    cli.add_command(LazyCommand(_name, _module, _attribute, _shown))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
