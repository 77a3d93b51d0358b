"""The recorder's retention: delete events older than the age limit, and the oldest events while
the database is over its size limit (`Retention`, docs/dashboard.md "Retention").

The used size is what the data occupies, not the file: SQLite reuses freed pages, so a file whose
used size is kept under the limit stays at a high-water mark under it too; the WAL is checkpointed
after a prune so it does not grow beside it. PostgreSQL: the table's total relation size. The
recorder's inbox ids go with the events they recorded (`_forget_claims`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.dashboard.config import Retention
from tidings.dashboard.recorder import events, replays
from tidings.store import Store
from tidings.store.tables import inbox

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
        await _forget_claims(session)
        await session.execute(delete(replays).where(replays.c.at < now - retention.max_age))
    by_age, by_size = int(aged.rowcount or 0), 0  # type: ignore[attr-defined]
    used = await used_bytes(store)
    target = retention.max_bytes * retention.low_water
    while used > (target if by_size else retention.max_bytes * retention.high_water):
        async with store.session() as session, session.begin():
            count = await session.scalar(select(func.count()).select_from(events)) or 0
            if count == 0:
                break
            share = 1 - target / used  # the fraction of rows to drop, assuming rows of even size
            batch = max(1, min(count, int(count * share) + 1))
            cutoff = await session.scalar(select(events.c.seq).order_by(events.c.seq).offset(batch - 1).limit(1))
            removed = await session.execute(delete(events).where(events.c.seq <= cutoff))
            await _forget_claims(session)
        by_size += int(removed.rowcount or 0)  # type: ignore[attr-defined]
        used = await used_bytes(store)
    if (by_age or by_size) and not store.is_postgres:
        await _checkpoint(store)
    if by_age or by_size:
        log.info("dashboard retention: %d events past the age limit, %d for size; %d bytes used", by_age, by_size, used)
    return Pruned(by_age, by_size, used)


async def _checkpoint(store: Store) -> None:
    """Copy the WAL into the database and truncate it, outside any transaction (on the driver's
    connection: the store's connections begin eagerly). Busy readers only delay it to next time."""
    async with store.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as error:
            log.debug("dashboard retention: checkpoint deferred: %r", error)


async def _forget_claims(session: AsyncSession) -> None:
    """Drop the inbox ids of events no longer kept (claimed a second or more before the oldest
    event kept): the inbox would otherwise outgrow the limit. Such an event, if ever redelivered,
    is recorded once more, which is what an observer that forgot it should do."""
    oldest = await session.scalar(select(func.min(events.c.recorded_at)))
    cutoff = (oldest - 1.0) if oldest is not None else time.time() - 1.0
    await session.execute(delete(inbox).where(inbox.c.claimed_at < cutoff))


def bound_the_wal(store: Store, retention: Retention) -> None:
    """SQLite: checkpoint the WAL once it holds a tenth of the limit, and truncate it back to
    that size afterwards (`wal_autocheckpoint`, `journal_size_limit`), on every connection the
    store opens from now on. Call it before anything uses the store's connections, then dispose
    of the pool (`Dashboard` does both in a startup hook, before the service consumes)."""
    if store.is_postgres:
        return
    journal = max(64 * 1024, retention.max_bytes // 10)

    @event.listens_for(store.engine.sync_engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA wal_autocheckpoint = {max(16, journal // 4096)}")
            cursor.execute(f"PRAGMA journal_size_limit = {journal}")
        finally:
            cursor.close()


async def keep_pruning(store: Store, retention: Retention) -> None:
    """Prune every `retention.interval` seconds until cancelled (a supervised background task)."""
    while True:
        await prune(store, retention)
        await asyncio.sleep(retention.interval)
