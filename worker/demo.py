"""`batchline demo`: the seed notebook, replayed through the running service."""

from __future__ import annotations

import time
from collections.abc import Callable

from batchline import cookbook
from batchline.adapters import queries
from batchline.database import READ_ONLY, make_engine, make_session_factory
from batchline.domain.states import TERMINAL_REQUEST_STATES
from batchline.producer import Producer
from batchline.settings import Settings

EXCERPT = 200


def confirm_live(settings: Settings, say: Callable[[str], None], *, assume_yes: bool) -> None:
    """Before spending money: the worst case at batch prices, then ask."""
    import click

    from batchline.ledger import estimate

    if not settings.api_key:
        raise click.ClickException(
            "--live needs ANTHROPIC_API_KEY; without --live the demo is free"
        )
    guess = estimate(
        params
        for requests in (cookbook.example_1(), cookbook.example_2())
        for params in requests.values()
    )
    say(
        f"--live sends {guess.requests} requests to the real API: ~{guess.input_tokens:,} "
        f"input tokens, worst case ${guess.worst_case_usd:.4f} at batch prices"
    )
    if not assume_yes and not click.confirm("spend this on your key?", err=True):
        raise click.ClickException("not started: nothing was sent")


def run_demo(settings: Settings, say: Callable[[str], None], timeout: float) -> bool:
    """Enqueue both examples, show progress, print every result by custom_id."""
    examples = {
        "Example 1: basic batch": cookbook.example_1(),
        "Example 2: different message types": cookbook.example_2(),
    }
    with Producer(settings) as producer:
        handles = {}
        for title, requests in examples.items():
            for custom_id, params in requests.items():
                handles[custom_id] = producer.enqueue(params, tags={"custom_id": custom_id})
            say(f"{title}: enqueued {len(requests)} requests")
        if not _watch(settings, [h.id for h in handles.values()], say, timeout):
            return False
        for title, requests in examples.items():
            print(f"\n{title}")
            for custom_id in requests:
                _print_result(custom_id, handles[custom_id].result(timeout=10))
    return True


def _watch(settings: Settings, ids: list[str], say: Callable[[str], None], timeout: float) -> bool:
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine.execution_options(**{READ_ONLY: True}))
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while time.monotonic() < deadline:
            with sessions() as session:
                states = [_state(session, i) for i in ids]
                batches = queries.batches_by_state(session)
            line = _progress(states, batches)
            if line != last:
                say(line)
                last = line
            if all(s in {t.value for t in TERMINAL_REQUEST_STATES} for s in states):
                return True
            time.sleep(0.5)
        say(f"timed out after {timeout:.0f}s")
        return False
    finally:
        engine.dispose()


def _state(session: object, request_id: str) -> str:
    view = queries.request_view(session, request_id)  # type: ignore[arg-type]
    return "pending" if view is None else view.state


def _progress(states: list[str], batches: dict[str, int]) -> str:
    counts = {s: states.count(s) for s in sorted(set(states))}
    done = sum(n for s, n in counts.items() if s in {t.value for t in TERMINAL_REQUEST_STATES})
    bar = "#" * (20 * done // len(states)) + "." * (20 - 20 * done // len(states))
    return f"[{bar}] {done}/{len(states)} final | requests {counts} | batches {batches}"


def _print_result(custom_id: str, result: object) -> None:
    kind = getattr(result, "type", "?")
    print(f"\nResult for {custom_id}:\nStatus: {kind}")
    message = getattr(result, "message", None)
    if message is not None:
        text = "".join(getattr(b, "text", "") for b in message.content)
        print(f"Content: {text[:EXCERPT]}{'...' if len(text) > EXCERPT else ''}")
    error = getattr(result, "error", None)
    if error is not None:
        print(f"Error: {error.error.type}: {error.error.message}")
