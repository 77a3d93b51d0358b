"""`dialect_for` and the dialect objects' statement helpers (no database: engines are not connected)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tidings.errors import ConfigurationError
from tidings.store.dialect import dialect_for, dialect_named
from tidings.store.postgres import PostgresDialect
from tidings.store.sqlite import SQLiteDialect
from tidings.store.tables import sagas


def test_one_dialect_object_per_database_found_from_an_engine_or_a_session() -> None:
    engine = create_async_engine("postgresql+asyncpg://u@127.0.0.1:1/x")
    dialect = dialect_for(engine)
    assert isinstance(dialect, PostgresDialect)
    assert dialect_for(AsyncSession(engine)) is dialect  # cached: nothing built per call
    assert dialect_for(create_async_engine("postgresql+asyncpg://u@127.0.0.1:1/y")) is dialect
    assert isinstance(dialect_named("sqlite"), SQLiteDialect)
    assert (dialect.concurrent_writers, dialect_named("sqlite").concurrent_writers) == (True, False)


def test_an_unbound_session_or_an_unknown_database_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        dialect_for(AsyncSession())
    with pytest.raises(ConfigurationError):
        dialect_named("mysql")


def test_for_update_locks_rows_on_postgresql_and_is_a_no_op_on_sqlite() -> None:
    statement = select(sagas).where(sagas.c.saga == "s")
    compiler = create_async_engine("postgresql+asyncpg://u@127.0.0.1:1/x").dialect
    locked = dialect_named("postgresql").for_update(statement, skip_locked=True)
    assert str(locked.compile(dialect=compiler)).endswith("FOR UPDATE SKIP LOCKED")
    assert str(dialect_named("postgresql").for_update(statement).compile(dialect=compiler)).endswith("FOR UPDATE")
    assert dialect_named("sqlite").for_update(statement, skip_locked=True) is statement


def test_sqlite_cannot_notify_so_its_relay_polls() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///unused.db")
    assert dialect_for(engine).listener(engine, "orders", lambda: None) is None
