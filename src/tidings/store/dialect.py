"""`StoreDialect`: what differs between the databases a `Store` runs on, behind one small protocol.

One object per database, `tidings.store.sqlite.SQLiteDialect` and `tidings.store.postgres.PostgresDialect`;
the tables' operations (`inbox`, `outbox`, `lease`), the relay and the migrations call it instead
of branching on the dialect's name. Adding a database is one more such object.

`dialect_for(session_or_engine)` finds it: one attribute walk and a dictionary look-up, no object
built, since `inbox.claim` and `outbox.add` call it for every event.

Every operation that takes a session runs in the caller's transaction and never opens, commits or
rolls one back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import GenerativeSelect
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.errors import ConfigurationError
from tidings.store.relay_view import RelayView

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from tidings.envelope import Envelope
    from tidings.store.transaction import Executor

S = TypeVar("S", bound=GenerativeSelect)


class OutboxListener(Protocol):
    """Wakes a relay when another process committed outbox rows (a hint: the relay also polls)."""

    async def ensure(self) -> None:
        """Listen, reconnecting if the connection dropped; logs and returns on failure."""

    async def close(self) -> None:
        """Stop listening and close the connection."""


class StoreDialect(Protocol):
    """The operations that differ between databases. Stateless: one instance serves every engine."""

    name: str
    """SQLAlchemy's dialect name: "sqlite", "postgresql"."""
    concurrent_writers: bool
    """Whether several transactions may write at once (row locks). If so the relay may keep one
    open across a broker call, holding the source's row lock; if not (SQLite: one write lock for
    the whole database) it reads and deletes in two transactions under a lease."""

    def create_engine(self, url: URL, *, pool_size: int, busy_timeout: float, read_only: bool) -> AsyncEngine:
        """An engine for the (normalised) `url`, with this database's pool and connection setup."""
        ...

    async def lock_migrations(self, connection: AsyncConnection) -> None:
        """Serialize migrations of several processes until `connection`'s transaction ends."""
        ...

    async def claim(self, executor: Executor, group: str, source: str, event_id: str, claimed_at: float) -> bool:
        """Insert the inbox row `(group, source, event_id)` unless it, or a claim of `(group, event_id)`
        from before migration 0004 (source ''), exists; True if it was new. The caller's transaction."""
        ...

    async def claim_many(
        self, executor: Executor, group: str, keys: Sequence[tuple[str, str]], claimed_at: float
    ) -> set[tuple[str, str]]:
        """`claim` for several `(source, event_id)` keys (distinct) in one round trip; the set of those
        that were new. The caller's transaction."""
        ...

    async def add_outbox(
        self,
        executor: Executor,
        owners: Sequence[str],
        envelopes: Sequence[Envelope],
        encoded: Sequence[tuple[str, bytes]],
        now: float,
    ) -> None:
        """Insert outbox rows (`owners`: each row's `source` column, the service whose relay publishes
        it; `encoded`: each envelope's headers and body) with `created_at=now`,
        in one round trip where possible, and queue any wake-up for other processes' relays.
        `envelopes` is not empty. The caller's transaction."""
        ...

    async def ensure_relay_row(self, session: AsyncSession, source: str) -> None:
        """Create `source`'s `tidings_relay` row unless it exists. The caller's transaction."""
        ...

    def relay_transaction(self, connection: AsyncConnection) -> AbstractAsyncContextManager[object]:
        """The transaction of a relay's cycle on `connection`, begun the cheapest way the driver
        allows; `relay_read` and `relay_settle` run in it, and so does parking, through a session
        bound to `connection` that commits (a savepoint, or nothing where it joins the transaction)."""
        ...

    async def relay_read(
        self, connection: AsyncConnection, source: str, *, limit: int, skip: Collection[int]
    ) -> RelayView | None:
        """In one statement: `source`'s relay row and its oldest `limit` outbox rows whose ids are not
        in `skip` (rows published whose deletion is still under way). None if the relay row does not
        exist or, where writers are concurrent (PostgreSQL), another transaction holds its lock; else
        the row is locked until the caller's transaction ends. Where one transaction holds the only
        write lock (SQLite) this may also run outside any transaction, on a read-only connection:
        one statement reads one snapshot."""
        ...

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
        """Delete the published outbox rows `ids` and count them on `source`'s relay row (with
        `last_published_at=now` unless `ids` is empty), in as few round trips as the database allows.
        A relay calls it after every cycle that deleted or parked rows, so the row changes. PostgreSQL notes
        `owner` as the publisher; SQLite renews `owner`'s lease to `lease_until` if it still holds
        it. The caller's transaction."""
        ...

    def for_update(self, statement: S, *, skip_locked: bool = False) -> S:
        """`statement` (a `Select`) locking the rows it reads until the transaction ends, skipping
        rows another transaction locked if `skip_locked`; unchanged where a transaction already
        holds the only write lock (SQLite)."""
        ...

    def listener(self, engine: AsyncEngine, source: str, callback: Callable[[], None]) -> OutboxListener | None:
        """A listener calling `callback()` when another process commits outbox rows of `source`,
        or None if the database cannot notify (the relay then polls). Not started: `ensure()` it."""
        ...


_DIALECTS: dict[str, StoreDialect] = {}


def dialect_named(name: str) -> StoreDialect:
    """The dialect object for SQLAlchemy's dialect `name`; `ConfigurationError` if there is none."""
    try:
        return _DIALECTS[name]
    except KeyError:
        pass
    dialect: StoreDialect
    if name == "sqlite":
        from tidings.store.sqlite import SQLiteDialect

        dialect = SQLiteDialect()
    elif name == "postgresql":
        from tidings.store.postgres import PostgresDialect

        dialect = PostgresDialect()
    else:
        raise ConfigurationError(f"Tidings has no store for the {name!r} database")
    return _DIALECTS.setdefault(name, dialect)


def dialect_for(bound: AsyncSession | AsyncEngine | AsyncConnection | Any) -> StoreDialect:
    """The dialect object of the database `bound` (a session, an engine or a connection) is on."""
    bind = bound.bind if isinstance(bound, AsyncSession) else bound
    if bind is None:
        raise ConfigurationError("the session is not bound to a Store's engine")
    name: str = bind.dialect.name
    try:
        return _DIALECTS[name]
    except KeyError:
        return dialect_named(name)
