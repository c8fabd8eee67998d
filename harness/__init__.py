"""The service harness: batchline's worker, beat and emulator as real processes,
and the faults tests inject into them (hostile APIs, poison data, a full Redis,
lost answers, chaos plans).

Shared by `tests/` and the long runs done by hand (`python -m harness.run_chaos`,
`python -m harness.run_soak`), so that no tool depends on the test tree. It is
not part of the installed `batchline` package.
"""
