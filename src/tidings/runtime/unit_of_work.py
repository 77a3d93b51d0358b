"""`UnitOfWork`: one transaction of a service's database in which business rows, the inbox claim
and outbox rows commit together; without a database, a context whose events publish at once.

With a database, the events a unit of work records go to the outbox in its transaction and the
relay is woken after the commit, so no event leaves for a change that rolled back. Without one,
they are published straight after the work returned (still at-least-once, but a redelivery runs
the handler again).

Inside a handler, `ctx` *is* the unit of work: opening a second one from the handler's task
(`service.transaction()`) raises `NestedUnitOfWork`, because that work would commit apart from
the handler's (and on SQLite wait forever for the connection the handler holds).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import NestedUnitOfWork
from tidings.store import Store, outbox

_handling: ContextVar[UnitOfWork | None] = ContextVar("tidings_handling", default=None)
"""The unit of work whose handler the current task is running (each delivery has its own task)."""

Publish = Callable[[list[Envelope]], Awaitable[None]]
Committed = Callable[[list[Envelope]], None]


class UnitOfWork:
    """Opens units of work for the service `owner` on `store` (or none: `publish` sends at once).

    `committed(envelopes)` is called after each commit that wrote outbox rows (to wake the relay).
    """

    def __init__(self, owner: str, store: Store | None, *, publish: Publish, committed: Committed) -> None:
        self.owner = owner
        self.store = store
        self._publish = publish
        self._committed = committed

    @contextlib.asynccontextmanager
    async def handling(self, incoming: Envelope | None, attempt: int) -> AsyncIterator[Context]:
        """The unit of work of one delivery's handler (marks the task as handling)."""
        _handling.set(self)  # this task runs one delivery: nothing to reset
        async with self._open(Context(self.owner, incoming=incoming, attempt=attempt)) as context:
            yield context

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Context]:
        """A unit of work outside any handler (an HTTP request, a sweep); refused inside one."""
        if _handling.get() is self:
            raise NestedUnitOfWork(
                f"a handler of service {self.owner!r} called service.transaction() or service.publish(); "
                "publish follow-up events with ctx.publish(...) so they commit with the handler's work"
            )
        async with self._open(Context(self.owner)) as context:
            yield context

    @contextlib.asynccontextmanager
    async def _open(self, context: Context) -> AsyncIterator[Context]:
        if self.store is None:
            yield context
            context.committed()
            if context.outgoing:
                await self._publish(context.outgoing)
            return
        async with self.store.session() as session, session.begin():
            context.bind(session)
            yield context
            if context.outgoing:
                await outbox.add(session, context.outgoing)
        context.committed()  # create spans end only for what committed
        if context.outgoing:
            self._committed(context.outgoing)
