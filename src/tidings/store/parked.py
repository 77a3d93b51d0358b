"""Parked outbox rows: rows the relay set aside because they can never be published as they are.

A row is parked when it no longer decodes into an envelope (edited by hand, written by a bug, over
the data limit) or when the broker refused its envelope for good (`EnvelopeRefused`: too large
once the broker counts its headers, say). `park` moves it, unchanged, from `tidings_outbox` to
`tidings_outbox_parked` with its reason and the time, in the caller's transaction, so a row is
always in exactly one of the two tables. The relay then goes on with the rows behind it.

An operator sees them with `list` (or `tidings outbox parked`), puts them back at the end of the
outbox with `replay` once the cause is fixed (a larger broker limit, a repaired row), or drops
them with `purge`. A replayed row is published after every row already in the outbox: its place
among the events of its partition key is lost, which is the price of not holding that key back.

Every function runs in the caller's transaction and never opens or commits one.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Text, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.store.tables import outbox, outbox_parked

_COPIED = ("source", "event_id", "headers", "body", "created_at")


@dataclass(frozen=True, slots=True)
class ParkedRow:
    """One parked outbox row, without its body."""

    id: int
    """Its id in the parked table: what `replay` and `purge` take."""
    outbox_id: int
    source: str
    event_id: str
    type: str | None
    """The event type from the stored headers, None if they cannot be read."""
    size: int
    """Bytes of the stored body."""
    created_at: float
    parked_at: float
    reason: str


async def park(session: AsyncSession, rows: Sequence[tuple[int, str]], *, now: float) -> int:
    """Move the outbox rows `(outbox id, reason)` to the parked table; returns how many moved (a row
    no longer in the outbox, published or parked by another relay meanwhile, is skipped)."""
    moved = 0
    for row_id, reason in rows:
        copy = select(
            outbox.c.id,
            *(outbox.c[name] for name in _COPIED),
            literal(reason, Text),
            literal(now, Float),
        ).where(outbox.c.id == row_id)
        statement = insert(outbox_parked).from_select(["outbox_id", *_COPIED, "reason", "parked_at"], copy)
        moved += int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]
    if rows:
        await session.execute(delete(outbox).where(outbox.c.id.in_([row_id for row_id, _ in rows])))
    return moved


async def list(  # the module's verb, as in `parked.list(session)`
    session: AsyncSession, *, source: str | None = None, limit: int = 100
) -> builtins.list[ParkedRow]:
    """The oldest `limit` parked rows (of `source`, if given), in the order they were parked."""
    statement = select(
        outbox_parked.c.id,
        outbox_parked.c.outbox_id,
        outbox_parked.c.source,
        outbox_parked.c.event_id,
        outbox_parked.c.headers,
        func.length(outbox_parked.c.body).label("size"),
        outbox_parked.c.created_at,
        outbox_parked.c.parked_at,
        outbox_parked.c.reason,
    )
    if source is not None:
        statement = statement.where(outbox_parked.c.source == source)
    result = await session.execute(statement.order_by(outbox_parked.c.id).limit(limit))
    return [
        ParkedRow(
            id=row.id,
            outbox_id=row.outbox_id,
            source=row.source,
            event_id=row.event_id,
            type=_type(row.headers),
            size=int(row.size or 0),
            created_at=row.created_at,
            parked_at=row.parked_at,
            reason=row.reason,
        )
        for row in result
    ]


async def replay(
    session: AsyncSession, ids: Collection[int] | None = None, *, source: str | None = None, now: float | None = None
) -> int:
    """Put parked rows (`ids`, or all of them; of `source`, if given) back into the outbox after
    every row already there, in the order they were parked, with `created_at` the time of the
    replay (`now`); returns how many. The relay publishes them on its next cycle (it polls)."""
    now = time.time() if now is None else now
    chosen = select(outbox_parked.c.id, *(outbox_parked.c[name] for name in _COPIED)).order_by(outbox_parked.c.id)
    rows = (await session.execute(_where(chosen, ids, source))).all()
    for row in rows:  # one by one: each draws the next id, so they keep their order
        await session.execute(insert(outbox).values(_values(row, now)))
    if rows:
        await session.execute(delete(outbox_parked).where(outbox_parked.c.id.in_([row.id for row in rows])))
    return len(rows)


async def purge(session: AsyncSession, ids: Collection[int] | None = None, *, source: str | None = None) -> int:
    """Delete parked rows (`ids`, or all of them; of `source`, if given) for good; returns how many."""
    result = await session.execute(_where(delete(outbox_parked), ids, source))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def counts(session: AsyncSession) -> dict[str, int]:
    """Parked rows per source."""
    statement = select(outbox_parked.c.source, func.count()).group_by(outbox_parked.c.source)
    return {source: int(count) for source, count in await session.execute(statement)}


async def count(session: AsyncSession, source: str) -> int:
    """How many rows of `source` are parked."""
    statement = select(func.count()).select_from(outbox_parked).where(outbox_parked.c.source == source)
    return int((await session.execute(statement)).scalar_one())


def _where(statement: Any, ids: Collection[int] | None, source: str | None) -> Any:
    if ids is not None:
        statement = statement.where(outbox_parked.c.id.in_(builtins.list(ids)))
    if source is not None:
        statement = statement.where(outbox_parked.c.source == source)
    return statement


def _values(row: Any, now: float) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in _COPIED}
    values["created_at"] = now
    return values


def _type(headers: str) -> str | None:
    try:
        value = json.loads(headers).get("ce_type")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
