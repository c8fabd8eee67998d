"""`batchline results export`: bulk out, as JSONL in the API's own per-line shape or CSV."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import orjson

from batchline.adapters.queries import export_rows
from batchline.cli.shared import batch_number, friendly_errors, load_settings
from batchline.database import session_scope
from batchline.domain.results import renamed_line, result_object
from batchline.domain.states import RequestState


@click.group()
def results() -> None:
    """Get results out."""


CSV_COLUMNS = [
    "custom_id",
    "request_id",
    "state",
    "result_type",
    "error_type",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "cost_usd",
    "text",
]


@results.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--batch", "batch", default=None, help="Only this batch's results (number or msgbatch_…)."
)
@click.option(
    "--state",
    default=None,
    type=click.Choice([s.value for s in RequestState]),
    help="Only requests in this state.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
@friendly_errors
def results_export(fmt: str, batch: str | None, state: str | None, output: Path | None) -> None:
    """Stream results as JSONL in the API's own per-line shape, or as CSV."""
    with session_scope(load_settings()) as session:
        batch_id = None if batch is None else batch_number(session, batch)
        with _open(output) as out:
            rows = export_rows(session, batch_id, state)
            (_write_jsonl if fmt == "jsonl" else _write_csv)(rows, out)


class _open:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self._path is None:
            return sys.stdout
        self._file = self._path.open("w", encoding="utf-8", newline="")
        return self._file

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def _custom_id(request: Any) -> str:
    return str(request.idempotency_key or request.id)


def _write_jsonl(rows: Iterator[tuple[Any, Any]], out: IO[str]) -> None:
    for request, result in rows:
        if result is not None and result.line is not None:
            # The API's own line, byte for byte, under the caller's custom_id.
            line = renamed_line(result.line, result.custom_id, _custom_id(request))
        else:
            kind = result.result_type if result is not None else request.state
            line = orjson.dumps({"custom_id": _custom_id(request), "result": {"type": kind}})
        out.write(line.decode() + "\n")


def _write_csv(rows: Iterator[tuple[Any, Any]], out: IO[str]) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for request, result in rows:
        writer.writerow(
            [
                _custom_id(request),
                request.id,
                request.state,
                result.result_type if result else "",
                (result.error_type or "") if result else "",
                (result.model or "") if result else request.model,
                result.input_tokens if result else 0,
                result.output_tokens if result else 0,
                (result.cache_write_5m_tokens + result.cache_write_1h_tokens) if result else 0,
                result.cache_read_tokens if result else 0,
                "" if result is None or result.cost_usd is None else str(result.cost_usd),
                _text(result_object(result.line, result.result_type)) if result else "",
            ]
        )


def _text(body: dict[str, Any]) -> str:
    message = body.get("message") or {}
    return "".join(b.get("text", "") for b in message.get("content", []) if isinstance(b, dict))
