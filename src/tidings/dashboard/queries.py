"""What the dashboard asks of the recorded events: the stream, one transaction, the flow, what a
search term names, and the event rates the charts draw."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Integer, cast, func, or_, select
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


async def recent(
    session: AsyncSession,
    *,
    limit: int = 50,
    after: int = 0,
    type_: str | None = None,
    source: str | None = None,
    text: str | None = None,
) -> list[Event]:
    """The newest `limit` events recorded after position `after`, newest first by their own time,
    optionally only of one type, one source, or whose type, subject or ids contain `text`."""
    statement = select(events).where(events.c.seq > after)
    if type_:
        statement = statement.where(events.c.type == type_)
    if source:
        statement = statement.where(events.c.source == source)
    if text:
        pattern = f"%{text}%"
        statement = statement.where(
            or_(
                events.c.type.like(pattern),
                events.c.subject.like(pattern),
                events.c.correlation.like(pattern),
                events.c.event_id.like(pattern),
            )
        )
    statement = statement.order_by(events.c.time.desc(), events.c.seq.desc()).limit(limit)
    return [_as_dict(row) for row in await session.execute(statement)]


async def transaction(session: AsyncSession, correlation: str) -> dict[str, Any] | None:
    """Every event of one business transaction in time order, and the same events as a causal forest.

    Each event sits under the event that caused it. An event whose cause was not recorded (not
    a recorded type, or published by something that sets no causation) is a root, so a gap in
    the chain shows instead of hiding what followed it. None if nothing has that correlation.
    """
    statement = select(events).where(events.c.correlation == correlation).order_by(events.c.time, events.c.seq)
    found = [_as_dict(row) for row in await session.execute(statement)]
    if not found:
        return None
    nodes = {event["id"]: {**event, "children": []} for event in found}
    roots: list[dict[str, Any]] = []
    for node in nodes.values():
        parent = nodes.get(node["causation"]) if node["causation"] != node["id"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return {"correlation": correlation, "events": found, "roots": roots}


async def event(session: AsyncSession, event_id: str) -> Event | None:
    row = (await session.execute(select(events).where(events.c.event_id == event_id))).first()
    return None if row is None else _as_dict(row)


async def correlation_of_subject(session: AsyncSession, subject: str) -> str | None:
    """The business transaction of the newest event about `subject` (the shop's order id)."""
    statement = (
        select(events.c.correlation)
        .where(events.c.subject == subject, events.c.correlation.is_not(None))
        .order_by(events.c.seq.desc())
        .limit(1)
    )
    found: str | None = await session.scalar(statement)
    return found


async def resolve(session: AsyncSession, term: str, groups: set[str]) -> dict[str, str] | None:
    """What `term` names, tried in order: an event id, a correlation id, a subject, a group.
    Answers `{"kind", "path"}` with the page's path for it, or None."""
    term = term.strip()
    if not term:
        return None
    found = await event(session, term)
    if found is not None:
        return {"kind": "event", "path": f"/events/{term}", "correlation": found["correlation"] or ""}
    if await session.scalar(select(events.c.seq).where(events.c.correlation == term).limit(1)) is not None:
        return {"kind": "transaction", "path": f"/transactions/{term}", "correlation": term}
    correlation = await correlation_of_subject(session, term)
    if correlation is not None:
        return {"kind": "subject", "path": f"/orders/{term}", "correlation": correlation}
    if term in groups:
        return {"kind": "group", "path": f"/groups/{term}"}
    return None


async def transactions(session: AsyncSession, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest business transactions: correlation, subject, first and last time, event count."""
    statement = (
        select(
            events.c.correlation,
            func.min(events.c.subject).label("subject"),
            func.min(events.c.time).label("started"),
            func.max(events.c.time).label("ended"),
            func.count().label("count"),
            func.max(events.c.seq).label("last"),
        )
        .where(events.c.correlation.is_not(None))
        .group_by(events.c.correlation)
        .order_by(func.max(events.c.seq).desc())
        .limit(limit)
    )
    return [
        {"correlation": r.correlation, "subject": r.subject, "started": r.started, "ended": r.ended, "count": r.count}
        for r in await session.execute(statement)
    ]


async def flow(session: AsyncSession) -> list[dict[str, Any]]:
    """How many events of each type each source published: the edges of the system's picture."""
    statement = (
        select(events.c.source, events.c.type, func.count().label("count"))
        .group_by(events.c.source, events.c.type)
        .order_by(events.c.source, events.c.type)
    )
    return [{"source": row.source, "type": row.type, "count": row.count} for row in await session.execute(statement)]


async def rates(session: AsyncSession, *, window: float = 120.0, bucket: float = 2.0) -> dict[str, Any]:
    """Events per second recorded in the last `window` seconds, in `bucket`-second steps, by type
    and by source: `{"times": [...], "by_type": {type: [...]}, "by_source": {source: [...]}}`."""
    now = time.time()
    start = (now - window) // bucket * bucket
    steps = int((now - start) // bucket) + 1
    slot = cast((events.c.recorded_at - start) / bucket, Integer).label("slot")  # >= 0: a floor
    statement = (
        select(slot, events.c.type, events.c.source, func.count().label("count"))
        .where(events.c.recorded_at >= start)
        .group_by(slot, events.c.type, events.c.source)
    )
    by_type: dict[str, list[float]] = {}
    by_source: dict[str, list[float]] = {}
    for row in await session.execute(statement):
        index = min(int(row.slot), steps - 1)
        for series, key in ((by_type, row.type), (by_source, row.source)):
            series.setdefault(key, [0.0] * steps)[index] += row._mapping["count"] / bucket
    times = [start + bucket * index for index in range(steps)]
    return {"times": times, "by_type": dict(sorted(by_type.items())), "by_source": dict(sorted(by_source.items()))}


async def latest_types(session: AsyncSession, correlations: list[str]) -> dict[str, str]:
    """Correlation -> the type of its newest recorded event (a saga's last step, as seen)."""
    if not correlations:
        return {}
    newest = (
        select(func.max(events.c.seq).label("seq"))
        .where(events.c.correlation.in_(correlations))
        .group_by(events.c.correlation)
        .subquery()
    )
    statement = select(events.c.correlation, events.c.type).where(events.c.seq.in_(select(newest.c.seq)))
    return {row.correlation: row.type for row in await session.execute(statement)}
