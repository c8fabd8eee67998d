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

test: services
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy
	$(BIN)/mypy --strict migrations/versions/*.py

bench:
	$(BIN)/python -m bench
