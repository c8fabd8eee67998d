"""batchline's benchmark suite: `python -m bench` (see `python -m bench --help`).

Every figure is measured beside a baseline taken in the same run on the same
data (raw Redis, raw SQL, one raw HTTP call), and reported as a ratio, so the
targets hold on a noisy machine. Timings never live in the test suite.
"""
