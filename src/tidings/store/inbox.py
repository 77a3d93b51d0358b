"""The inbox: which events each consumer group has already handled (the idempotent consumer).

`claim` runs inside the handler's transaction, before the handler. The claim and the
handler's rows commit or roll back together, so an id is in the inbox exactly when the
handler's effects are: a redelivery of a handled event finds its id and is acked without
running the handler; a handler that failed left no claim, and its retry runs it again.

Two consumers holding the same event at once (a lease expired while the first still worked)
cannot both win: on PostgreSQL the second `INSERT` waits on the first transaction's uncommitted
row and then sees the conflict; on SQLite the transactions are serialized. The insert itself is
the dialect's (`StoreDialect.claim`).

The key is (group, source, id): CloudEvents makes an id unique only within its source, so two
producers may send the same id and both events must run. Claims made before migration 0004
have source '' (their source was not recorded); `claim` still honours them, so an event handled
just before the upgrade and redelivered after it is not applied twice. They are pruned with the
rest after the retention.

Ids are kept for `DEFAULT_RETENTION` (7 days) and then removed by `prune`, which the inbox
retention job runs periodically (`tidings.store.retention.InboxRetention`). An event redelivered after its
id was pruned would be handled again, so the retention must exceed the longest time a broker
may redeliver an event that was already handled (a lease expiry or a consumer restart: seconds
to minutes). Dead letters do not count: a dead-lettered event was never committed, so it has no
claim, and replaying it runs the handler as it should.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.envelope import check_identity
from tidings.store.dialect import dialect_for
from tidings.store.tables import inbox
from tidings.store.transaction import Executor

DEFAULT_RETENTION = 7 * 24 * 3600.0
"""Seconds an inbox id is kept after its claim."""


async def claim(executor: Executor, group: str, source: str, event_id: str) -> bool:
    """Record that `group` handles the event `(source, event_id)` in the transaction of `executor`
    (a session or a connection); False if it already did.

    Never opens or commits a transaction: call it inside one, before the handler.
    One statement, one round trip. An id or source longer than the inbox holds raises
    `MalformedMessage` (the envelope's decode refuses them first; this guards envelopes built in
    code), so the delivery is dead-lettered at once instead of failing the insert as if transient.
    """
    check_identity(event_id, source)
    return await dialect_for(executor).claim(executor, group, source, event_id, time.time())


async def claim_many(executor: Executor, group: str, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """`claim` for several distinct `(source, event_id)` keys in one statement (a group commit's
    members); returns those that were new. Keys must pass `check_identity` (the caller filters)."""
    if not keys:
        return set()
    return await dialect_for(executor).claim_many(executor, group, keys, time.time())


async def contains(session: AsyncSession, group: str, event_id: str, *, source: str | None = None) -> bool:
    """Whether `group` has a claim on `event_id` (from `source`, or from any source if None); for
    tests and admin tools, in the caller's transaction."""
    statement = select(inbox.c.event_id).where(inbox.c.consumer_group == group, inbox.c.event_id == event_id)
    if source is not None:
        statement = statement.where(inbox.c.source == source)
    return (await session.execute(statement)).first() is not None


async def prune(session: AsyncSession, *, older_than: float, limit: int = 10_000) -> int:
    """Delete up to `limit` claims made before `older_than` (Unix seconds); returns how many.

    Runs in the caller's transaction; call again while it returns `limit` to remove a backlog in
    short transactions (`InboxRetention.prune_once` does).
    """
    oldest = (
        select(inbox.c.consumer_group, inbox.c.source, inbox.c.event_id)
        .where(inbox.c.claimed_at < older_than)
        .order_by(inbox.c.claimed_at)
        .limit(limit)
    )
    key = tuple_(inbox.c.consumer_group, inbox.c.source, inbox.c.event_id)
    statement = delete(inbox).where(key.in_(oldest))
    result = await session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]
