"""Apply Tidings' own migrations (shipped in `tidings/store/migrations/`) programmatically.

Tidings records its schema version in its own table, `tidings_alembic_version`, so a service
can keep its own Alembic history (in the default `alembic_version`) in the same database.

`upgrade` is safe when several processes start at once: it runs in one transaction that first
takes the dialect's migration lock (`StoreDialect.lock_migrations`: a transaction advisory lock on
PostgreSQL, whose DDL is transactional; nothing on SQLite, whose `BEGIN IMMEDIATE` transaction
holds the database's single write lock). The process that comes second waits, then finds the
schema at head and does nothing.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.store.dialect import dialect_for

VERSION_TABLE = "tidings_alembic_version"
SCRIPT_LOCATION = "tidings.store:migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic `Config` for Tidings' migrations, bound to `connection` when given."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, metadata: MetaData | None = None) -> None:
    """Bring Tidings' tables to the newest revision, then create `metadata`'s missing tables.

    Both happen in one transaction, serialized against other processes doing the same.
    """
    async with engine.begin() as connection:
        await dialect_for(connection).lock_migrations(connection)
        await connection.run_sync(_upgrade, metadata)


def _upgrade(connection: Connection, metadata: MetaData | None) -> None:
    command.upgrade(alembic_config(connection), "head")
    if metadata is not None:
        metadata.create_all(connection)
