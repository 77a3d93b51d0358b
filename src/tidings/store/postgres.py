"""The PostgreSQL store dialect (asyncpg): concurrent writers, row locks, advisory locks, NOTIFY.

- Claims are `INSERT ... ON CONFLICT DO NOTHING RETURNING`: a second transaction claiming the same
  id waits on the first one's uncommitted row, then sees the conflict.
- `add_outbox` is one round trip. Concurrent transactions draw ids before they commit, so it first
  takes a transaction-scoped advisory lock per (owner, partition key): transactions with events
  of one key are serialized from the add to the commit, and their ids are in commit order. The
  same statement queues `pg_notify('tidings_outbox', source)`, delivered at commit, which wakes
  the relays of other processes (`listener`).
- Claims and `add_outbox` are `Prepared`: on a connection in a transaction (the unit of work's)
  they run on the driver, as a handler's statements do (ADR 0036); on a session, through it.
- The relay's cycle is two statements in one transaction: `relay_read` locks the source's relay
  row (`FOR UPDATE SKIP LOCKED`: the lock is the relay's turn, see `tidings.store.lease`) and
  reads the batch; `relay_settle` deletes what the broker confirmed and counts it. Both run on
  the asyncpg connection in its own transaction (`relay_transaction`), as prepared statements
  from asyncpg's cache: a third of the CPU of the same statements through SQLAlchemy Core.
- Migrations of several processes are serialized by a transaction advisory lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import GenerativeSelect, String, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from tidings.errors import ConfigurationError
from tidings.store import tls
from tidings.store.notify import CHANNEL, Listener
from tidings.store.prepared import Prepared, Row
from tidings.store.relay_view import RelayView
from tidings.store.tables import relay

if TYPE_CHECKING:
    from tidings.envelope import Envelope
    from tidings.store.transaction import Executor

S = TypeVar("S", bound=GenerativeSelect)

LOCK_NAMESPACE = 0x7464  # first key of Tidings' two-int advisory locks ("td"), apart from one-bigint locks
MIGRATION_LOCK = 1

# Built once: building a statement per call costs more CPU than executing it.
# The WHERE skips an id claimed before migration 0004 (source ''): one more probe of the key's index.
_CLAIM = Prepared(
    text(
        """
INSERT INTO tidings_inbox (consumer_group, source, event_id, claimed_at)
SELECT CAST(:consumer_group AS varchar), CAST(:source AS varchar), CAST(:event_id AS varchar),
       CAST(:claimed_at AS double precision)
WHERE NOT EXISTS (SELECT 1 FROM tidings_inbox
                  WHERE consumer_group = :consumer_group AND source = '' AND event_id = :event_id)
ON CONFLICT DO NOTHING
RETURNING event_id
"""
    ).columns(event_id=String)
)
_CLAIM_MANY = Prepared(
    text(
        """
INSERT INTO tidings_inbox (consumer_group, source, event_id, claimed_at)
SELECT CAST(:consumer_group AS varchar), k.source, k.event_id, CAST(:claimed_at AS double precision)
FROM unnest(CAST(:sources AS varchar[]), CAST(:event_ids AS varchar[])) AS k(source, event_id)
WHERE NOT EXISTS (SELECT 1 FROM tidings_inbox
                  WHERE consumer_group = :consumer_group AND source = '' AND event_id = k.event_id)
ON CONFLICT DO NOTHING
RETURNING source, event_id
"""
    ).columns(source=String, event_id=String)
)
_ENSURE_RELAY_ROW = postgresql.insert(relay).on_conflict_do_nothing()
# No row: the relay row is missing or another relay's transaction holds it. A row with a NULL id:
# the lock is ours and the outbox is empty. The lateral read uses the (source, id) index.
# Read committed: the statement reads one snapshot, taken before the lock was granted; a relay
# whose commit came in between (it deleted rows) changed the row, so the locked version (`xmin`)
# differs from the snapshot's (`fresh` is false), and the batch is read again by a statement of its own.
_RELAY_READ = """
SELECT r.owner, r.lease_until, r.version = (SELECT xmin::text FROM tidings_relay WHERE source = $1) AS fresh,
       o.id, o.headers, o.body, o.created_at
FROM (SELECT source, owner, lease_until, xmin::text AS version FROM tidings_relay
      WHERE source = $1 FOR UPDATE SKIP LOCKED) AS r
LEFT JOIN LATERAL (SELECT id, headers, body, created_at FROM tidings_outbox
                   WHERE source = r.source AND id <> ALL($3::bigint[])
                   ORDER BY id LIMIT $2) AS o ON true
ORDER BY o.id
"""
_RELAY_REREAD = """
SELECT id, headers, body, created_at FROM tidings_outbox
WHERE source = $1 AND id <> ALL($3::bigint[]) ORDER BY id LIMIT $2
"""
# A data-modifying CTE runs to completion whether or not the UPDATE reads it. The transaction's
# commit then does not wait for the WAL flush: it deletes rows that were published already, and
# losing it to a server crash only publishes them again (at-least-once), as a relay crash does.
_RELAY_SETTLE = """
WITH gone AS (DELETE FROM tidings_outbox WHERE id = ANY($1::bigint[])),
     async AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
UPDATE tidings_relay SET published = published + $2, owner = $4,
       last_published_at = CASE WHEN $2 > 0 THEN $3::double precision ELSE last_published_at END
WHERE source = $5 AND EXISTS (SELECT 1 FROM async)
"""
_LOCK_MIGRATIONS = text("SELECT pg_advisory_xact_lock(:namespace, :key)")
# The CTE takes the per-key advisory locks and queues the notification; its aggregates finish
# before the INSERT draws the first id (nextval).
_ADD = Prepared(
    text(
        """
WITH gate AS MATERIALIZED (
    SELECT (SELECT count(pg_advisory_xact_lock(:namespace, hashtext(k))::text)
            FROM unnest(CAST(:keys AS text[])) AS k) AS locks,
           (SELECT count(pg_notify(:channel, s)::text)
            FROM unnest(CAST(:notify AS text[])) AS s) AS notified
)
INSERT INTO tidings_outbox (source, event_id, headers, body, created_at)
SELECT r.source, r.event_id, r.headers, r.body, :created_at
FROM gate, unnest(CAST(:sources AS text[]), CAST(:event_ids AS text[]), CAST(:headers AS text[]),
                  CAST(:bodies AS bytea[])) AS r(source, event_id, headers, body)
WHERE gate.locks >= 0 AND gate.notified >= 0
"""
    )
)


async def _rows(executor: Executor, statement: Prepared, parameters: dict[str, Any]) -> list[Row]:
    """`statement`'s rows: on the driver on a connection in a transaction (the unit of work's, ADR
    0036), through SQLAlchemy on a session."""
    if isinstance(executor, AsyncConnection):
        return await statement.rows(executor, parameters)
    result = await executor.execute(statement.statement, parameters)
    return [] if isinstance(result, CursorResult) and not result.returns_rows else list(result)


class PostgresDialect:
    """`StoreDialect` for PostgreSQL through asyncpg."""

    name = "postgresql"
    concurrent_writers = True

    def create_engine(self, url: URL, *, pool_size: int, busy_timeout: float, read_only: bool) -> AsyncEngine:
        """A pool of `pool_size` connections and as many overflow ones; `busy_timeout` and
        `read_only` concern SQLite only. Raises `ConfigurationError` without asyncpg."""
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise ConfigurationError("PostgreSQL needs asyncpg: pip install 'tidings[postgres]'") from None
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        secure = tls.connect_argument(url.query)  # sslmode & co. (tidings.store.tls)
        if secure is not None:

            @event.listens_for(engine.sync_engine, "do_connect")
            def _tls(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
                for name in tls.OPTIONS:
                    cparams.pop(name, None)
                cparams["ssl"] = secure

        return engine

    async def lock_migrations(self, connection: AsyncConnection) -> None:
        """Take Tidings' migration advisory lock until `connection`'s transaction ends (DDL is
        transactional here, so the process that comes second finds the schema at head)."""
        await connection.execute(_LOCK_MIGRATIONS, {"namespace": LOCK_NAMESPACE, "key": MIGRATION_LOCK})

    async def claim(self, executor: Executor, group: str, source: str, event_id: str, claimed_at: float) -> bool:
        """`INSERT ... ON CONFLICT DO NOTHING RETURNING`; True if a row came back (it was new)."""
        parameters = {"consumer_group": group, "source": source, "event_id": event_id, "claimed_at": claimed_at}
        return bool(await _rows(executor, _CLAIM, parameters))

    async def claim_many(
        self, executor: Executor, group: str, keys: Sequence[tuple[str, str]], claimed_at: float
    ) -> set[tuple[str, str]]:
        """One `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING` of every key."""
        parameters = {
            "consumer_group": group,
            "claimed_at": claimed_at,
            "sources": [source for source, _ in keys],
            "event_ids": [event_id for _, event_id in keys],
        }
        return {(row.source, row.event_id) for row in await _rows(executor, _CLAIM_MANY, parameters)}

    async def add_outbox(
        self,
        executor: Executor,
        owners: Sequence[str],
        envelopes: Sequence[Envelope],
        encoded: Sequence[tuple[str, bytes]],
        now: float,
    ) -> None:
        """One statement: the per-key advisory locks, the notification, the rows (module docstring).
        The locks are held until the caller's transaction ends."""
        pairs = zip(owners, envelopes, strict=True)
        parameters = {
            "namespace": LOCK_NAMESPACE,
            "keys": sorted({f"{o}\x1f{e.partitionkey}" for o, e in pairs if e.partitionkey is not None}),
            "channel": CHANNEL,
            "notify": sorted(set(owners)),
            "created_at": now,
            "sources": list(owners),
            "event_ids": [e.id for e in envelopes],
            "headers": [headers for headers, _ in encoded],
            "bodies": [body for _, body in encoded],
        }
        await _rows(executor, _ADD, parameters)

    async def ensure_relay_row(self, session: AsyncSession, source: str) -> None:
        """`INSERT ... ON CONFLICT DO NOTHING` of the source's relay row."""
        await session.execute(_ENSURE_RELAY_ROW, {"source": source})

    @contextlib.asynccontextmanager
    async def relay_transaction(self, connection: AsyncConnection) -> AsyncIterator[None]:
        """asyncpg's own transaction on the driver (SQLAlchemy's would begin on the first statement
        it runs, and the relay's statements bypass it, and with them its disconnect handling): a
        connection that was lost, or left in a transaction by an interrupted rollback, is
        invalidated, never returned to the pool so."""
        driver = await _driver_of(connection)
        try:
            async with driver.transaction():
                yield
        except BaseException:
            if driver.is_closed() or driver.is_in_transaction():  # lost, or its rollback did not finish
                await connection.invalidate()
            raise

    async def relay_read(
        self, connection: AsyncConnection, source: str, *, limit: int, skip: Collection[int]
    ) -> RelayView | None:
        """Lock the relay row (skipping it if locked) and read the batch, in one statement; in a second
        one if another relay's commit came between the statement's snapshot and the lock. On the
        driver, in `relay_transaction` (raises `ConfigurationError` outside one: the lock would end
        with the statement)."""
        driver = await _in_transaction(connection)
        result = await driver.fetch(_RELAY_READ, source, limit, list(skip))
        if not result:
            return None
        holder, lease_until, fresh = result[0][:3]
        if fresh:
            rows = [(row[3], row[4], row[5], row[6]) for row in result if row[3] is not None]
        else:
            rows = [tuple(row) for row in await driver.fetch(_RELAY_REREAD, source, limit, list(skip))]
        return RelayView(holder=holder, lease_until=lease_until, rows=rows)

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
        """One statement on the driver: delete `ids`, count them, note `owner` (the row changes even
        when `ids` is empty, which `relay_read` relies on), and let the commit skip the wait for the
        WAL flush (`synchronous_commit` off for this transaction); `lease_until` concerns SQLite only."""
        driver = await _in_transaction(connection)
        await driver.execute(_RELAY_SETTLE, list(ids), len(ids), now, owner, source)

    def for_update(self, statement: S, *, skip_locked: bool = False) -> S:
        """`statement ... FOR UPDATE [SKIP LOCKED]`."""
        return statement.with_for_update(skip_locked=skip_locked)

    def listener(self, engine: AsyncEngine, source: str, callback: Callable[[], None]) -> Listener:
        """`LISTEN tidings_outbox` on a dedicated connection, calling `callback` for `source`'s commits."""
        return Listener(engine.url, CHANNEL, source, callback)


async def _driver_of(connection: AsyncConnection) -> Any:
    """The asyncpg connection under `connection` (no transaction is started)."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def _in_transaction(connection: AsyncConnection) -> Any:
    driver = await _driver_of(connection)
    if not driver.is_in_transaction():
        raise ConfigurationError("the relay's statements run in the dialect's relay_transaction")
    return driver
