"""`GroupCommit`: the units of work of deliveries handled at the same time share one transaction.

Each delivery still has its own task and its own `Context`; what they share is the database
transaction, so a batch of N deliveries costs one connection, one `BEGIN` and one `COMMIT` (on SQLite
one fsync) instead of N. The contract, which `UnitOfWork.handling` keeps for its callers:

- a member's work (inbox claim, handler, ORM flush, outbox rows) runs when the member's turn
  comes, one member at a time on the batch's `Transaction` (its connection, and the ORM session
  made when a member first asks for `ctx.session`; neither is safe for concurrent use);
  `member()` returns only after the batch committed, so an ack that follows it acks a durable
  effect;
- the batch commits when the last member that joined it has done its work; members join while
  it is open, up to `limit`; only one batch works at a time (the next one waits until the
  previous one finished working, then works while that one commits), so a batch never waits on a
  lock held by a later one;
- the inbox claims of every member that joined so far are made by one statement when the first of
  them asks (`claim`, which `with_inbox` calls); a member whose event another member of the batch
  already carries (a redelivery) claims alone, and finds it taken;
- the outbox rows of every member are added by one statement just before the commit (one round
  trip per batch); on PostgreSQL that statement takes the per-key advisory locks, which the batch
  then holds only for its commit;
- if any member's work raises, or the commit (with its outbox rows) fails, the whole batch is rolled back;
  the member whose work raised gets its own error (one failed attempt, which the retry policy
  counts and delays like any other), and every other member gets `Rerun`: it must run again alone,
  in a transaction of its own (the caller does it), so a failure never leaves a neighbour's effects
  half-applied and never applies one twice. A failed commit raises in a batch of one, `Rerun` in a
  larger one (nobody's own error).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

from tidings.context import Context
from tidings.envelope import Envelope, check_identity
from tidings.errors import MalformedMessage
from tidings.store import Store, inbox, outbox
from tidings.store.transaction import Executor, Transaction

DEFAULT_LIMIT = 100
"""Members of one batch at most (the consumer's concurrency usually bounds it first)."""


_member: ContextVar[tuple[_Batch, Context] | None] = ContextVar("tidings_group_member", default=None)
"""The batch and context of the member whose work the current task is doing, if any."""


async def claim(executor: Executor, group: str, source: str, event_id: str) -> bool:
    """`inbox.claim` for the unit of work `executor` belongs to: within a group commit, one statement
    claims the batch's members that have not claimed yet, and this member's answer is taken from it."""
    member = _member.get()
    if member is None or not member[0].runs_on(executor) or member[0].committed.done():
        return await inbox.claim(executor, group, source, event_id)
    batch, context = member
    key = (source, event_id)
    if batch.owners.get(key) is not context:  # not registered, or a redelivery of a neighbour's event
        return await inbox.claim(executor, group, source, event_id)
    if key not in batch.claimed:
        keys, batch.unclaimed = batch.unclaimed, []
        batch.won |= await inbox.claim_many(executor, group, keys)
        batch.claimed.update(keys)
    return key in batch.won


class Rerun(Exception):
    """The batch this unit of work belonged to was rolled back: run it again, alone."""


Key = tuple[str, str]
"""An inbox key within a group: (source, event id)."""


class _Batch:
    __slots__ = (
        "claimed",
        "committed",
        "doomed",
        "members",
        "outgoing",
        "owners",
        "pending",
        "previous",
        "transaction",
        "turn",
        "unclaimed",
        "won",
        "worked",
    )

    def __init__(self, previous: _Batch | None) -> None:
        self.previous = previous
        self.members = 0
        self.doomed = False
        """A member was cancelled before its turn: the batch will be rolled back."""
        self.pending = 0
        """Members that joined and have not finished their work."""
        self.turn = asyncio.Lock()
        self.worked = asyncio.Event()
        """Set once no member will use the session again (all worked, or the batch failed)."""
        self.committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        """True once committed; False if rolled back (members then rerun alone)."""
        self.transaction: Transaction | None = None
        self.outgoing: list[Envelope] = []
        self.owners: dict[Key, Context] = {}
        """The member whose claim each key is (the first that joined with it)."""
        self.unclaimed: list[Key] = []
        self.claimed: set[Key] = set()
        self.won: set[Key] = set()

    @property
    def failed(self) -> bool:
        return self.committed.done() and not self.committed.result()

    def runs_on(self, executor: Executor) -> bool:
        """Whether `executor` is this batch's connection or session."""
        transaction = self.transaction
        return transaction is not None and (
            executor is transaction.connection or executor is transaction.peek_session()
        )


class GroupCommit:
    """Batches the units of work of one service's handlers on `store` (see the module docstring).

    `committed(envelopes)` is called once per committed batch that wrote outbox rows (to wake the relay).
    """

    def __init__(
        self,
        store: Store,
        committed: Callable[[list[Envelope]], None],
        *,
        limit: int = DEFAULT_LIMIT,
        owner: str | None = None,
    ) -> None:
        """`owner`: the service whose relay publishes the batches' outbox rows (`outbox.add`)."""
        self._owner = owner
        self._store = store
        self._committed = committed
        self._limit = limit
        self._open: _Batch | None = None
        self._last: _Batch | None = None

    def _join(self, context: Context) -> _Batch:
        batch = self._open
        if batch is None or batch.members >= self._limit:
            batch = self._open = _Batch(self._last)
            self._last = batch
        batch.members += 1
        batch.pending += 1
        incoming = context.incoming
        if incoming is not None:
            key = (incoming.source, incoming.id)
            try:
                check_identity(incoming.id, incoming.source)
            except MalformedMessage:
                return batch  # claims alone, and fails alone
            if key not in batch.owners:
                batch.owners[key] = context
                batch.unclaimed.append(key)
        return batch

    def _close(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        batch.worked.set()

    @contextlib.asynccontextmanager
    async def member(self, context: Context) -> AsyncIterator[Context]:
        """Run the body as `context`'s share of a batch; returns once the batch committed, raises
        `Rerun` if it was rolled back by a neighbour (its own work's error raises as it is)."""
        batch = self._join(context)
        try:
            await batch.turn.acquire()
        except BaseException:
            await self._abandon(batch)
            raise
        try:
            if batch.previous is not None:
                await batch.previous.worked.wait()
                batch.previous = None
        except BaseException:
            batch.turn.release()
            await self._abandon(batch)
            raise
        try:
            if batch.failed:
                batch.pending -= 1
                raise Rerun
            if batch.doomed:
                await self._roll_back(batch)
                raise Rerun
            try:
                if batch.transaction is None:
                    batch.transaction = await Transaction.begin(self._store.engine)
                transaction = batch.transaction
                context.bind(transaction)
                token = _member.set((batch, context))
                try:
                    yield context
                finally:
                    _member.reset(token)
                await transaction.flush()  # the member's own errors are its own, not the commit's
                batch.outgoing.extend(context.outgoing)  # added by the commit, in one statement
            except Exception:
                await self._roll_back(batch)
                raise  # the member's own failure: an attempt for the retry policy (its neighbours rerun)
            except BaseException:  # cancelled: nothing of the batch may commit
                await self._roll_back(batch)
                raise
            if batch.pending == 1 and batch.doomed:  # the last, after a neighbour gave up its turn
                await self._roll_back(batch)
                raise Rerun
            batch.pending -= 1
            last = batch.pending == 0
            if last:
                self._close(batch)
        finally:
            batch.turn.release()
        if last:
            await self._commit(batch)
        if not await asyncio.shield(batch.committed):
            raise Rerun

    async def _abandon(self, batch: _Batch) -> None:
        """A member cancelled before its turn. Its event may have been claimed by the batch's inbox
        statement without its handler having run, so the batch must not commit: it is doomed, and
        rolled back by whoever comes next (here, if nobody will)."""
        batch.pending -= 1
        batch.doomed = True
        if batch.pending == 0:  # every other member has done its work and waits for the commit
            self._close(batch)
            if not batch.committed.done():
                batch.committed.set_result(False)
            if batch.transaction is not None:
                await batch.transaction.close()

    async def _roll_back(self, batch: _Batch) -> None:
        """Fail `batch` (its members rerun alone) and roll back what it did; while holding its turn."""
        batch.pending -= 1
        self._close(batch)
        if not batch.committed.done():
            batch.committed.set_result(False)
        if batch.transaction is not None:
            await batch.transaction.close()  # rolls back the open transaction

    async def _commit(self, batch: _Batch) -> None:
        """Add the batch's outbox rows, commit, release the members; a failed commit fails the batch (its members
        rerun alone, and a batch of one raises the error, as a transaction of its own would)."""
        transaction = batch.transaction
        assert transaction is not None
        try:
            if batch.outgoing:
                await outbox.add(transaction.connection, batch.outgoing, owner=self._owner)
            await transaction.commit()
        except BaseException as error:
            batch.committed.set_result(False)
            await transaction.close()
            if batch.members == 1 or not isinstance(error, Exception):
                raise
            return
        batch.committed.set_result(True)
        if batch.outgoing:
            self._committed(batch.outgoing)
