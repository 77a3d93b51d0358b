"""`Transaction`: one open transaction of a service database, as a Core connection first and an ORM
session only for the code that asks for one.

A unit of work's own statements (the inbox claim, the outbox rows, a saga's state) are Core
statements; running them on the connection skips the ORM session's per-statement work, and a
transaction whose handlers never touch `session` never builds one. That is most of what a
session costs on the reliable path: a transaction through a session costs about 1.4 times one on the
bare connection (ADR 0029). `session` is made on first use, bound to the same connection and
joined to its transaction, so ORM writes commit (or roll back) with everything else.

The contract:

- `begin(store.engine)` checks a connection out of the store's pool and begins (on SQLite this takes the
  write lock: `BEGIN IMMEDIATE`);
- `commit()` flushes the session's pending ORM changes, if there is a session, commits, and
  returns the connection; a failure raises and leaves the transaction rolled back and closed;
- `close()` without `commit()` rolls back and returns the connection; safe to call twice, and
  shielded from cancellation so a cancelled task never leaks a connection mid-transaction;
- `session.commit()` by user code does not commit the transaction (the session only joined it);
  the unit of work commits it.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

Executor: TypeAlias = AsyncSession | AsyncConnection
"""What the store's operations run their statements on: a session, or a connection in a transaction."""


class Transaction:
    """An open transaction: `connection` for Core statements, `session` (made on first use) for the ORM."""

    __slots__ = ("_closed", "_session", "connection")

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self._session: AsyncSession | None = None
        self._closed = False

    @classmethod
    async def begin(cls, engine: AsyncEngine) -> Transaction:
        """Check a connection out of `engine`'s pool (a `Store`'s) and begin a transaction on it."""
        connection = await engine.connect()
        try:
            await connection.begin()
        except BaseException:
            await asyncio.shield(connection.close())
            raise
        return cls(connection)

    @property
    def session(self) -> AsyncSession:
        """An ORM session in this transaction (the same one on every call)."""
        if self._session is None:
            self._session = AsyncSession(
                bind=self.connection, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
        return self._session

    def peek_session(self) -> AsyncSession | None:
        """The session if one was made, without making one."""
        return self._session

    async def flush(self) -> None:
        """Send the session's pending ORM changes, if any; their errors raise here."""
        session = self._session
        if session is not None and (session.new or session.dirty or session.deleted):
            await session.flush()

    async def commit(self) -> None:
        """Flush, commit and return the connection (rolled back and returned if any of it fails)."""
        try:
            await self.flush()
            await self.connection.commit()
        finally:
            await self.close()

    async def close(self) -> None:
        """Return the connection, rolling back what was not committed."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        try:
            if session is not None:
                await asyncio.shield(session.close())  # the session only joined: this ends no transaction
        finally:
            await asyncio.shield(self.connection.close())
