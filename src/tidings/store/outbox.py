"""The outbox: events recorded in the same transaction as the business rows that caused them.

`add` runs inside the unit of work's transaction and never opens or commits one, so an event is
in the outbox exactly when the change that caused it committed: a rolled-back handler leaves no
event behind, and nothing is sent before the commit. The relay (`tidings.store.relay`) publishes
the rows afterwards, in `id` order, and deletes them once the transport has confirmed them.

Each row keeps the whole envelope in CloudEvents binary mode (`to_binary` with the `ce_`
prefix: headers as JSON, data as bytes), so the relay rebuilds it exactly.

The insert is the dialect's (`StoreDialect.add_outbox`, one round trip).

Ordering. `id` is the publication order. On SQLite transactions are serialized, so `id` order
is commit order. On PostgreSQL, concurrent transactions draw ids before they commit, so a
smaller id can commit after a larger one has been published. `add` therefore takes a
transaction-scoped advisory lock per (owner, partition key) before drawing ids: two
transactions with events of one key are serialized from `add` to commit, and their ids are in
commit order (the id sequence has no per-session cache, so ids are drawn in time order).
Events with one partition key are thus published in commit order; events without a key or with
different keys have no order among them. Two keys whose hashes collide only share a lock.

Wake-up. On PostgreSQL `add` also issues `pg_notify('tidings_outbox', source)`, delivered at
commit (and dropped on rollback), so that the relay of any process wakes up at once; within one
process the runtime calls `Relay.wake()` after the commit as well.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.envelope import Envelope, from_binary, to_binary
from tidings.errors import MalformedMessage
from tidings.store.dialect import dialect_for
from tidings.store.notify import CHANNEL as CHANNEL  # the PostgreSQL notification channel, kept here too
from tidings.store.tables import outbox
from tidings.store.transaction import Executor

HEADER_PREFIX = "ce_"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A committed, unpublished outbox row as the relay reads it."""

    id: int
    envelope: Envelope
    created_at: float


async def add(executor: Executor, envelopes: Sequence[Envelope], *, owner: str | None = None) -> None:
    """Record `envelopes` for publication when the transaction of `executor` (a session or a
    connection) commits; no-op when empty.

    `owner` is the service whose relay publishes them (the rows' `source` column, the relay's
    `source`); a service passes its name, since its envelopes' `source` is a URI. Without it
    each row is keyed by its envelope's `source`, as rows were before sources became URIs.

    Never opens or commits a transaction: call it inside one, as the last write of the unit of
    work (on PostgreSQL it holds per-key locks until the commit).
    """
    if not envelopes:
        return
    now = time.time()
    encoded = [encode(envelope) for envelope in envelopes]
    owners = [owner or envelope.source for envelope in envelopes]
    await dialect_for(executor).add_outbox(executor, owners, envelopes, encoded, now)


async def pending(session: AsyncSession, source: str, *, limit: int) -> list[OutboxRow]:
    """The oldest `limit` unpublished rows of `source`, in publication (`id`) order; the caller's
    transaction."""
    statement = (
        select(outbox.c.id, outbox.c.headers, outbox.c.body, outbox.c.created_at)
        .where(outbox.c.source == source)
        .order_by(outbox.c.id)
        .limit(limit)
    )
    result = await session.execute(statement)
    return [OutboxRow(id=row.id, envelope=decode(row.headers, row.body), created_at=row.created_at) for row in result]


@dataclass(frozen=True, slots=True)
class Batch:
    """What the relay read: the rows that decode, in `id` order, and those that do not."""

    rows: list[OutboxRow]
    undecodable: list[tuple[int, str]]
    """(row id, why it does not decode): rows the relay parks (`tidings.store.parked`)."""

    def __len__(self) -> int:
        return len(self.rows) + len(self.undecodable)


def batch_of(rows: Iterable[tuple[int, str, bytes, float]]) -> Batch:
    """The `Batch` of stored rows `(id, headers, body, created_at)` in `id` order: each one that
    decodes as an `OutboxRow`, each one that does not (edited by hand, over the data limit) set
    aside with the reason, so that only that row is affected. The relay reads its rows through its
    dialect (`StoreDialect.relay_read`) and decodes them with this."""
    batch = Batch([], [])
    for row_id, headers, body, created_at in rows:
        try:
            envelope = decode(headers, body)
        except Exception as error:  # whatever is wrong with it, only this row is affected
            batch.undecodable.append((row_id, f"cannot be decoded: {_explain(error)}"))
        else:
            batch.rows.append(OutboxRow(id=row_id, envelope=envelope, created_at=created_at))
    return batch


def _explain(error: Exception) -> str:
    return str(error) if isinstance(error, MalformedMessage) else f"{type(error).__name__}: {error}"


async def pending_count(session: AsyncSession, source: str) -> int:
    """How many committed rows of `source` wait for the relay; the caller's transaction."""
    result = await session.execute(select(func.count()).select_from(outbox).where(outbox.c.source == source))
    return int(result.scalar_one())


def encode(envelope: Envelope) -> tuple[str, bytes]:
    """The `headers` (JSON of the binary-mode headers) and `body` columns for `envelope`."""
    headers, body = to_binary(envelope, HEADER_PREFIX)
    return json.dumps(headers, separators=(",", ":")), body


def decode(headers: str, body: bytes) -> Envelope:
    """The envelope `encode` stored, exactly."""
    return from_binary(json.loads(headers), body, HEADER_PREFIX)
