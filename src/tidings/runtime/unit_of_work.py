"""`UnitOfWork`: one transaction of a service's database in which business rows, the inbox claim
and outbox rows commit together; without a database, a context whose events publish at once.

With a database, the events a unit of work records go to the outbox in its transaction and the
relay is woken after the commit, so no event leaves for a change that rolled back. Without one,
they are published straight after the work returned (still at-least-once, but a redelivery runs
the handler again).

Handlers' units of work are grouped (`tidings.runtime.group_commit`): deliveries handled at the
same time share one transaction and one commit, and a failure in any of them sends each one back
to run alone (`alone=True`, the transaction of its own that `handling` otherwise opens). A delivery
on a retry (`attempt > 1`) runs alone from the start: it failed before, and may fail again.

Inside a handler, `ctx` *is* the unit of work: opening a second one from the handler's task
(`service.transaction()`) raises `NestedUnitOfWork`, because that work would commit apart from
the handler's (and on SQLite wait forever for the connection the handler holds).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from tidings.context import Context, service_source
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, NestedUnitOfWork
from tidings.runtime.group_commit import GroupCommit
from tidings.security.signing import Signing, signs_for
from tidings.store import Store, outbox
from tidings.store.transaction import Transaction

_handling: ContextVar[UnitOfWork | None] = ContextVar("tidings_handling", default=None)
"""The unit of work whose handler the current task is running (each delivery has its own task)."""

Publish = Callable[[list[Envelope]], Awaitable[None]]
Committed = Callable[[list[Envelope]], None]
T = TypeVar("T")


class UnitOfWork:
    """Opens units of work for the service `owner` on `store` (or none: `publish` sends at once).

    What they publish carries `source` (default `urn:tidings:<owner>`); the outbox rows are the
    owner's (its relay publishes them), whatever URI the envelopes carry.

    `committed(envelopes)` is called after each commit that wrote outbox rows (to wake the relay).
    With `signing` that has a key, each recorded envelope is signed before it is written or published, so the
    outbox holds signed envelopes and the relay, a restart or a replay send them unchanged.
    """

    def __init__(
        self,
        owner: str,
        store: Store | None,
        source: str | None = None,
        *,
        publish: Publish,
        committed: Committed,
        signing: Signing | None = None,
        group_commit: bool = True,
    ) -> None:
        self.owner = owner
        self.source = source or service_source(owner)
        self.store = store
        self._publish = publish
        self._committed = committed
        self._signer = signing.signer if signing is not None else None
        if self._signer is not None and not signs_for(self._signer.key, self.source):
            raise ConfigurationError(
                f"service {owner!r} (source {self.source!r}) was given key {self._signer.key.id!r}, "
                f"which signs for {self._signer.key.source!r}"
            )
        self._group = GroupCommit(store, committed, owner=owner) if store is not None and group_commit else None

    @contextlib.asynccontextmanager
    async def handling(self, incoming: Envelope | None, attempt: int, *, alone: bool = False) -> AsyncIterator[Context]:
        """The unit of work of one delivery's handler (marks the task as handling): a share of a
        group commit, or with `alone` (or on a retry) a transaction of its own. A grouped one may
        raise `Rerun` after the body: the caller runs the body again with `alone=True`."""
        _handling.set(self)  # this task runs one delivery: nothing to reset
        context = Context(self.owner, source=self.source, incoming=incoming, attempt=attempt)
        if self._group is None or alone or attempt > 1:
            async with self._open(context) as opened:
                yield opened
        else:
            async with self._group.member(context) as joined:
                yield joined
                self._sign(joined)  # before the member hands its outgoing events to the batch's outbox rows
            joined.committed()  # `member` returns only once the batch committed: end the create spans

    async def run(
        self, incoming: Envelope | None, attempt: int, body: Callable[[Context], Awaitable[T]], *, alone: bool = False
    ) -> T:
        """`handling` as a call: `body(context)` runs in the delivery's unit of work, and may raise
        `Rerun` as `handling` does. Without a database no context manager is entered: a service
        without one pays per delivery only for its context and the call (the runtime's hot path)."""
        if self.store is not None:
            async with self.handling(incoming, attempt, alone=alone) as context:
                return await body(context)
        _handling.set(self)
        context = Context(self.owner, source=self.source, incoming=incoming, attempt=attempt)
        result = await body(context)
        await self._publish_at_once(context)
        return result

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Context]:
        """A unit of work outside any handler (an HTTP request, a sweep); refused inside one."""
        if _handling.get() is self:
            raise NestedUnitOfWork(
                f"a handler of service {self.owner!r} called service.transaction() or service.publish(); "
                "publish follow-up events with ctx.publish(...) so they commit with the handler's work"
            )
        async with self._open(Context(self.owner, source=self.source)) as context:
            yield context

    @contextlib.asynccontextmanager
    async def _open(self, context: Context) -> AsyncIterator[Context]:
        if self.store is None:
            yield context
            await self._publish_at_once(context)
            return
        transaction = await Transaction.begin(self.store.engine)
        try:
            context.bind(transaction)
            yield context
            self._sign(context)
            if context.outgoing:
                await outbox.add(transaction.connection, context.outgoing, owner=self.owner)
            await transaction.commit()
        finally:
            await transaction.close()  # rolls back unless committed
        context.committed()  # create spans end only for what committed
        if context.outgoing:
            self._committed(context.outgoing)

    async def _publish_at_once(self, context: Context) -> None:
        """No database: what the work recorded is signed and published now that it returned."""
        self._sign(context)
        context.committed()
        if context.outgoing:
            await self._publish(context.outgoing)

    def _sign(self, context: Context) -> None:
        if self._signer is not None and context.outgoing:
            context.outgoing[:] = [self._signer.sign(envelope) for envelope in context.outgoing]
