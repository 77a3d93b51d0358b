"""Column types and database creation shared by the shop's services.

Money is stored as integer cents: exact on SQLite (which has no decimal type) and PostgreSQL
alike, and sums in SQL stay exact. Timestamps are stored as UTC and always come back aware.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("services.db")

CENT = Decimal("0.01")
Seeder = Callable[[AsyncConnection], Awaitable[None]]


class Money(TypeDecorator[Decimal]):
    """A `Decimal` amount with two places, stored as integer cents."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int((value / CENT).to_integral_exact())

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) * CENT).quantize(CENT)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp, whatever the database does with time zones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def insert_ignoring_duplicates(dialect_name: str, table: Table) -> Insert:
    """`INSERT ... ON CONFLICT DO NOTHING` for the dialect: idempotent writes keyed by a unique column."""
    statement: Any = (postgresql if dialect_name == "postgresql" else sqlite).insert(table)
    result: Insert = statement.on_conflict_do_nothing()
    return result


async def ensure_database(url: str) -> None:
    """Create the PostgreSQL database `url` names if it does not exist (SQLite files create themselves)."""
    target = make_url(url)
    if target.get_backend_name() != "postgresql":
        return
    name = target.database
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        for attempt in range(5):
            async with admin.connect() as connection:
                exists = await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
                if exists:
                    return
                try:
                    await connection.execute(text(f'CREATE DATABASE "{name}"'))
                    log.info("created database %s", name)
                    return
                except Exception as error:  # concurrent CREATE DATABASE from template1; try again
                    if attempt == 4:
                        raise
                    log.info("creating database %s failed (%s); retrying", name, error)
            await asyncio.sleep(0.2 * (attempt + 1))
    finally:
        await admin.dispose()


async def drop_databases(server: str, prefix: str, services: Iterable[str]) -> None:
    """Drop each service's database `<prefix><service>` on the PostgreSQL `server` (a
    `postgresql://user:password@host:port` URL), forcing out what is still connected: the clean-up
    of a shop run on a shared server (tests, benchmarks, chaos runs)."""
    engine = create_async_engine(f"{server}/postgres".replace("postgresql", "postgresql+asyncpg"))
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            for service in services:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{prefix}{service}" WITH (FORCE)'))
    finally:
        await engine.dispose()
