"""Admin view of a service database's outbox: backlog, age of the oldest unsent row, sent count,
parked rows.

`tidings outbox status --database URL` prints `await outbox_status(URL)`.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from tidings.errors import ConfigurationError
from tidings.store import parked
from tidings.store.database import Store, check_folder, normalise_url
from tidings.store.tables import outbox, relay
from tidings.transport.urls import redact


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """The outbox of one source (service) in the database."""

    source: str
    pending: int
    oldest_pending_age: float | None
    """Seconds since the oldest unsent row was written; None when nothing is pending."""
    published: int
    """Rows published (and deleted) since the database was created."""
    last_published_age: float | None
    relay_owner: str | None
    """The relay holding the lease (SQLite) or that published last (PostgreSQL)."""
    parked: int = 0
    """Rows the relay set aside because they cannot be published (`tidings outbox parked`)."""


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """Totals over every source, and the per-source figures in `sources` (sorted by name)."""

    pending: int
    oldest_pending_age: float | None
    published: int
    sources: tuple[SourceStatus, ...]
    parked: int = 0


async def outbox_status(database_url: str | URL) -> OutboxStatus:
    """Read the outbox figures of the database at `database_url` without changing anything.

    Raises `ConfigurationError` when the database has no Tidings tables (no service ran on it).
    """
    url = normalise_url(database_url)
    check_folder(url)
    if url.drivername.startswith("sqlite") and not await asyncio.to_thread(os.path.exists, url.database or ""):
        raise ConfigurationError(f"no SQLite database at {url.database!r}")
    store = await Store.open(url, migrate=False, pool_size=1, read_only=True)
    try:
        async with store.session() as session, session.begin():
            backlog = await session.execute(
                select(outbox.c.source, func.count(), func.min(outbox.c.created_at)).group_by(outbox.c.source)
            )
            pending = {row[0]: (int(row[1]), float(row[2])) for row in backlog}
            relays = {row.source: row for row in await session.execute(select(relay))}
    except DBAPIError as error:
        await store.close()
        raise ConfigurationError(
            f"{redact(str(database_url))} has no Tidings outbox (has a service run on it?): {error.orig}"
        ) from None
    try:
        async with store.session() as session, session.begin():
            parked_counts = await parked.counts(session)
    except DBAPIError:  # a database an older Tidings migrated: it parks nothing
        parked_counts = {}
    finally:
        await store.close()
    now = time.time()
    sources = []
    for name in sorted(pending.keys() | relays.keys() | parked_counts.keys()):
        count, oldest = pending.get(name, (0, None))
        row = relays.get(name)
        last = row.last_published_at if row is not None else None
        sources.append(
            SourceStatus(
                source=name,
                pending=count,
                oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
                published=int(row.published) if row is not None else 0,
                last_published_age=None if last is None else max(0.0, now - last),
                relay_owner=row.owner if row is not None else None,
                parked=parked_counts.get(name, 0),
            )
        )
    ages = [s.oldest_pending_age for s in sources if s.oldest_pending_age is not None]
    return OutboxStatus(
        pending=sum(s.pending for s in sources),
        oldest_pending_age=max(ages) if ages else None,
        published=sum(s.published for s in sources),
        sources=tuple(sources),
        parked=sum(parked_counts.values()),
    )
