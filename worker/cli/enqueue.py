"""`batchline enqueue FILE.jsonl`: bulk in.

The input file has the shape the API's batch create takes, one request a
line: `{"custom_id": "...", "params": {...}}`, with an optional `"betas": [...]`
(anthropic-beta names, for beta parameters) and an optional `"deadline"`
(seconds from the time of enqueueing, or an ISO 8601 time with its offset).
The custom_id becomes the request's idempotency key, so enqueueing the same file twice adds nothing.
The whole file is checked before anything is enqueued.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.progress import Progress

from batchline.cli.shared import friendly_errors, load_settings
from batchline.database import session_scope
from batchline.domain.custom_ids import CUSTOM_ID_PATTERN
from batchline.domain.deadlines import deadline_epoch
from batchline.domain.validation import InvalidRequest, check_betas, encode_params

CHUNK = 1_000


class BadLine(click.ClickException):
    def __init__(self, path: Path, number: int, problem: str) -> None:
        super().__init__(f"{path}:{number}: {problem}")


Line = tuple[int, str, dict[str, Any], list[str], "float | datetime | None"]


def read_requests(path: Path) -> Iterator[Line]:
    """(line number, custom_id, params, betas, deadline) for each non-blank line;
    BadLine on a fault."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            yield number, *_parse(path, number, raw)


def _parse(
    path: Path, number: int, raw: bytes
) -> tuple[str, dict[str, Any], list[str], float | datetime | None]:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(path, number, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadLine(path, number, f"invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadLine(path, number, "each line must be an object {custom_id, params}")
    extra = sorted(set(doc) - {"custom_id", "params", "betas", "deadline"})
    if extra:
        raise BadLine(path, number, f"unexpected field(s): {', '.join(extra)}")
    custom_id = doc.get("custom_id")
    if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.match(custom_id):
        raise BadLine(
            path, number, f"custom_id must match ^[a-zA-Z0-9_-]{{1,64}}$, got {custom_id!r:.80}"
        )
    params = doc.get("params")
    try:
        betas = check_betas(doc.get("betas"))
        encode_params(params, betas=betas)
        deadline = _deadline(doc.get("deadline"))
    except InvalidRequest as exc:
        raise BadLine(path, number, str(exc)) from None
    return custom_id, params, betas, deadline  # type: ignore[return-value]


def _deadline(value: object) -> float | datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(
                "deadline must be seconds from now or an ISO 8601 time with its offset"
            ) from None
    deadline_epoch(value, time.time())  # checked now; made absolute when enqueued
    return value  # type: ignore[return-value]


def check_file(path: Path) -> int:
    """Check every line (and custom_id uniqueness) without enqueueing; returns the count."""
    seen: dict[str, int] = {}
    count = 0
    for number, custom_id, *_ in read_requests(path):
        if custom_id in seen:
            raise BadLine(
                path, number, f"custom_id {custom_id!r} already on line {seen[custom_id]}"
            )
        seen[custom_id] = number
        count += 1
    if count == 0:
        raise click.ClickException(f"{path}: no requests in the file")
    return count


@click.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Check the file and report; enqueue nothing.")
@friendly_errors
def enqueue(source: str, dry_run: bool) -> None:
    """Enqueue every request of a JSONL file (or - for standard input) of {custom_id,
    params} lines.

    Each custom_id is the request's idempotency key: lines already enqueued before
    are counted as known and not enqueued again."""
    if source != "-":
        _enqueue_file(Path(source), dry_run)
        return
    # The input is read twice (checked whole, then enqueued): keep a copy.
    with tempfile.TemporaryDirectory(prefix="batchline-stdin-") as folder:
        copy = Path(folder) / "stdin.jsonl"
        with copy.open("wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        _enqueue_file(copy, dry_run, shown="<stdin>")


def _enqueue_file(path: Path, dry_run: bool, shown: str | None = None) -> None:
    from batchline.producer import Item, Producer

    total = check_file(path)
    if dry_run:
        from batchline.ledger import estimate as estimate_cost

        # Each line was checked with its own betas above; here only sizes count.
        betas = sorted({b for line in read_requests(path) for b in line[3]})
        guess = estimate_cost((line[2] for line in read_requests(path)), betas=betas)
        click.echo(f"{path}: {total} requests, all valid; nothing enqueued (--dry-run)")
        click.echo(
            # Bounds, not averages: the worst case is what a spend cap reserves.
            f"estimate at batch prices: at most {guess.input_tokens:,} input tokens and "
            f"{guess.max_output_tokens:,} output tokens, worst case ${guess.worst_case_usd:.4f}"
        )
        if guess.unknown_models:
            click.echo(
                f"not in the price table (cost unknown): {', '.join(sorted(guess.unknown_models))}"
            )
        return
    settings = load_settings()
    known = 0
    with Producer(settings) as producer, Progress(transient=True) as progress:
        task = progress.add_task("enqueueing", total=total)
        batch: list[Item] = []
        for _number, custom_id, params, betas, deadline in read_requests(path):
            batch.append(
                Item(
                    params,
                    key=custom_id,
                    tags={"custom_id": custom_id},
                    betas=betas,
                    deadline=deadline,
                )
            )
            if len(batch) >= CHUNK:
                known += _enqueue_chunk(producer, batch)
                progress.advance(task, len(batch))
                batch = []
        if batch:
            known += _enqueue_chunk(producer, batch)
            progress.advance(task, len(batch))
    where = shown or str(path)
    message = f"enqueued {total - known} new requests from {where}"
    if known:
        message += f"; {known} already known by custom_id (not enqueued again)"
    click.echo(message)


def _enqueue_chunk(producer: Any, items: list[Any]) -> int:
    """Enqueue one chunk; returns how many of its keys were known already."""
    keys = [item.key for item in items]
    known = _known_keys(producer, keys)
    producer.enqueue_many(items)
    return len(known)


def _known_keys(producer: Any, keys: list[str]) -> set[str]:
    # Known in Redis (enqueued, maybe not yet in SQL) or in SQL (the key may have
    # outlived its Redis TTL). Counted just before the write: a racing enqueuer
    # of the same key can only make the count too low, never lose a request.
    from batchline.adapters.queries import known_keys
    from batchline.keys import RedisKeys

    names = RedisKeys(producer.settings.stream_key_prefix)
    pipe = producer._redis.pipeline(transaction=False)
    for key in keys:
        pipe.exists(names.idempotency(key))
    found = {key for key, hit in zip(keys, pipe.execute(), strict=True) if hit}
    rest = [key for key in keys if key not in found]
    if rest:
        with session_scope(producer.settings) as session:
            found.update(known_keys(session, rest))
    return found
