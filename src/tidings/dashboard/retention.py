"""The recorder's retention: delete events older than the age limit, and the oldest events while
the database is over its size limit (`Retention`, docs/dashboard.md "Retention").

The used size is what the data occupies, not the file: SQLite reuses freed pages, so a file whose
used size is kept under the limit stays at a high-water mark under it too; the WAL is checkpointed
after a prune so it does not grow beside it. PostgreSQL: the table's total relation size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text

from tidings.dashboard.config import Retention
from tidings.dashboard.recorder import events, replays
from tidings.store import Store

log = logging.getLogger("tidings.dashboard")


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass removed and the used size it left."""

    by_age: int
    by_size: int
    used_bytes: int


async def used_bytes(store: Store) -> int:
    """Bytes the recorded data occupies in the dashboard's database."""
    async with store.engine.connect() as connection:
        if store.is_postgres:
            total = await connection.scalar(text("SELECT pg_total_relation_size('tidings_dashboard_events')"))
            return int(total or 0)
        pages = await connection.scalar(text("PRAGMA page_count"))
        free = await connection.scalar(text("PRAGMA freelist_count"))
        size = await connection.scalar(text("PRAGMA page_size"))
        return int(((pages or 0) - (free or 0)) * (size or 0))


async def prune(store: Store, retention: Retention, *, now: float | None = None) -> Pruned:
    """One pass: by age, then by size (oldest first, down to `low_water` of the limit)."""
    now = time.time() if now is None else now
    async with store.session() as session, session.begin():
        aged = await session.execute(delete(events).where(events.c.recorded_at < now - retention.max_age))
        await session.execute(delete(replays).where(replays.c.at < now - retention.max_age))
    by_age, by_size = int(aged.rowcount or 0), 0  # type: ignore[attr-defined]
    used = await used_bytes(store)
    target = retention.max_bytes * retention.low_water
    while used > retention.max_bytes * retention.low_water:
        async with store.session() as session, session.begin():
            count = await session.scalar(select(func.count()).select_from(events)) or 0
            if count == 0:
                break
            share = 1 - target / used  # the fraction of rows to drop, assuming rows of even size
            batch = max(1, min(count, int(count * share) + 1))
            cutoff = await session.scalar(select(events.c.seq).order_by(events.c.seq).offset(batch - 1).limit(1))
            removed = await session.execute(delete(events).where(events.c.seq <= cutoff))
        by_size += int(removed.rowcount or 0)  # type: ignore[attr-defined]
        used = await used_bytes(store)
    if (by_age or by_size) and not store.is_postgres:
        async with store.engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    if by_age or by_size:
        log.info("dashboard retention: %d events past the age limit, %d for size; %d bytes used", by_age, by_size, used)
    return Pruned(by_age, by_size, used)


async def keep_pruning(store: Store, retention: Retention) -> None:
    """Prune every `retention.interval` seconds until cancelled (a supervised background task)."""
    while True:
        await prune(store, retention)
        await asyncio.sleep(retention.interval)
