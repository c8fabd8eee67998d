"""The SQL adapter: every statement the pipeline runs, one module per step.

The modules mirror `batchline.services` (intake, assemble, submit, poll,
ingest_lease, ingest, reconcile), beside `controls` (the pause and deployment
rows), `cancel` (cancellations a person asks for) and `rows` (shared pieces).

The guarded update
------------------
Every state change is an UPDATE guarded by the states the row may move from
(`WHERE state IN (:allowed)`, taken from `batchline.domain.states`). Its row
count says whether this caller won the move; a caller that lost does nothing
more. That one idiom is what makes a duplicated Celery message, a second beat
or a re-run ingestion harmless: two workers may try the same move, and exactly
one of them changes the row.
"""
