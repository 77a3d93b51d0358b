"""What the dashboard asks of the recorded events: the stream, one transaction, the flow."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.dashboard.recorder import events

Event = dict[str, Any]
"""One recorded event as the API shows it."""


def _as_dict(row: Row[Any]) -> Event:
    return {
        "seq": row.seq,
        "id": row.event_id,
        "type": row.type,
        "version": row.version,
        "source": row.source,
        "subject": row.subject,
        "correlation": row.correlation,
        "causation": row.causation,
        "time": row.time,
        "recorded_at": row.recorded_at,
        "data": json.loads(row.data),
    }


async def recent(session: AsyncSession, *, limit: int = 50, after: int = 0) -> list[Event]:
    """The newest `limit` events recorded after position `after`, newest first."""
    statement = select(events).where(events.c.seq > after).order_by(events.c.seq.desc()).limit(limit)
    return [_as_dict(row) for row in await session.execute(statement)]


async def transaction(session: AsyncSession, correlation: str) -> dict[str, Any] | None:
    """Every event of one business transaction, and the same events as a causal forest.

    Each event sits under the event that caused it. An event whose cause was not recorded (not
    a recorded type, or published by something that sets no causation) is a root, so a gap in
    the chain shows instead of hiding what followed it. None if nothing has that correlation.
    """
    statement = select(events).where(events.c.correlation == correlation).order_by(events.c.seq)
    found = [_as_dict(row) for row in await session.execute(statement)]
    if not found:
        return None
    nodes = {event["id"]: {**event, "children": []} for event in found}
    roots: list[dict[str, Any]] = []
    for node in nodes.values():
        parent = nodes.get(node["causation"]) if node["causation"] != node["id"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return {"correlation": correlation, "events": found, "roots": roots}


async def flow(session: AsyncSession) -> list[dict[str, Any]]:
    """How many events of each type each source published: the edges of the system's picture."""
    statement = (
        select(events.c.source, events.c.type, func.count().label("count"))
        .group_by(events.c.source, events.c.type)
        .order_by(events.c.source, events.c.type)
    )
    return [{"source": row.source, "type": row.type, "count": row.count} for row in await session.execute(statement)]
