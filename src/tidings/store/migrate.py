"""Apply Tidings' own migrations (shipped in `tidings/store/migrations/`) programmatically.

Tidings records its schema version in its own table, `tidings_alembic_version`, so a service
can keep its own Alembic history (in the default `alembic_version`) in the same database.

`upgrade` is safe when several processes start at once: on PostgreSQL it holds a transaction
advisory lock around the whole upgrade (DDL is transactional there), on SQLite the upgrade runs
in one `BEGIN IMMEDIATE` transaction, which holds the database's single write lock. The process
that comes second waits, then finds the schema at head and does nothing.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

VERSION_TABLE = "tidings_alembic_version"
SCRIPT_LOCATION = "tidings.store:migrations"
LOCK_NAMESPACE = 0x7464  # first key of Tidings' two-int advisory locks ("td"), apart from one-bigint locks
MIGRATION_LOCK = 1


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
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                {"namespace": LOCK_NAMESPACE, "key": MIGRATION_LOCK},
            )
        await connection.run_sync(_upgrade, metadata)


def _upgrade(connection: Connection, metadata: MetaData | None) -> None:
    command.upgrade(alembic_config(connection), "head")
    if metadata is not None:
        metadata.create_all(connection)
