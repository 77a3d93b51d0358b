"""`Store`: a service's own database, through SQLAlchemy 2 async, with Tidings' tables migrated.

URLs (plain forms are normalised to the async driver)::

    sqlite:///data/orders.db          -> sqlite+aiosqlite:///data/orders.db    (the default kind)
    postgres://u:p@host/db            -> postgresql+asyncpg://u:p@host/db
    postgresql://u:p@host/db          -> postgresql+asyncpg://u:p@host/db

What differs between the two is in one dialect object per database (`tidings.store.dialect`):
`store.dialect`. On SQLite every transaction holds the database's write lock from its first
statement and each process uses one connection (see `tidings.store.sqlite`): do not open a
second `store.session()` transaction while one is open in the same task, it would wait for the
connection the first one holds.

A service creates its own business tables by passing its SQLAlchemy `MetaData` (for example
`Base.metadata` of its declarative models) to `Store.open(url, metadata=...)`: missing tables are
created after Tidings' migrations, under the same cross-process lock. That is `create_all`, which
never alters an existing table; a service whose schema evolves keeps its own Alembic history
beside Tidings' (which lives in `tidings_alembic_version`), or calls `store.run_sync(...)`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, MetaData
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tidings.errors import ConfigurationError
from tidings.store.dialect import StoreDialect, dialect_for, dialect_named
from tidings.store.migrate import upgrade
from tidings.transport.urls import redact

T = TypeVar("T")

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalise_url(url: str | URL) -> URL:
    """The async-driver form of a database URL; raises `ConfigurationError` for anything else."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(f"not a database URL: {redact(str(url))!r}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path.db or postgresql://..."
        )
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ConfigurationError("an in-memory SQLite database cannot be shared: give a file, sqlite:///path.db")
    return parsed.set(drivername=driver)


def check_folder(url: URL) -> None:
    """An SQLite file's folder must exist: SQLite's own error ("unable to open database file")
    never says that this is what is wrong."""
    if url.get_backend_name() == "sqlite" and not Path(str(url.database)).parent.is_dir():
        folder = str(Path(str(url.database)).parent)
        raise ConfigurationError(f"the folder {folder!r} of the SQLite database does not exist: create it first")


class Store:
    """An open service database: its engine, sessions for units of work, and Tidings' tables.

    Open with `await Store.open(url)` (which applies the migrations) and `await store.close()`
    when done; `close` disposes of every connection.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: StoreDialect = dialect_for(engine)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(
        cls,
        url: str | URL,
        *,
        metadata: MetaData | None = None,
        migrate: bool = True,
        pool_size: int = 10,
        busy_timeout: float = 30.0,
        read_only: bool = False,
    ) -> Store:
        """Connect to `url` and, unless `migrate=False`, apply Tidings' migrations and create
        `metadata`'s missing tables. `pool_size` is for PostgreSQL; `busy_timeout` (seconds) is how
        long a SQLite transaction waits for another process's write lock. `read_only` (admin tools)
        makes SQLite transactions begin deferred: they read a snapshot without waiting for writers,
        and must not write."""
        engine = create_engine(url, pool_size=pool_size, busy_timeout=busy_timeout, read_only=read_only)
        store = cls(engine)
        try:
            if migrate:
                await store.migrate(metadata)
        except ssl.SSLError as error:  # a refused certificate: one line naming the server, no password
            await store.close()
            where = normalise_url(url).render_as_string(hide_password=True)
            raise ConfigurationError(f"TLS to the database {where} failed: {error.strerror or error}") from None
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def is_postgres(self) -> bool:
        """Whether the database is PostgreSQL (prefer asking `store.dialect` what differs)."""
        return self.dialect.name == "postgresql"

    def session(self) -> AsyncSession:
        """A new session; use as `async with store.session() as s, s.begin(): ...` for one transaction."""
        return self._sessions()

    async def migrate(self, metadata: MetaData | None = None) -> None:
        """Apply Tidings' migrations, then create `metadata`'s missing tables; safe from several processes."""
        await upgrade(self.engine, metadata)

    async def run_sync(self, function: Callable[[Connection], T]) -> T:
        """Run `function(connection)` in one transaction, e.g. `await store.run_sync(Base.metadata.create_all)`."""
        async with self.engine.begin() as connection:
            return await connection.run_sync(function)

    async def close(self) -> None:
        """Close every pooled connection; sessions must be finished first."""
        await self.engine.dispose()


def dialect_of(session: AsyncSession) -> str:
    """The dialect name ("sqlite" or "postgresql") of the database `session` is bound to.

    Kept for callers that still branch on the name; `dialect_for(session)` gives the object.
    """
    return dialect_for(session).name


def create_engine(
    url: str | URL, *, pool_size: int = 10, busy_timeout: float = 30.0, read_only: bool = False
) -> AsyncEngine:
    """The async engine for `url`, set up by its database's dialect (`StoreDialect.create_engine`)."""
    parsed = normalise_url(url)
    check_folder(parsed)
    dialect = dialect_named(parsed.get_backend_name())
    return dialect.create_engine(parsed, pool_size=pool_size, busy_timeout=busy_timeout, read_only=read_only)
