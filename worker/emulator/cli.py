"""The `emulator` command: serve the Message Batches emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from pathlib import Path

import click
import orjson

from .faults import FaultConfig
from .server import EmulatorServer


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--processing-seconds",
    default=2.0,
    show_default=True,
    type=float,
    help="Emulated seconds a batch takes to end.",
)
@click.option(
    "--api-key",
    envvar="BATCHLINE_EMULATOR_API_KEY",
    default=None,
    help="Accept only this key (default: any non-empty key).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep batches in this directory (default: a temporary one, removed on exit).",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of API calls answered with 429/500/529.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for fault decisions.")
@click.option(
    "--faults-json",
    default=None,
    help="A FaultConfig as JSON, or @path to a JSON file (overrides --fault-rate).",
)
@click.option(
    "--clock-speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Emulated seconds per real second.",
)
@click.option(
    "--max-queued-requests",
    envvar="BATCHLINE_EMULATOR_MAX_QUEUED_REQUESTS",
    type=click.IntRange(min=1),
    default=None,
    help="Answer a create with 429 when it would put more requests than this in unended "
    "batches (default: no limit).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request line.")
def emulator(
    host: str,
    port: int,
    processing_seconds: float,
    api_key: str | None,
    data_dir: Path | None,
    fault_rate: float,
    seed: int,
    faults_json: str | None,
    clock_speed: float,
    max_queued_requests: int | None,
    verbose: bool,
) -> None:
    """Run an emulator of the Message Batches API for offline pipelines and CI."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(message)s"
    )
    faults = _faults(faults_json, fault_rate, seed)
    try:
        server = EmulatorServer(
            host=host,
            port=port,
            processing_seconds=processing_seconds,
            api_key=api_key,
            faults=faults,
            data_dir=data_dir,
            clock_speed=clock_speed,
            max_queued_requests=max_queued_requests,
        ).start()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot start the emulator: {exc}") from None
    click.echo(f"Message Batches emulator listening on {server.base_url}")
    click.echo(f"  export ANTHROPIC_BASE_URL={server.base_url}")
    if api_key is None:
        click.echo("  export ANTHROPIC_API_KEY=any-non-empty-key")
    click.echo(f"  admin: {server.base_url}/_emulator/faults | clock | records")
    click.echo("Press Ctrl+C to stop.", err=True)
    server.serve_forever()
    click.echo("Emulator stopped.", err=True)


def _faults(faults_json: str | None, fault_rate: float, seed: int) -> FaultConfig:
    if faults_json is None:
        return FaultConfig.uniform(fault_rate, seed=seed) if fault_rate else FaultConfig(seed=seed)
    try:
        text = Path(faults_json[1:]).read_text() if faults_json.startswith("@") else faults_json
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return FaultConfig.from_dict(data)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--faults-json") from None
