VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: all install services test lint typecheck bench

all: lint typecheck test

# The folders worker/, models/ and migrations/ are mapped into the one namespace
# `batchline`. A strict editable install links them into build/ so that mypy
# (which cannot follow setuptools' import hooks) sees the namespace too; run
# `make install` again after adding a module.
install:
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]" --config-settings editable_mode=strict

services:
	bash .ci/services

# The suite runs in PYTEST_WORKERS pytest-xdist processes, each on its own Redis
# and PostgreSQL database (tests/conftest.py), then the tests marked `serial`
# (bounds on time) alone. 0 runs everything in one process.
PYTEST_WORKERS ?= 3

test: services
ifeq ($(PYTEST_WORKERS),0)
	$(BIN)/pytest -q
else
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) -m "not serial"
	$(BIN)/pytest -q -m serial
endif

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo  # the one-way import rules of ARCHITECTURE.md

typecheck:
	$(BIN)/mypy
	$(BIN)/mypy --strict migrations/versions/*.py

bench:
	$(BIN)/python -m bench
