"""`Store`: a service's own database, through SQLAlchemy 2 async, with Tidings' tables migrated.

URLs (plain forms are normalised to the async driver)::

    sqlite:///data/orders.db          -> sqlite+aiosqlite:///data/orders.db    (the default kind)
    postgres://u:p@host/db            -> postgresql+asyncpg://u:p@host/db
    postgresql://u:p@host/db          -> postgresql+asyncpg://u:p@host/db

SQLite is used the way a single-writer database wants to be used: WAL journal, a busy timeout,
`synchronous=FULL` (a commit that returned survives a power cut, which the inbox relies on), and
every transaction opened with `BEGIN IMMEDIATE` so it holds the write lock from its first
statement. Transactions are therefore serializable and never fail half-way with "database is
locked". Each process uses one connection (pool of 1): its transactions queue in asyncio instead
of spinning in SQLite's busy handler; other processes wait up to the busy timeout. Do not open a
second `store.session()` transaction while one is open in the same task: on SQLite it would
wait for the connection the first one holds.

A service creates its own business tables by passing its SQLAlchemy `MetaData` (for example
`Base.metadata` of its declarative models) to `Store.open(url, metadata=...)`: missing tables are
created after Tidings' migrations, under the same cross-process lock. That is `create_all`, which
never alters an existing table; a service whose schema evolves keeps its own Alembic history
beside Tidings' (which lives in `tidings_alembic_version`), or calls `store.run_sync(...)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, MetaData, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only

from tidings.errors import ConfigurationError
from tidings.store.migrate import upgrade

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
        raise ConfigurationError(f"not a database URL: {url!r}") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path.db or postgresql://..."
        )
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ConfigurationError("an in-memory SQLite database cannot be shared: give a file, sqlite:///path.db")
    return parsed.set(drivername=driver)


class Store:
    """An open service database: its engine, sessions for units of work, and Tidings' tables.

    Open with `await Store.open(url)` (which applies the migrations) and `await store.close()`
    when done; `close` disposes of every connection.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
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
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

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
    """The dialect name ("sqlite" or "postgresql") of the database `session` is bound to."""
    bind = session.bind
    if bind is None:
        raise ConfigurationError("the session is not bound to a Store's engine")
    return bind.dialect.name


async def sqlite_connection(session: AsyncSession) -> Any:
    """The aiosqlite connection under `session`'s transaction (which this starts).

    `inbox.claim` and `outbox.add` run on it directly: they are on every event's path, and through
    SQLAlchemy each statement costs four hand-offs to aiosqlite's thread instead of one. This is
    sound because a `Store`'s SQLite transactions begin eagerly (`BEGIN IMMEDIATE` in the engine's
    begin event), so the statements are inside the session's transaction.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if driver is None or not driver.in_transaction:
        raise ConfigurationError("the session's SQLite connection is not in a transaction: use a Store's session")
    return driver


def create_engine(
    url: str | URL, *, pool_size: int = 10, busy_timeout: float = 30.0, read_only: bool = False
) -> AsyncEngine:
    """The async engine for `url`, set up as described in the module docstring."""
    parsed = normalise_url(url)
    if parsed.drivername.startswith("postgresql"):
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise ConfigurationError("PostgreSQL needs asyncpg: pip install 'tidings[postgres]'") from None
        return create_async_engine(parsed, pool_size=pool_size, max_overflow=pool_size)
    engine = create_async_engine(
        parsed,
        pool_size=1,
        max_overflow=0,
        pool_timeout=max(60.0, busy_timeout * 2),
        pool_reset_on_return=None,  # _reset below rolls back only what is still open
    )
    _configure_sqlite(engine, busy_timeout, "BEGIN" if read_only else "BEGIN IMMEDIATE")
    return engine


def _switch_to_wal(cursor: Any, busy_timeout: float) -> None:
    """Put the database file in WAL mode (a no-op once it is), waiting out other processes.

    Switching needs an exclusive lock and SQLite does not use the busy handler for it: several
    processes opening a new database at once (one of them migrating) get "database is locked"
    at once, so it is retried here for up to `busy_timeout` seconds.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        await_only(asyncio.sleep(0.02))


def _configure_sqlite(engine: AsyncEngine, busy_timeout: float, begin: str) -> None:
    milliseconds = int(busy_timeout * 1000)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own: see _begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {milliseconds}")
            _switch_to_wal(cursor, busy_timeout)
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    # Each call into aiosqlite is a hand-off to its thread: BEGIN and the pool's reset go to the
    # driver directly (one hand-off, and none for a reset after a commit) instead of through a
    # cursor (three).
    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        driver: Any = connection.connection.driver_connection
        await_only(driver.execute(begin))

    @event.listens_for(engine.sync_engine, "reset")
    def _reset(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        try:
            open_transaction = dbapi_connection.driver_connection.in_transaction
        except ValueError:  # aiosqlite's connection is already closed: nothing to reset
            return
        if open_transaction:
            dbapi_connection.rollback()
