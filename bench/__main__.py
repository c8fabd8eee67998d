"""`python -m bench`: run the benchmark suite and report figures against targets.

    python -m bench                 # full sizes (100,000 requests), about 6-8 minutes
    python -m bench --quick         # 10,000 requests, about 2 minutes
    python -m bench --smoke         # tiny sizes, no targets: proves the suite runs
    python -m bench --json out.json # the same figures as JSON
    python -m bench --only scheduling  # priorities and shares, simulated clock (~25 min)
    python -m bench --full          # full sizes and a million requests end to end (~10 min)

It needs PostgreSQL and Redis (BENCH_PG_URL, BENCH_REDIS_URL; Redis database 14
by default, which it empties) and starts the emulator itself.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    dashboard,
    end_to_end,
    enqueue,
    http_enqueue,
    ingest,
    intake_submit,
    million,
    notebook,
    scheduling,
)
from bench.environment import Backends, ServiceMissing, backends
from bench.report import Figure, format_row, format_table, write_json


@dataclass(frozen=True)
class Sizes:
    name: str
    enqueue_one: int
    requests: int
    results_small: int
    naive: int
    end_to_end: int
    targets: bool
    dashboard: int
    notebook: tuple[int, ...]


SIZES = {
    "full": Sizes(
        "full", 5_000, 100_000, 10_000, 1_000, 100_000, True, 1_000_000, (20_000, 100_000)
    ),
    "quick": Sizes("quick", 2_000, 10_000, 1_000, 300, 10_000, True, 100_000, (20_000,)),
    "smoke": Sizes("smoke", 200, 500, 100, 30, 200, False, 40_000, (200,)),
}

Case = Callable[[Backends, Path, Sizes, Callable[[Figure], None]], None]


def _enqueue(b: Backends, _: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
    enqueue.run(b.redis_url, s.enqueue_one, s.requests, emit, s.targets)


def _intake_submit(label: str) -> Case:
    def case(b: Backends, work: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
        url = b.postgres_url if label == "postgresql" else b.sqlite_url("intake")
        targets = s.targets and label == "postgresql"
        run_case = intake_submit.Case(url, b.redis_url, b.emulator_url, s.requests)
        intake_submit.run(run_case, label, emit, targets, absolute=s.requests == 100_000)

    return case


def _ingest(label: str) -> Case:
    def case(b: Backends, work: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
        url = b.postgres_url if label == "postgresql" else b.sqlite_url("ingest")
        targets = s.targets and label == "postgresql"
        ingest.run(url, work, s.requests, s.results_small, s.naive, label, emit, targets)

    return case


def _end_to_end(label: str) -> Case:
    def case(b: Backends, work: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
        url = b.postgres_url if label == "postgresql" else b.sqlite_url("end-to-end")
        end_to_end.run(url, b.redis_url, b.emulator_url, s.end_to_end, label, emit)

    return case


def _http_enqueue(b: Backends, work: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
    http_enqueue.run(b.postgres_url, b.redis_url, s.enqueue_one, work, emit)


def _dashboard(b: Backends, _: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
    # The 300 ms goal is the issue's, at 1,000,000 requests: only the full size judges it.
    dashboard.run(b.postgres_url, b.redis_url, s.dashboard, emit, s.name == "full")


def _notebook(b: Backends, _: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
    # The cookbook's script and the service, side by side on the same requests.
    notebook.run(b.postgres_url, b.redis_url, b.emulator_url, s.notebook, emit, s.targets)


def _scheduling(b: Backends, _: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
    # A simulated clock over the real assembly and SQL: an hour of it at full size
    # (about 25 minutes of real time here), 5 minutes at smoke size.
    simulated = {"full": 3_600.0, "quick": 1_200.0}.get(s.name, 300.0)
    scheduling.run(b.postgres_url, s.requests, emit, simulated)


def _million(b: Backends, _: Path, s: Sizes, emit: Callable[[Figure], None]) -> None:
    # 1,000,000 at full size (against 100,000); ten times the usual size otherwise.
    count = 1_000_000 if s.name == "full" else s.requests * 10
    million.run(b.postgres_url, b.redis_url, b.emulator_url, emit, count, s.targets)


CASES: dict[str, Case] = {
    "enqueue": _enqueue,
    "http-enqueue": _http_enqueue,
    "intake-submit-postgresql": _intake_submit("postgresql"),
    "intake-submit-sqlite": _intake_submit("sqlite"),
    "ingest-postgresql": _ingest("postgresql"),
    "ingest-sqlite": _ingest("sqlite"),
    "end-to-end-postgresql": _end_to_end("postgresql"),
    "end-to-end-sqlite": _end_to_end("sqlite"),
    "notebook-postgresql": _notebook,
    "dashboard-postgresql": _dashboard,
    "scheduling": _scheduling,
    "million": _million,
}
# Run only when asked for: by --full, or by name with --only.
ON_REQUEST = {"million"}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="10,000 requests instead of 100,000")
    size.add_argument("--smoke", action="store_true", help="tiny sizes and no targets")
    parser.add_argument(
        "--full",
        action="store_true",
        help="full sizes plus the million-request case (about 10 minutes on a quiet 2-core box)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(CASES),
        metavar="CASE",
        help=f"run only this case (repeatable): {', '.join(CASES)}",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    sizes = SIZES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.full and (args.quick or args.smoke):
        say("error: --full is the full sizes plus the million case; not with --quick or --smoke")
        return 2
    chosen = args.only or [n for n in CASES if args.full or n not in ON_REQUEST]
    figures: list[Figure] = []
    failed: list[str] = []

    def emit(figure: Figure) -> None:
        figures.append(figure)
        print(format_row(figure), flush=True)

    started = time.time()
    say(f"batchline benchmarks, {sizes.name} sizes, on {os.cpu_count()} CPUs")
    try:
        with (
            tempfile.TemporaryDirectory(prefix="batchline-bench-") as scratch,
            backends(Path(scratch)) as services,
        ):
            for name in chosen:
                say(f"[{name}] running ({time.time() - started:.0f}s so far)")
                try:
                    CASES[name](services, Path(scratch), sizes, emit)
                # One case failing must not hide the others.
                except Exception as exc:
                    traceback.print_exc()
                    failed.append(name)
                    emit(
                        Figure(f"{name} FAILED", math.nan, "", note=f"{type(exc).__name__}: {exc}")
                    )
    except ServiceMissing as exc:
        say(f"error: {exc}")
        return 2
    elapsed = time.time() - started
    print()
    print(format_table(figures))
    missed = [f.name.strip() for f in figures if f.met is False]
    verdict = f"targets missed: {', '.join(missed)}" if missed else "no target missed"
    if failed:
        verdict += f"; cases FAILED: {', '.join(failed)}"
    say(f"{len(figures)} figures in {elapsed:.0f}s; {verdict}")
    if args.json is not None:
        meta: dict[str, object] = {
            "sizes": sizes.name,
            "started": datetime.fromtimestamp(started, UTC).isoformat(),
            "seconds": round(elapsed, 1),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cases": chosen,
            "failed": failed,
        }
        write_json(args.json, figures, meta)
        say(f"wrote {args.json}")
    return 1 if failed else 0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
