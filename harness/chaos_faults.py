"""The chaos run's faults: each a step that starts (and later ends) one adversity.

`Stage` holds what the faults act on (processes, Redis, the PostgreSQL relay,
the emulator and the hostile API relay in front of it) and what they leave for
the accounting (requests they added, poison they wrote, foreign batches).
`schedule(stage)` spreads them over the fault phase; each entry is
(seconds from start, name, step); a step that is not yet due says when to try again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import orjson
import redis

from batchline.domain.custom_ids import new_request_id
from batchline.emulator import EmulatorServer
from batchline.errors import BrokerUnavailable, QueueFull
from batchline.keys import RedisKeys
from batchline.producer import Item, Producer
from batchline.settings import Settings
from harness.chaos_plan import ChaosPlan, request_params
from harness.create_faults import foreign_batch, other_deployment_custom_ids, plain_custom_ids
from harness.hostile_api import HostileApi, StreamFault
from harness.poison import POISON_ENTRIES
from harness.processes import ServiceProcesses
from harness.redis_server import PrivateRedis
from harness.tcp_proxy import TcpProxy

Say = Callable[[str], None]
# A step returns None when done, or in how many seconds to try again (not yet due).
Step = Callable[[], float | None]
Event = tuple[float, str, Step]

REFUSED = (redis.RedisError, QueueFull, BrokerUnavailable)
# `Stage.feed`: how often a waiting fault may add a batch of work, and where the
# added requests' numbers start (above any the run's chunks use).
FEED_EVERY_SECONDS = 10.0
FED_OFFSET = 10_000_000


@dataclass
class Injected:
    """What the faults did, for the accounting to check against."""

    worker_kills: int = 0
    second_beat: bool = False
    lost_before_made: int = 0
    unanswered_create: bool = False
    foreign_batches: list[str] = field(default_factory=list)
    poison_entries: dict[str, str] = field(default_factory=dict)  # stream entry id -> kind
    spoiled_served: int = 0  # results bodies the relay spoiled (NUL, a line for nobody)
    endless_from: int = 0  # downloads through the relay before the endless line began
    endless_served: int = 0
    redis_full_refusals: int = 0
    redis_full_accepted: int = 0
    # Processes that exited on their own (not a kill of ours), restarted as
    # compose's `restart: unless-stopped` would: name -> times.
    exits_restarted: dict[str, int] = field(default_factory=dict)


@dataclass
class Stage:
    plan: ChaosPlan
    procs: ServiceProcesses
    workers: list[str]
    redis_server: PrivateRedis
    proxy: TcpProxy
    emulator: EmulatorServer
    relay: HostileApi
    db_url: str
    say: Say
    rng: random.Random
    accepted: set[str]
    injected: Injected = field(default_factory=Injected)
    threads: list[threading.Thread] = field(default_factory=list)
    fed_at: float = 0.0
    fed: int = 0

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url, socket_timeout=5)

    def feed(self, why: str) -> None:
        """One full batch more, at most every `FEED_EVERY_SECONDS`, for a fault that
        waits on the service's own activity (a create to strike, a download to spoil).

        On a slow machine such a fault can be armed after the last request was
        already batched; without more work it would wait for ever (CI once saw the
        fault phase overrun so)."""
        now = time.monotonic()
        if now - self.fed_at < FEED_EVERY_SECONDS:
            return
        self.fed_at = now
        first = FED_OFFSET + self.fed
        items = [
            Item(request_params(i)) for i in range(first, first + self.plan.max_batch_requests)
        ]
        settings = Settings(database_url=self.db_url, redis_url=self.redis_server.url)
        try:
            with Producer(settings) as producer:
                handles = producer.enqueue_many(items)
        except REFUSED:
            return
        self.fed += len(items)
        self.accepted.update(h.id for h in handles)
        self.say(f"chaos: {len(items)} more requests, so that {why}")


def schedule(stage: Stage) -> list[Event]:
    span = stage.plan.fault_seconds
    events: list[Event] = [
        (0.08 * span, "foreign batches", lambda: foreign_batches(stage)),
        (0.10 * span, "poison entries", lambda: poison_entries(stage)),
        (0.15 * span, "create lost before made", lambda: create_lost_before_made(stage)),
        (0.20 * span, "cut results", lambda: cut_results(stage, 3_000)),
        (0.20 * span + 8, "uncut results", lambda: cut_results(stage, None)),
        (0.25 * span, "poison result lines", lambda: poison_results(stage)),
        (0.30 * span, "second beat", lambda: second_beat(stage, True)),
        (0.35 * span, "endless line", lambda: endless_line(stage, True)),
        (0.35 * span + 1, "endless line off", lambda: endless_line(stage, False)),
        (0.40 * span, "create made, never answered", lambda: create_unanswered(stage)),
        (0.90 * span, "lost creates spent", lambda: lost_creates_spent(stage)),
        (0.45 * span, "redis restart", lambda: restart_redis(stage)),
        (0.55 * span, "poison entries", lambda: poison_entries(stage)),
        (0.60 * span, "pg outage", lambda: pg_outage(stage)),
        (0.75 * span, "second beat off", lambda: second_beat(stage, False)),
        (0.80 * span, "redis full", lambda: redis_full(stage)),
        (0.80 * span + stage.plan.full_redis_seconds, "redis limit lifted", lambda: lift(stage)),
    ]
    for moment in sorted(stage.rng.uniform(0.02, 0.95) * span for _ in range(stage.plan.kills)):
        events.append((moment, "kill", lambda: kill_worker(stage)))
    events.sort(key=lambda e: e[0])
    return events


# -- creates -------------------------------------------------------------------


def lost_creates(stage: Stage) -> None:
    """The next `lost_creates` creates are made by the API, then answered 500."""
    stage.say(f"chaos: the next {stage.plan.lost_creates} creates are made, then answered 500")
    stage.emulator.admin().update_faults(
        lost_create_responses=stage.plan.lost_creates, lost_create_status=500
    )


def create_unanswered(stage: Stage) -> float | None:
    """Once the lost creates are spent: the next create is made, and its connection closed."""
    admin = stage.emulator.admin()
    if admin.get_faults().lost_create_responses:
        stage.feed("the lost creates strike")
        return 1.0
    stage.say("chaos: the next create is made, then its connection closed unanswered")
    admin.update_faults(lost_create_responses=1, lost_create_status=None)
    stage.injected.unanswered_create = True
    return None


def lost_creates_spent(stage: Stage) -> float | None:
    """Holds the fault phase open until every lost answer has struck a create."""
    if not stage.injected.unanswered_create:
        return 1.0
    if stage.emulator.admin().get_faults().lost_create_responses:
        stage.feed("the lost creates strike")
        return 1.0
    return None


def create_lost_before_made(stage: Stage) -> None:
    stage.say("chaos: the next create is answered 500 before anything is made")
    stage.emulator.admin().update_faults(scripted_errors={"create": [500]})
    stage.injected.lost_before_made += 1


def foreign_batches(stage: Stage) -> float | None:
    """Another client of the same key (a script, another deployment) makes batches of our size,
    while our lost creates' intents are open (inside the reconciler's window).

    It waits until the lost creates are spent (they would strike its creates too),
    tries until one answer comes back, and its batches are found by custom_id."""
    if stage.emulator.admin().get_faults().lost_create_responses:
        return 1.0
    size = stage.plan.max_batch_requests
    kinds = (plain_custom_ids(size), other_deployment_custom_ids(size))
    for custom_ids in kinds:
        for _ in range(20):
            try:
                foreign_batch(stage.emulator, custom_ids)
                break
            except anthropic.APIError:
                continue
    theirs = {custom_ids[0] for custom_ids in kinds}
    for batch in stage.emulator.admin().records(custom_ids=True).batches:
        if batch.custom_ids and batch.custom_ids[0] in theirs:
            stage.injected.foreign_batches.append(batch.id)
    stage.say(f"chaos: another client of the key made {stage.injected.foreign_batches}")
    return None


# -- poison --------------------------------------------------------------------


def poison_entries(stage: Stage) -> None:
    """One stream entry of every poison kind, XADDed beside `enqueue`'s."""
    client = stage.redis_client()
    try:
        stream = RedisKeys().intake_stream
        for kind, make in POISON_ENTRIES.items():
            fields = make()
            entry: Any = client.xadd(stream, fields)  # type: ignore[arg-type]
            stage.injected.poison_entries[entry.decode()] = kind
            if kind == "bundle-one-bad":
                # The good requests bundled beside the bad one are accepted like any other.
                stage.accepted.update(
                    i for i in fields[b"id"].decode().split(" ") if len(i) == 32 and _hex(i)
                )
    finally:
        client.close()
    stage.say(f"chaos: {len(POISON_ENTRIES)} poison entries written into the intake stream")


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def nul_in_first_success(body: bytes) -> bytes:
    """U+0000 (as `\\u0000`) in the text of the first succeeded reply of a results body."""
    lines = body.split(b"\n")
    for n, line in enumerate(lines):
        doc = orjson.loads(line) if line.strip() else None
        if doc and doc["result"]["type"] == "succeeded":
            doc["result"]["message"]["content"][0]["text"] += "\u0000 after a NUL"
            lines[n] = orjson.dumps(doc)
            break
    return b"\n".join(lines)


def line_for_nobody(body: bytes) -> bytes:
    """One more line, shaped like ours, naming a request that does not exist."""
    first = next(line for line in body.split(b"\n") if line.strip())
    doc = orjson.loads(first)
    doc["custom_id"] = f"blchaos_{new_request_id()}-1"
    return body.rstrip(b"\n") + b"\n" + orjson.dumps(doc) + b"\n"


def poison_results(stage: Stage) -> None:
    stage.say("chaos: 3 results bodies get a NUL in a reply, 3 a line naming nobody")
    stage.relay.spoil_results(nul_in_first_success, times=3)
    stage.relay.spoil_results(line_for_nobody, times=3)


def endless_line(stage: Stage, on: bool) -> float | None:
    """Results downloads begin with an endless line, until at least one was served so."""
    if on:
        stage.say("chaos: results downloads begin with an endless line")
        stage.relay.fault = StreamFault(endless_line_bytes=4 << 20)
        stage.injected.endless_from = stage.relay.downloads
        return None
    if stage.relay.downloads == stage.injected.endless_from:
        stage.feed("a download begins with the endless line")
        return 1.0
    stage.relay.fault = StreamFault()
    stage.injected.endless_served = stage.relay.downloads - stage.injected.endless_from
    stage.say(f"chaos: {stage.injected.endless_served} downloads began with an endless line")
    return None


def cut_results(stage: Stage, limit: int | None) -> None:
    stage.say(f"chaos: results_cut_after_bytes={limit}")
    stage.emulator.admin().update_faults(results_cut_after_bytes=limit)


# -- processes and stores ------------------------------------------------------


def supervise(stage: Stage) -> None:
    """Restarts a worker or beat that exited on its own, as compose's restart policy
    does in production. Celery gives up on a broker now and then under these faults
    (kombu's reconnect after a Redis restart can raise AttributeError, kombu#582;
    a write refused at maxmemory can end the consumer); the product's promise is
    that a restarted process carries on, not that Celery never exits, and every
    such exit is counted and printed."""
    for name, proc in list(stage.procs.procs.items()):
        code = proc.poll()
        if code is None:
            continue
        stage.injected.exits_restarted[name] = stage.injected.exits_restarted.get(name, 0) + 1
        stage.say(f"chaos: {name} exited on its own (code {code}), restarted")
        if name.startswith("beat"):
            stage.procs.beat(name)
        else:
            stage.procs.worker(name, concurrency=stage.plan.concurrency)


def kill_worker(stage: Stage) -> None:
    name = stage.rng.choice(stage.workers)
    stage.procs.kill(name)
    stage.injected.worker_kills += 1
    stage.say(f"chaos: SIGKILL {name} (kill {stage.injected.worker_kills}), restart")
    stage.procs.worker(name, concurrency=stage.plan.concurrency)


def second_beat(stage: Stage, on: bool) -> None:
    if on:
        stage.say("chaos: a second beat starts")
        stage.procs.beat("beat-2")
        stage.injected.second_beat = True
    else:
        stage.say("chaos: the second beat stops")
        stage.procs.kill("beat-2")


def restart_redis(stage: Stage) -> None:
    stage.say("chaos: SIGKILL redis-server, restart from its AOF")
    stage.redis_server.kill()
    time.sleep(1.0)
    stage.redis_server.start()


def pg_outage(stage: Stage) -> None:
    seconds = stage.plan.outage_seconds
    stage.say(f"chaos: PostgreSQL refuses connections for {seconds} s")
    thread = threading.Thread(target=stage.proxy.outage, args=(seconds,))
    thread.start()
    stage.threads.append(thread)


def redis_full(stage: Stage) -> None:
    """maxmemory a little above what Redis holds, then a producer without
    batchline's backpressure enqueues until Redis itself refuses the write."""
    client = stage.redis_client()
    try:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used + stage.plan.full_redis_headroom)
    finally:
        client.close()
    settings = Settings(database_url=stage.db_url, redis_url=stage.redis_server.url)
    unlimited = settings.replace(max_queue_bytes=1 << 40, redis_memory_high_water=1.0)
    with Producer(unlimited) as producer:
        for n in range(20_000):
            try:
                handle = producer.enqueue(request_params(n, "x" * 4000))
            except REFUSED:
                stage.injected.redis_full_refusals += 1
                break
            stage.accepted.add(handle.id)
            stage.injected.redis_full_accepted += 1
    stage.say(f"chaos: Redis at maxmemory after {stage.injected.redis_full_accepted} more requests")


def lift(stage: Stage) -> None:
    stage.say("chaos: Redis's maxmemory limit lifted")
    client = stage.redis_client()
    try:
        client.config_set("maxmemory", 0)
    finally:
        client.close()
