"""Ahead of the notebook way: the cookbook's script against the service, end to end.

The script is what the seed notebook ("Batch Processing with Message Batches
API") leads to, kept as durable as the service: the request bodies written to
SQL in one ORM transaction before anything is sent, then the SDK's
`messages.batches.create`, `retrieve` every second until the batch has ended,
`results()` iterated and every result added as an ORM object, committed in one
transaction. It runs in a spawned process of its own (its peak resident memory
is that process's high-water mark, bodies included).

The service is `bench.end_to_end` unchanged: `enqueue_many`, a real `celery
worker` and `celery beat`, the bench's short timers; its memory is the PSS of
the worker, its pool children and beat, summed and sampled while it runs.

Both use the same emulator (its batches end at once), the same PostgreSQL
database and the same request bodies, one after the other in one run.
"""

from __future__ import annotations

import math
import os
import time

from sqlalchemy.orm import Session

from batchline.database import make_engine
from batchline.settings import Settings
from bench import end_to_end
from bench.data import request_bodies
from bench.environment import EMULATOR_KEY, fresh_database, quiesce_database
from bench.isolate import in_child, peak_memory
from bench.notebook_rows import NotebookBase, NotebookRequest, result_row
from bench.report import Emit, Figure, at_least, at_most

POLL_EVERY = 1.0  # the cookbook's loop: retrieve, and sleep a second while not ended
SPEEDUP_TARGET = 1.5
MEMORY_TARGET_AT = 100_000
# The service as it ships: batches of the default size (10,000), so a batch is
# full, cut and submitted while the rest is still being taken in.
BATCH_REQUESTS: int = Settings.model_fields["max_batch_requests"].default


def script(database_url: str, emulator_url: str, count: int) -> dict[str, float]:
    """The notebook's way, in a fresh process: seconds of each step, and peak memory."""
    import anthropic

    engine = make_engine(database_url)
    NotebookBase.metadata.drop_all(engine)
    NotebookBase.metadata.create_all(engine)
    client = anthropic.Anthropic(api_key=EMULATOR_KEY, base_url=emulator_url)
    bodies = request_bodies(count)
    marks: dict[str, float] = {}
    with peak_memory() as memory:
        start = time.perf_counter()
        requests = [{"custom_id": f"q-{i}", "params": p} for i, p in enumerate(bodies)]
        with Session(engine) as session:
            session.add_all(
                NotebookRequest(custom_id=r["custom_id"], params=r["params"]) for r in requests
            )
            session.commit()
        marks["store requests"] = time.perf_counter()
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        marks["create"] = time.perf_counter()
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            time.sleep(POLL_EVERY)
        marks["poll"] = time.perf_counter()
        stored = 0
        with Session(engine) as session:
            for entry in client.messages.batches.results(batch.id):
                session.add(result_row(entry))
                stored += 1
            session.commit()
        marks["results"] = time.perf_counter()
    if stored != count:
        raise RuntimeError(f"the script stored {stored} results of {count}")
    NotebookBase.metadata.drop_all(engine)
    engine.dispose()
    steps, previous = {}, start
    for name, at in marks.items():
        steps[name] = at - previous
        previous = at
    return {
        "seconds": previous - start,
        **steps,
        "start_rss": float(memory.start),
        "peak_rss": float(memory.peak),
    }


def _load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def run_size(
    database_url: str, redis_url: str, emulator_url: str, count: int, emit: Emit, targets: bool
) -> None:
    """The script, then the service, on `count` requests; figures side by side."""
    fresh_database(database_url)
    load_before = _load()
    ours = in_child(script, database_url, emulator_url, count)
    quiesce_database(database_url)
    service = end_to_end.measure(
        database_url, redis_url, emulator_url, count, max_batch_requests=BATCH_REQUESTS
    )
    load_after = _load()
    name = f"notebook script {count:,}"
    steps = ", ".join(f"{k} {ours[k]:.2f}" for k in ("store requests", "create", "poll", "results"))
    emit(Figure(name, ours["seconds"], "s", note=f"{steps}; {load_before}"))
    label = f"vs notebook {count:,}"
    end_to_end.emit_run(emit, label, service)
    ratio = ours["seconds"] / service.total if service.total > 0 else math.nan
    target = at_least(SPEEDUP_TARGET) if targets else None
    emit(
        Figure(
            f"  script / service time {count:,}",
            ratio,
            "x",
            target,
            f"service faster when > 1; {load_after} after",
        )
    )
    mb = 1e6
    emit(
        Figure(
            f"  script peak RSS {count:,}",
            ours["peak_rss"] / mb,
            "MB",
            note=f"{ours['start_rss'] / mb:.0f} MB at start, its bodies held",
        )
    )
    emit(
        Figure(
            f"  service peak PSS {count:,}",
            service.peak_pss / mb,
            "MB",
            note="worker + pool children + beat, sampled every second",
        )
    )
    memory_target = at_most(1.0) if targets and count >= MEMORY_TARGET_AT else None
    emit(
        Figure(
            f"  service PSS / script peak {count:,}",
            service.peak_pss / ours["peak_rss"] if ours["peak_rss"] else math.nan,
            "ratio",
            memory_target,
        )
    )


def run(
    database_url: str,
    redis_url: str,
    emulator_url: str,
    sizes: tuple[int, ...],
    emit: Emit,
    targets: bool,
) -> None:
    for count in sizes:
        run_size(database_url, redis_url, emulator_url, count, emit, targets)
