"""Fixtures for the store tests: a fresh database per test, SQLite file or PostgreSQL database.

`database_url` is parametrized over both; the PostgreSQL case is marked `postgres`, so it is
skipped (or, in CI, failed) when PostgreSQL is not reachable on 127.0.0.1:5432.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration import brokers
from tidings.store import Store

POSTGRES_ADMIN = "postgresql://postgres:postgres@127.0.0.1:5432/postgres"


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new, uniquely named PostgreSQL database, dropped on exit; yields its URL."""
    import asyncpg

    name = f"tidings_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute: sqlite:////tmp/...


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of either kind, private to the test."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "service.db")
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """An open, migrated `Store` on the test's database."""
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def broker_url(tmp_path: Path) -> str:
    """A private SQLite broker file (the multi-process broker)."""
    return f"sqlite:///{tmp_path / 'broker.db'}?lease=2"


@pytest.fixture(params=["memory", "sqlite"])
def any_broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A private broker: in-process memory, or the SQLite broker file."""
    if request.param == "memory":
        return f"memory://store-test-{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'broker.db'}?lease=2"


@pytest.fixture(params=brokers.EVERY)
async def reliable_broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh namespace on every broker the reliable path runs over: memory, the SQLite broker,
    a RabbitMQ vhost, a Kafka topic prefix (deleted after the test)."""
    async with request.param.target(tmp_path) as target:
        yield target.url
