"""The million case's per-stage cost: the worker's task runtimes, read from its log."""

from __future__ import annotations

from bench.end_to_end import occupied_seconds, task_seconds, task_spans

# What a worker at --loglevel=INFO writes, with the time prefix cut for length.
TEXT_LOG = b"""\
[INFO/MainProcess] Task batchline.intake[3f1c] received
[INFO/ForkPoolWorker-1] Task batchline.intake[3f1c] succeeded in 1.25s: 5000
[INFO/ForkPoolWorker-2] Task batchline.submit_batch[9a0e] succeeded in 4.5s: 'submitted'
[INFO/ForkPoolWorker-1] Task batchline.intake[77aa] succeeded in 0.75s: 0
[ERROR/ForkPoolWorker-1] Task batchline.ingest_batch[1b2b] raised unexpected: OperationalError()
[INFO/ForkPoolWorker-2] Task myapp.other[00ff] succeeded in 9.0s: None
"""

JSON_LOG = (
    b'{"level":"INFO","logger":"celery.app.trace","event":"Task batchline.poll_batch'
    b'[cdaf-9a] succeeded in 0.0122s: True","data":{"runtime":0.0122}}\n'
)


def test_task_seconds__sums_each_batchline_task_that_succeeded() -> None:
    busy = task_seconds(TEXT_LOG + JSON_LOG)

    assert busy == {"intake": 2.0, "submit_batch": 4.5, "poll_batch": 0.0122}


def test_task_seconds__an_empty_log_is_no_work() -> None:
    assert task_seconds(b"") == {}


# The text format the benchmark's worker writes (the time is the task's end), the logger's name cut.
TIMED_LOG = b"""\
2026-11-30 05:34:10,000 INFO Task batchline.submit_batch[a1] succeeded in 4.0s: 'submitted'
2026-11-30 05:34:12,000 INFO Task batchline.submit_batch[b2] succeeded in 4.0s: 'submitted'
2026-11-30 05:34:12,500 INFO Task batchline.intake[c3] succeeded in 9.5s: 100
2026-11-30 05:34:20,000 INFO Task batchline.submit_batch[d4] succeeded in 1.0s: 'submitted'
2026-11-30 05:34:20,000 ERROR Task batchline.ingest_batch[e5] raised unexpected: OperationalError()
"""


def test_occupied_seconds__counts_the_time_tasks_run_at_once_once() -> None:
    spans = task_spans(TIMED_LOG)

    # 06-10 and 08-12 overlap: 6 s in which a submit ran, then 19-20; busy would say 9.
    assert occupied_seconds(spans, ("submit_batch",)) == 7.0
    assert task_seconds(TIMED_LOG)["submit_batch"] == 9.0
    assert occupied_seconds(spans, ("intake", "submit_batch")) == 9.5 + 1.0
    assert occupied_seconds(spans, ("ingest_batch",)) == 0.0
