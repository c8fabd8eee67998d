"""Fixtures for the deployment tests: the compose file as Compose reads it, throwaway databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.deploy import compose_file

PG_ADMIN_URL = os.environ.get(
    "BATCHLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def dotenv() -> dict[str, str]:
    """A `.env` made from deploy/env.example with test values for the secrets."""
    return compose_file.sample_env()


@pytest.fixture(scope="session")
def config(dotenv: dict[str, str]) -> dict[str, Any]:
    return compose_file.load(dotenv)


@pytest.fixture(scope="session")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(config["services"])


@pytest.fixture(scope="session")
def raw_services() -> dict[str, dict[str, Any]]:
    """Services before interpolation: `${VAR}` references still visible."""
    return dict(compose_file.load_raw()["services"])


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty PostgreSQL database, dropped afterwards."""
    name = f"batchline_deploy_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
