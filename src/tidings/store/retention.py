"""Inbox retention: a background job deleting inbox ids older than the retention.

An inbox id is kept for `retention` seconds (`inbox.DEFAULT_RETENTION`, 7 days) after its claim:
an event redelivered after its id was removed would run its handler again, so the retention must
exceed the longest time a broker may redeliver an event that was already handled (see
`tidings.store.inbox`). Every `interval` seconds the job deletes older ids in chunks, one short
transaction per chunk, so it never holds SQLite's write lock (or PostgreSQL row locks) for long.

Run by a supervisor: `await InboxRetention(store).run()` in a task, cancelled to stop; or call
`prune_once()` directly.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from tidings.errors import ConfigurationError
from tidings.store import inbox
from tidings.store.database import Store

log = logging.getLogger("tidings.store.retention")

CHUNK = 10_000
"""Ids deleted per transaction."""


class InboxRetention:
    """Deletes the store's inbox ids older than `retention` seconds, every `interval` seconds."""

    def __init__(self, store: Store, *, retention: float = inbox.DEFAULT_RETENTION, interval: float = 600.0) -> None:
        if retention < 0:
            raise ConfigurationError("the inbox retention must not be negative")
        if interval <= 0:
            raise ConfigurationError("the inbox pruning interval must be positive")
        self.retention = retention
        self.interval = interval
        self.pruned = 0
        """Ids deleted so far by this job."""
        self._store = store

    async def prune_once(self) -> int:
        """Delete every id claimed more than `retention` seconds ago, `CHUNK` per transaction (each
        its own, committed before the next begins); returns how many. Raises on a database error
        (the chunks deleted before it stay deleted)."""
        cutoff, removed = time.time() - self.retention, 0
        while True:
            async with self._store.session() as session, session.begin():
                count = await inbox.prune(session, older_than=cutoff, limit=CHUNK)
            removed += count
            self.pruned += count
            if count < CHUNK:
                return removed

    async def run(self) -> None:
        """Prune, then sleep `interval`, forever; returns only by cancellation. A database error is
        logged as a warning and the next round runs as planned; any other error propagates."""
        while True:
            try:
                removed = await self.prune_once()
            except (SQLAlchemyError, OSError) as error:
                log.warning("inbox retention: pruning failed, trying again in %.0fs: %r", self.interval, error)
            else:
                if removed:
                    log.info("inbox retention: deleted %d inbox ids older than %.0fs", removed, self.retention)
            await asyncio.sleep(self.interval)
