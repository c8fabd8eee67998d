VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: all install services test lint typecheck bench

all: lint typecheck test

install:
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"

services:
	bash .ci/services

test: services
	$(BIN)/pytest -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

bench:
	$(BIN)/python -m bench
