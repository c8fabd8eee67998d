"""The chaos run by hand, at any scale (the CI test runs a small one).

    .venv/bin/python -m harness.run_chaos --requests 20000 --minutes 10

The faults, the accounting and the recovery bound are the CI test's
(tests/fault/test_chaos.py, harness/chaos*.py), at this scale.

Needs PostgreSQL at BATCHLINE_TEST_PG_URL (default postgres@127.0.0.1:5432,
a throwaway database is made and dropped) and `redis-server` on PATH (a
private one is started). Prints the accounting; exits 1 on any loss.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.chaos import ChaosPlan, ChaosRun, scratch_database

PG_ADMIN_URL = os.environ.get(
    "BATCHLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the fault phase")
    parser.add_argument("--settle-minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--max-batch-requests", type=int, default=200)
    parser.add_argument("--lost-creates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep-logs", type=Path, help="write process logs here")
    args = parser.parse_args(argv)
    plan = ChaosPlan(
        requests=args.requests,
        fault_seconds=args.minutes * 60,
        settle_seconds=args.settle_minutes * 60,
        workers=args.workers,
        concurrency=args.concurrency,
        kills=args.kills,
        max_batch_requests=args.max_batch_requests,
        lost_creates=args.lost_creates,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="batchline-chaos-") as scratch:
        work_dir = args.keep_logs or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        with scratch_database(PG_ADMIN_URL) as db_url:
            figures = ChaosRun(plan, work_dir, db_url, say=lambda s: print(s, flush=True)).run()
    print("\n".join(figures.lines()))
    return 0 if figures.ok and figures.accepted >= args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
