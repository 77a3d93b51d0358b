"""SQLite: the relay's read-only connection, on which it reads its batches without the write lock.

A SQLite service has one connection, and each of its transactions holds the write lock: a relay
reading through it waited for every consumer batch and request before it could publish. This
second connection (`read_only`: deferred transactions; WAL gives each statement a snapshot and
no lock) reads the relay row and the batch in one statement (`StoreDialect.relay_read`) outside
any transaction, so it waits for no writer. The lease read there says whether the relay may
publish without writing (`tidings.store.lease.holds`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.store.database import Store
from tidings.store.relay_view import RelayView
from tidings.store.settling import Deletion

BUSY_TIMEOUT = 5.0
"""Seconds the connection waits in the rare cases a WAL reader must (a checkpoint's restart)."""


class SnapshotReader:
    """The relay's read-only connection to `store`'s file, opened at the first read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine: AsyncEngine | None = None

    async def read(self, source: str, *, limit: int, deletion: Deletion) -> tuple[RelayView | None, bool]:
        """The relay row and the oldest `limit` rows of `source` not being deleted by `deletion`,
        and whether a deletion finished during the read: the ids it freed may have been taken again
        by new rows that this read skipped (no AUTOINCREMENT on the outbox), so read again."""
        if self._engine is None:
            url, dialect = self._store.engine.url, self._store.dialect
            self._engine = dialect.create_engine(url, pool_size=1, busy_timeout=BUSY_TIMEOUT, read_only=True)
        finished, skip = deletion.finished, deletion.deleting
        async with self._engine.connect() as connection:
            view = await self._store.dialect.relay_read(connection, source, limit=limit, skip=skip)
        return view, deletion.finished != finished

    async def close(self) -> None:
        """Close the connection; the next `read` opens it again."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()
