"""Settling a relay's batch: deleting what the broker confirmed and parking what it never will.

`settle` is the step after a publish, in the caller's transaction: the dialect's one or two
statements (`StoreDialect.relay_settle`) delete the confirmed rows, count them and, on SQLite,
renew the lease; rows that cannot be published are parked (`tidings.store.parked`). It also
runs when only rows were parked, so the relay row changes whenever the outbox did (PostgreSQL's
`relay_read` tells a stale snapshot by that).

`Deletion` runs settles beside the relay's next cycles (SQLite, where a settle's write
transaction queues behind the service's writers on the one connection), one after the other;
`deleting` names their rows, which the next reads skip so they are not published twice;
`finished` counts the settles done, so a read that overlapped one can tell (the ids a deletion
frees may be taken again by new rows, SQLite having no AUTOINCREMENT on the outbox, and such a
read skipped them).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tidings.store import parked
from tidings.store.dialect import StoreDialect
from tidings.store.outbox import Batch
from tidings.store.sending import Sent, to_park

Settle = Callable[[Callable[[], None]], Awaitable[None]]
"""A settle to run beside the next cycle: called with `committed`, to call once it committed."""


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
        async with AsyncSession(bind=connection) as session:  # inside the relay's transaction
            await parked.park(session, poison, now=now)
            await session.commit()  # a savepoint's release (PostgreSQL) or nothing (SQLite: joined)


class Deletion:
    """The settles running beside the relay's next cycles, one after the other (see the module
    docstring): at most `QUEUED` at a time, so a cycle never waits for the one before it."""

    QUEUED = 2

    def __init__(self) -> None:
        self.finished = 0
        """Settles finished so far, failed ones included."""
        self._deleting: dict[int, frozenset[int]] = {}  # per settle not finished: its rows' ids
        self._tasks: deque[asyncio.Task[None]] = deque()
        self._started = 0

    @property
    def deleting(self) -> frozenset[int]:
        """Ids of the rows the queued settles delete or park and did not commit yet: reads skip them."""
        return frozenset().union(*self._deleting.values())

    async def start(self, ids: Collection[int], settle: Settle, *, name: str) -> None:
        """Queue `settle(committed)` for the rows `ids`, to run once the settles before it finished
        (whether or not they failed); first waits for the oldest while `QUEUED` are queued, and
        raises its failure. `settle` calls `committed()` as soon as its transaction committed,
        before it returns its connection (an await), to narrow the window in which a read sees
        freed ids taken again but is not told."""
        while len(self._tasks) >= self.QUEUED:
            await self._tasks.popleft()
        self._started += 1
        token, previous = self._started, self._tasks[-1] if self._tasks else None
        self._deleting[token] = frozenset(ids)
        self._tasks.append(asyncio.create_task(self._run(token, previous, settle), name=name))

    def _finish(self, token: int) -> None:
        if self._deleting.pop(token, None) is not None:
            self.finished += 1

    async def _run(self, token: int, previous: asyncio.Task[None] | None, settle: Settle) -> None:
        try:
            if previous is not None:
                await asyncio.wait({previous})  # its failure is `drain`'s to raise
            await settle(lambda: self._finish(token))
        finally:  # failed: the rows stay and are published again
            self._finish(token)

    async def drain(self) -> None:
        """Wait for every queued settle; raises the first failure (its rows stay in the outbox and
        are published again: at-least-once)."""
        failure: Exception | None = None
        while self._tasks:
            try:
                await self._tasks.popleft()
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure
