"""The SQLite store dialect (aiosqlite): one writer at a time, and the fast paths that suit it.

SQLite is used the way a single-writer database wants to be used: WAL journal, a busy timeout,
`synchronous=FULL` (a commit that returned survives a power cut, which the inbox relies on), and
every transaction opened with `BEGIN IMMEDIATE` so it holds the write lock from its first
statement. Transactions are therefore serializable and never fail half-way with "database is
locked", row locks are not needed (`for_update` is a no-op) and migrations need no extra lock.
Each process uses one connection (pool of 1): its transactions queue in asyncio instead of
spinning in SQLite's busy handler; other processes wait up to the busy timeout.

Statements through SQLAlchemy make at most one hand-off to aiosqlite's thread each, not three or
four, and none inside a transaction of a store that writes (`tidings.store.sqlite_cursor`, ADRs
0033 and 0035). `claim` and `add_outbox` run on the driver's connection directly: they are on
every event's path, and that also skips SQLAlchemy's own work. This is sound because the engine's
transactions begin eagerly (`BEGIN IMMEDIATE` in its begin event), so the statements are inside
the session's transaction. The relay's statements (`relay_read`, `relay_settle`) run on the
driver too, for the same reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, GenerativeSelect, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.util import await_only

from tidings.errors import ConfigurationError
from tidings.store.relay_view import RelayView
from tidings.store.sqlite_cursor import rows_of, run, use_one_trip_cursors
from tidings.store.tables import relay

if TYPE_CHECKING:
    from tidings.envelope import Envelope
    from tidings.store.transaction import Executor

S = TypeVar("S", bound=GenerativeSelect)

# The WHERE skips an id claimed before migration 0004 (source ''); it also keeps SQLite's parser
# from reading ON CONFLICT as part of the SELECT.
_CLAIM = (
    "INSERT INTO tidings_inbox (consumer_group, source, event_id, claimed_at) SELECT ?1, ?2, ?3, ?4"
    " WHERE NOT EXISTS (SELECT 1 FROM tidings_inbox WHERE consumer_group = ?1 AND source = '' AND event_id = ?3)"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)
_CLAIM_MANY = (
    "INSERT INTO tidings_inbox (consumer_group, source, event_id, claimed_at)"
    " SELECT ?1, k.source, k.event_id, ?2 FROM (SELECT json_extract(value, '$[0]') AS source,"
    " json_extract(value, '$[1]') AS event_id"
    " FROM json_each(?3)) AS k WHERE NOT EXISTS (SELECT 1 FROM tidings_inbox"
    " WHERE consumer_group = ?1 AND source = '' AND event_id = k.event_id)"
    " ON CONFLICT DO NOTHING RETURNING source, event_id"
)
_ADD = "INSERT INTO tidings_outbox (source, event_id, headers, body, created_at) VALUES (?, ?, ?, ?, ?)"
_ENSURE_RELAY_ROW = sqlite.insert(relay).on_conflict_do_nothing()
# No row: the relay row is missing. A row with a NULL id: the outbox is empty. Uses the (source, id) index.
_RELAY_READ = (
    "SELECT r.owner, r.lease_until, o.id, o.headers, o.body, o.created_at FROM tidings_relay AS r"
    " LEFT JOIN (SELECT id, headers, body, created_at FROM tidings_outbox WHERE source = ?1"
    " AND id NOT IN (SELECT value FROM json_each(?3)) ORDER BY id LIMIT ?2) AS o ON 1"
    " WHERE r.source = ?1 ORDER BY o.id"
)
_RELAY_DELETE = "DELETE FROM tidings_outbox WHERE id IN (SELECT value FROM json_each(?1))"
_RELAY_COUNT = (
    "UPDATE tidings_relay SET published = published + ?2,"
    " last_published_at = CASE WHEN ?2 > 0 THEN ?3 ELSE last_published_at END,"
    " lease_until = CASE WHEN owner = ?4 THEN ?5 ELSE lease_until END WHERE source = ?1"
)


class SQLiteDialect:
    """`StoreDialect` for SQLite through aiosqlite."""

    name = "sqlite"
    concurrent_writers = False

    def create_engine(self, url: URL, *, pool_size: int, busy_timeout: float, read_only: bool) -> AsyncEngine:
        """One pooled connection (`pool_size` is ignored), set up as the module docstring says;
        `read_only` (admin tools) begins transactions deferred: they read a snapshot without waiting
        for writers, and must not write."""
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=max(60.0, busy_timeout * 2),
            pool_reset_on_return=None,  # _reset below rolls back only what is still open
        )
        _configure(engine, busy_timeout, read_only=read_only)
        return engine

    async def lock_migrations(self, connection: AsyncConnection) -> None:
        """Nothing to do: the migration's `BEGIN IMMEDIATE` transaction holds the write lock."""

    async def claim(self, executor: Executor, group: str, source: str, event_id: str, claimed_at: float) -> bool:
        """Insert-or-ignore the inbox row on the raw connection; True if it was new."""
        driver = await driver_connection(executor)
        return bool(await run(driver, rows_of, _CLAIM, (group, source, event_id, claimed_at)))

    async def claim_many(
        self, executor: Executor, group: str, keys: Sequence[tuple[str, str]], claimed_at: float
    ) -> set[tuple[str, str]]:
        """One insert-or-ignore of every key (passed as a JSON array) on the raw connection."""
        driver = await driver_connection(executor)
        rows = await run(driver, rows_of, _CLAIM_MANY, (group, claimed_at, json.dumps(keys)))
        return {(source, event_id) for source, event_id in rows}

    async def add_outbox(
        self,
        executor: Executor,
        owners: Sequence[str],
        envelopes: Sequence[Envelope],
        encoded: Sequence[tuple[str, bytes]],
        now: float,
    ) -> None:
        """One `executemany` on the raw connection. SQLite serializes transactions, so `id` order is
        commit order without any lock; other processes' relays poll (there is no notification)."""
        rows = [
            (owner, e.id, headers, body, now)
            for owner, e, (headers, body) in zip(owners, envelopes, encoded, strict=True)
        ]
        driver = await driver_connection(executor)
        await run(driver, rows_of, _ADD, rows, True)  # executemany

    async def ensure_relay_row(self, session: AsyncSession, source: str) -> None:
        """`INSERT ... ON CONFLICT DO NOTHING` of the source's relay row."""
        await session.execute(_ENSURE_RELAY_ROW, {"source": source})

    def relay_transaction(self, connection: AsyncConnection) -> AbstractAsyncContextManager[object]:
        """The connection's own transaction: its begin event issues `BEGIN IMMEDIATE`."""
        return connection.begin()

    async def relay_read(
        self, connection: AsyncConnection, source: str, *, limit: int, skip: Collection[int]
    ) -> RelayView | None:
        """One statement on the driver: in a transaction, or alone on a read-only connection (its own
        snapshot). No lock is taken: the lease (`tidings.store.lease`) says which relay publishes."""
        driver = await _driver_of(connection)
        result = await run(driver, rows_of, _RELAY_READ, (source, limit, json.dumps(sorted(skip))))
        if not result:
            return None
        first = result[0]
        rows = [(row[2], row[3], row[4], row[5]) for row in result if row[2] is not None]
        return RelayView(holder=first[0], lease_until=first[1], rows=rows)

    async def relay_settle(
        self,
        connection: AsyncConnection,
        source: str,
        ids: Sequence[int],
        *,
        now: float,
        owner: str,
        lease_until: float,
    ) -> None:
        """Two statements on the driver: delete `ids`; count them and renew `owner`'s lease if it holds it."""
        driver = await _driver_of(connection)
        if not driver.in_transaction:
            raise ConfigurationError("the relay settles in a transaction of a Store's connection")
        await run(driver, rows_of, _RELAY_DELETE, (json.dumps(list(ids)),))
        await run(driver, rows_of, _RELAY_COUNT, (source, len(ids), now, owner, lease_until))

    def for_update(self, statement: S, *, skip_locked: bool = False) -> S:
        """`statement` unchanged: the transaction already holds the database's write lock."""
        return statement

    def listener(self, engine: AsyncEngine, source: str, callback: Callable[[], None]) -> None:
        """None: SQLite cannot notify another process; its relay polls."""
        return None


async def driver_connection(executor: Executor) -> Any:
    """The aiosqlite connection under `executor`'s transaction (a session's: which this starts).

    Raises `ConfigurationError` if the connection is not in a transaction (the session is not a
    `Store`'s, whose SQLite transactions begin eagerly).
    """
    connection = await executor.connection() if isinstance(executor, AsyncSession) else executor
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if driver is None or not driver.in_transaction:
        raise ConfigurationError("the session's SQLite connection is not in a transaction: use a Store's session")
    return driver


async def _driver_of(connection: AsyncConnection) -> Any:
    """The aiosqlite connection under `connection` (no transaction is started)."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection


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


def _configure(engine: AsyncEngine, busy_timeout: float, *, read_only: bool) -> None:
    """Connection pragmas, the eager begin statement (`BEGIN IMMEDIATE` unless `read_only`), and a
    reset that rolls back only what is open."""
    milliseconds = int(busy_timeout * 1000)
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        use_one_trip_cursors(dbapi_connection, writes=not read_only)  # at most one trip per statement
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
