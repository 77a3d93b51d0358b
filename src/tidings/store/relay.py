"""The outbox relay: publishes committed outbox rows through the transport, then deletes them.

One relay runs per service process (`Relay(store, transport, source=name)`); of several
replicas of a service only one publishes at a time (see `tidings.store.lease`). A cycle reads up
to `batch_size` rows of its source in `id` order, publishes them in one `transport.publish` call,
and deletes them only after that call returned, i.e. after the broker confirmed them. Rows are
deleted, not kept: the outbox stays small and the relay's query fast; `tidings_relay.published`
counts what was sent. A cycle is two statements on the driver (`StoreDialect.relay_read`,
`relay_settle`): on PostgreSQL in one transaction holding the lock; on SQLite the read on a
connection of the relay's own, the deletion beside the next cycle (ADR 0027).

- Prompt: `wake()` (called by the runtime after a commit with events) and, on PostgreSQL,
  `LISTEN tidings_outbox` (commits of other processes) start a cycle at once; otherwise the
  relay polls every `poll_interval`. A full batch is followed by the next one immediately.
- Broker down: a failed or timed-out publish leaves the rows in place; the relay retries with
  exponential backoff (`backoff`) until the broker accepts them, in the same order.
- Poison rows: a row that no longer decodes, or whose envelope the broker refuses for good
  (`EnvelopeRefused`), is parked (`tidings.store.parked`) in the transaction that deletes the
  published rows, and the rows behind it are published in the same cycle (`tidings.store.sending`).
- Crash: rows that were published but not yet deleted are published again by the next relay
  (at-least-once); consumers' inboxes absorb the duplicates.

Run by a supervisor: `await relay.open()`, then `await relay.run()` in a task (it returns after
`request_stop()`, once the batch in flight is done, and raises only if the loop itself breaks:
a supervisor may call `run()` again), then `await relay.close()`. `start()` and `stop(grace)`
do the same with a task of the relay's own. Inbox retention is a job of its own
(`tidings.store.retention.InboxRetention`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.errors import ConfigurationError
from tidings.observe import Telemetry
from tidings.store import lease, outbox
from tidings.store.database import Store
from tidings.store.dialect import OutboxListener
from tidings.store.relay_config import PublishedHook as PublishedHook
from tidings.store.relay_config import RelayConfig as RelayConfig
from tidings.store.sending import Sent, send, to_park
from tidings.store.settling import Deletion, settle
from tidings.store.snapshot import SnapshotReader
from tidings.transport.base import Transport

log = logging.getLogger("tidings.store.relay")


class Relay:
    """The loop publishing `source`'s outbox rows: `open()`, `run()`, `request_stop()`, `close()`
    (or `start()` and `stop()`), and `wake()` after a commit."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        source: str,
        config: RelayConfig | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.source = source
        self.config = config or RelayConfig()
        self.owner = lease.new_owner()
        self.stats: Counter[str] = Counter()
        self.on_published: PublishedHook | None = None
        self.cycle_started_at = 0.0  # Unix time the running (or last) cycle began
        self._store = store
        self._dialect = store.dialect
        self._transport = transport
        self._telemetry = telemetry or Telemetry(source, "")
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._listener: OutboxListener | None = None
        self._row_exists = False
        self._read = 0  # rows the last cycle read, parked ones included
        self._snapshots = SnapshotReader(store)  # SQLite: the relay's read-only connection
        self._deletion = Deletion()  # SQLite: the settle running beside the next cycle

    # -- for a supervisor ------------------------------------------------------------------------

    async def open(self) -> None:
        """Get ready to run: create the source's relay row, and listen for other processes'
        commits where the database can notify (PostgreSQL). Clears an earlier `request_stop()`.
        Raises if the database is unreachable."""
        self._stopping.clear()
        await self._prepare()

    async def _prepare(self) -> None:
        await self._ensure_row()
        if self._listener is None:
            self._listener = self._dialect.listener(self._store.engine, self.source, self.wake)
            if self._listener is not None:
                await self._listener.ensure()

    async def run(self) -> None:
        """Publish until `request_stop()`: returns after the batch in flight (at once if the stop was
        requested already). A failed cycle (broker or database down) is logged and retried with
        `config.backoff`, however many fail in a row; raises only if the loop itself breaks, and
        may then be called again (it prepares what `open()` does, if that is not done yet, so a
        supervisor can restart it as it is). One `run()` at a time."""
        if self._running:
            raise ConfigurationError(f"the relay of {self.source!r} is already running")
        self._running = True
        try:
            await self._prepare()
            await self._loop()
        finally:
            self._running = False

    def request_stop(self) -> None:
        """Make `run()` return once the batch in flight is done; safe to call at any time."""
        self._stopping.set()
        self._wakeup.set()

    async def close(self) -> None:
        """Finish the deletions in flight, stop listening and, where the relay holds a lease (SQLite),
        release it so another relay takes over at once (on failure it expires by itself). Call after
        `run()` returned."""
        try:
            await self._deletion.drain()
        except Exception:
            log.warning("relay %s could not delete its last batch; it is published again", self.source, exc_info=True)
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._snapshots.close()
        if not self._dialect.concurrent_writers:
            try:
                async with self._store.session() as session, session.begin():
                    await lease.release(session, self.source, self.owner)
            except Exception:
                log.warning("relay %s could not release its lease; it expires by itself", self.source, exc_info=True)

    # -- with a task of its own ------------------------------------------------------------------

    async def start(self) -> None:
        """`open()`, then `run()` in a task of the relay's own."""
        if self._task is not None:
            raise ConfigurationError(f"the relay of {self.source!r} is already started")
        await self.open()
        self._task = asyncio.create_task(self.run(), name=f"{self.source}-relay")

    def wake(self) -> None:
        """Publish soon: rows were committed. Safe to call at any time, from the event loop's thread."""
        self._wakeup.set()

    async def stop(self, grace: float = 30.0) -> None:
        """Let the batch in flight finish (up to `grace` seconds, then cancel it: its rows stay), then
        `close()`. Unpublished rows stay for the next relay."""
        self.request_stop()
        task, self._task = self._task, None
        if task is not None:
            _, running = await asyncio.wait({task}, timeout=grace)
            if running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not task.cancelled() and task.exception() is not None:
                log.error("relay %s had stopped: %r", self.source, task.exception())
        await self.close()

    async def run_once(self) -> int:
        """One cycle: publish up to `batch_size` rows if this relay may; returns how many, once deleted."""
        try:
            return await self._cycle()
        finally:
            await self._deletion.drain()

    async def _cycle(self) -> int:
        self.cycle_started_at = time.time()
        await self._ensure_row()
        if self._dialect.concurrent_writers:
            return await self._cycle_locked()
        return await self._cycle_leased()

    async def _ensure_row(self) -> None:
        if not self._row_exists:
            async with self._store.session() as session, session.begin():
                await lease.ensure(session, self.source)
            self._row_exists = True

    # -- the loop --------------------------------------------------------------------------------

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wakeup.clear()
            self._read = 0
            try:
                published = await self._cycle()  # its deletion may still run: see _cycle_leased
            except Exception as error:
                failures += 1
                self.stats["failures"] += 1
                delay = self.config.backoff.delay(failures)
                log.warning(
                    "relay %s: cycle failed (%d in a row), retrying in %.2fs: %r", self.source, failures, delay, error
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            failures = 0
            if max(published, self._read) < self.config.batch_size:  # a full batch: the next one at once
                await self._idle()
        await self._flush()

    async def _flush(self) -> None:
        """On a graceful stop, publish what was committed up to now (a service that publishes and
        stops at once, like a script, must not leave its events behind); a failure leaves the rows
        for the next relay. The supervisor's grace bounds how long this may take."""
        try:
            while await self.run_once() >= self.config.batch_size:
                pass
        except Exception as error:
            log.warning("relay %s: could not publish everything before stopping; rows stay: %r", self.source, error)

    async def _idle(self) -> None:
        if self._listener is not None:
            await self._listener.ensure()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self.config.poll_interval)

    async def _cycle_locked(self) -> int:
        """Concurrent writers (PostgreSQL): in one transaction, lock the source's row and read (one
        statement), publish, then delete and count (one statement) and park."""
        async with self._store.engine.connect() as connection, self._dialect.relay_transaction(connection):
            view = await self._dialect.relay_read(connection, self.source, limit=self.config.batch_size, skip=())
            if view is None:
                self.stats["not_leader"] += 1
                return 0
            batch = outbox.batch_of(view.rows)
            if not len(batch):
                return 0
            sent = await self._send(batch)
            await self._settle(connection, batch, sent)
        return self._done(batch, sent)

    async def _cycle_leased(self) -> int:
        """One writer at a time (SQLite): read on a read-only connection (`tidings.store.snapshot`) under
        the lease read there, else take it and read in a write transaction; publish; delete beside the
        next cycles (`tidings.store.settling.Deletion`)."""
        view, stale = await self._snapshots.read(self.source, limit=self.config.batch_size, deletion=self._deletion)
        if stale:
            self._wakeup.set()
        if not lease.holds(view, self.owner, ttl=self.config.lease, now=time.time()):
            async with self._store.session() as session, session.begin():
                if not await lease.acquire(session, self.source, self.owner, ttl=self.config.lease, now=time.time()):
                    self.stats["not_leader"] += 1
                    return 0
                connection, skip = await session.connection(), self._deletion.deleting
                view = await self._dialect.relay_read(connection, self.source, limit=self.config.batch_size, skip=skip)
        batch = outbox.batch_of(view.rows if view is not None else [])
        if not len(batch):
            return 0
        sent = await self._send(batch)
        settled = [row.id for row in sent.published] + [row_id for row_id, _ in to_park(batch, sent)]
        if settled:

            async def settle_batch(committed: Callable[[], None]) -> None:
                async with self._store.engine.connect() as connection:
                    async with self._dialect.relay_transaction(connection):
                        await self._settle(connection, batch, sent)
                    committed()

            await self._deletion.start(settled, settle_batch, name=f"{self.source}-relay-settle")
        return self._done(batch, sent)

    async def _send(self, batch: outbox.Batch) -> Sent:
        limit = self.config.publish_timeout
        return await send(self._transport, batch.rows, telemetry=self._telemetry, time_limit=limit)

    async def _settle(self, connection: AsyncConnection, batch: outbox.Batch, sent: Sent) -> None:
        """Delete the rows the broker confirmed (the step a crash between publish and commit skips)
        and park those that can never be published, in `connection`'s transaction."""
        await settle(
            self._dialect, connection, batch, sent, source=self.source, owner=self.owner, lease=self.config.lease
        )

    def _done(self, batch: outbox.Batch, sent: Sent) -> int:
        """Account for a settled cycle; raise its transient failure, if any, for the loop's backoff."""
        self._read = len(batch)
        for row_id, reason in to_park(batch, sent):
            self.stats["parked"] += 1
            log.error("relay %s: parked outbox row %d, it cannot be published: %s", self.source, row_id, reason)
        if sent.failure is not None:
            raise sent.failure
        self.stats["published"] += len(sent.published)
        self.stats["batches"] += 1
        if self.on_published is not None and sent.published:
            self.on_published(sent.published, sent.confirmed_at)
        return len(sent.published)
