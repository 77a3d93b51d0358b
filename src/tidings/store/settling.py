"""Settling a relay's batch: deleting what the broker confirmed and parking what it never will.

`settle` is the step after a publish, in the caller's transaction: the dialect's one or two
statements (`StoreDialect.relay_settle`) delete the confirmed rows, count them and, on SQLite,
renew the lease; rows that cannot be published are parked (`tidings.store.parked`). It also
runs when only rows were parked, so the relay row changes whenever the outbox did (PostgreSQL's
`relay_read` tells a stale snapshot by that).

`Deletion` runs a settle beside the relay's next cycle (SQLite, where the settle's write
transaction queues behind the service's writers on the one connection): at most one at a time;
`deleting` names its rows, which the next read skips so they are not published twice; `finished`
counts the settles done, so a read that overlapped one can tell (the ids a deletion frees may be
taken again by new rows, SQLite having no AUTOINCREMENT on the outbox, and such a read skipped
them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Collection

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tidings.store import parked
from tidings.store.dialect import StoreDialect
from tidings.store.outbox import Batch
from tidings.store.sending import Sent, to_park


async def settle(
    dialect: StoreDialect,
    connection: AsyncConnection,
    batch: Batch,
    sent: Sent,
    *,
    source: str,
    owner: str,
    lease: float,
) -> None:
    """In the caller's transaction: delete and count the rows the broker confirmed, renew `owner`'s
    lease by `lease` seconds (SQLite), and park those that can never be published."""
    now, poison = time.time(), to_park(batch, sent)
    if sent.published or poison:
        ids = [row.id for row in sent.published]
        await dialect.relay_settle(connection, source, ids, now=now, owner=owner, lease_until=now + lease)
    if poison:
        async with AsyncSession(bind=connection) as session:  # joins the connection's transaction
            await parked.park(session, poison, now=now)


class Deletion:
    """The settle running beside the next cycle, if any (see the module docstring)."""

    def __init__(self) -> None:
        self.deleting: frozenset[int] = frozenset()
        """Ids of the rows the settle in flight deletes or parks: reads skip them."""
        self.finished = 0
        """Settles finished so far, failed ones included."""
        self._task: asyncio.Task[None] | None = None

    def start(self, ids: Collection[int], work: Awaitable[None], *, name: str) -> None:
        """Run `work` (a settle of the rows `ids`) in a task; `drain()` the previous one first."""
        if self._task is not None:
            raise RuntimeError("a deletion is already in flight: drain it first")
        self.deleting = frozenset(ids)
        self._task = asyncio.create_task(self._run(work), name=name)

    def committed(self) -> None:
        """The settle's transaction committed: its rows are gone, reads need not skip them. Called
        by the settle at once, before it returns its connection (an await), to narrow the window in
        which a read sees freed ids taken again but is not told."""
        self.deleting = frozenset()
        self.finished += 1

    async def _run(self, work: Awaitable[None]) -> None:
        try:
            await work
        finally:  # failed: the rows stay and are published again; committed: already said
            if self.deleting:
                self.committed()

    async def drain(self) -> None:
        """Wait for the settle in flight, if any; raises its failure (its rows stay in the outbox
        and are published again: at-least-once)."""
        task, self._task = self._task, None
        if task is not None:
            await task
