"""Which relay of a service may publish: one at a time per source, so rows go out in order.

Which of the two schemes applies is the dialect's `concurrent_writers`; every function here runs
in the caller's transaction and never opens or commits one.

PostgreSQL: the relay runs each batch (read, publish, delete) in one transaction whose first
statement (`StoreDialect.relay_read`) locks the source's `tidings_relay` row with
`FOR UPDATE SKIP LOCKED` and reads the batch. A second replica skips the locked row and waits for
the next turn; a relay that dies loses its connection, its transaction rolls back and the row is
free at once.

SQLite: a write transaction cannot stay open while the broker is called (it would stop every
other writer), so the relay holds a lease stored in the row: `owner` and `lease_until`. A relay
takes the lease (`acquire`, in a write transaction) when it is free, expired, or held by a
process of this host that no longer exists (SQLite databases are local to one host, so the
process id of the holder can be checked; a killed relay's lease is taken over at once). Each
deletion of published rows renews it (`StoreDialect.relay_settle`), so a busy relay reads its
batches on a read-only connection without taking the write lock, as long as the lease it reads
there (`holds`) lasts more than half its length; otherwise it takes the lease again first.
`Relay.close` releases its lease. A holder that is alive but stalled longer than the lease loses
it: another relay may then publish the same rows again, which consumers' inboxes absorb.
"""

from __future__ import annotations

import os
import socket
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.store.dialect import dialect_for
from tidings.store.relay_view import RelayView
from tidings.store.tables import relay

_HOST = socket.gethostname()


def new_owner() -> str:
    """A name for one relay instance: `host:pid:nonce`."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def ensure(session: AsyncSession, source: str) -> None:
    """Create the source's relay row if it does not exist yet."""
    await dialect_for(session).ensure_relay_row(session, source)


async def acquire(session: AsyncSession, source: str, owner: str, *, ttl: float, now: float) -> bool:
    """SQLite: take or renew the source's lease for `owner`; False while another live relay holds it.

    Call inside a write transaction (every SQLite transaction of a `Store` is `BEGIN IMMEDIATE`).
    """
    row = (await session.execute(select(relay.c.owner, relay.c.lease_until).where(relay.c.source == source))).first()
    if row is None:
        await ensure(session, source)
        holder, until = None, 0.0
    else:
        holder, until = row.owner, row.lease_until
    if holder == owner:
        if until - now > ttl / 2:
            return True  # renewed recently enough: save a write
    elif holder is not None and until > now and not _gone(holder):
        return False
    await session.execute(update(relay).where(relay.c.source == source).values(owner=owner, lease_until=now + ttl))
    return True


def holds(view: RelayView | None, owner: str, *, ttl: float, now: float) -> bool:
    """SQLite: whether the relay row read in `view` shows `owner`'s lease lasting more than `ttl / 2`
    beyond `now`: then `owner` may publish without taking it again (`acquire` renews no sooner)."""
    return view is not None and view.holder == owner and view.lease_until - now > ttl / 2


async def release(session: AsyncSession, source: str, owner: str) -> None:
    """SQLite: give up `owner`'s lease so another relay can take over at once."""
    statement = update(relay).where(relay.c.source == source, relay.c.owner == owner).values(lease_until=0.0)
    await session.execute(statement)


def _gone(owner: str) -> bool:
    """Whether `owner` names a process of this host that has exited."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another relay of this very process: alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
