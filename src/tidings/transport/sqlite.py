"""The embedded durable broker: one SQLite file in WAL mode, shared by processes on one machine.

`sqlite:///relative/path.db` or `sqlite:////absolute/path.db`, options in the query
(`?lease=5`, see `SqliteConfig`). Zero setup: the file and its schema are created on first use.

- `publish` inserts the messages and, in the same transaction, one delivery row per group
  subscribed to each type (fan-out); it returns after the commit. A type no group subscribes to
  is not stored, as an exchange without bindings drops it.
- A subscription claims up to `prefetch` deliveries at a time with a lease. A heartbeat renews
  the leases of everything it holds, so a slow handler keeps its delivery; when its process dies
  the lease runs out and another consumer gets the delivery with `attempt + 1`. Closing a
  subscription hands its unsettled deliveries back at once.
- Settlements from all subscriptions of a transport are committed together by one flusher
  (group commit); `await delivery.ack()` returns only after its commit.

All SQLite work runs on one worker thread per transport, which owns the connection: the event
loop never blocks on the database, and no connection is shared between threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import ClassVar, Self, TypeVar

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, PublishError, TransportError
from tidings.transport._sqlite_codec import SqliteConfig, encode, stored_headers
from tidings.transport._sqlite_consumer import Busy, SqliteDelivery, SqliteSubscription
from tidings.transport._sqlite_store import Settlement, Store
from tidings.transport.base import Capabilities, DeadLetter, Transport

__all__ = ["SqliteConfig", "SqliteDelivery", "SqliteSubscription", "SqliteTransport"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

_neighbours: dict[str, weakref.WeakSet[SqliteTransport]] = {}
"""Open transports per database file in this process, so a publish or settlement wakes idle
consumers of the same file at once instead of at their next poll."""


class SqliteTransport(Transport):
    """A connection to a SQLite broker file. Safe to share between tasks of one event loop."""

    capabilities: ClassVar[Capabilities] = Capabilities(durable=True, multi_process=True, per_key_ordering=True)

    def __init__(self, config: SqliteConfig) -> None:
        """Prefer `await SqliteTransport.open(url)` or `await connect(url)`, which also open the file."""
        self.config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-sqlite")
        self._store: Store | None = None
        self._subscriptions: set[SqliteSubscription] = set()
        self._pending: list[tuple[Settlement, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self._file = os.path.realpath(config.path)

    @classmethod
    async def open(cls, url: str, *, lease: float | None = None) -> Self:
        """Open (creating if needed) the broker file; `lease` overrides the URL's `?lease=`."""
        config = SqliteConfig.from_url(url)
        transport = cls(config if lease is None else replace(config, lease=lease))
        try:
            transport._store = await transport._run(partial(Store, config.path, busy_timeout=config.busy_timeout))
        except BaseException:
            transport._executor.shutdown(wait=False)
            raise
        _neighbours.setdefault(transport._file, weakref.WeakSet()).add(transport)
        return transport

    async def _run(self, call: Callable[[], T]) -> T:
        """Run `call` on the worker thread; SQLite errors become `TransportError`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):  # incl. extended codes
                raise Busy(f"SQLite broker {self.config.path!r} is busy: {error}") from error
            raise TransportError(f"SQLite broker {self.config.path!r}: {error}") from error
        except (sqlite3.Error, RuntimeError) as error:  # RuntimeError: the executor is shut down
            raise TransportError(f"SQLite broker {self.config.path!r}: {error}") from error

    @property
    def _db(self) -> Store:
        if self._store is None:
            raise TransportError(f"the SQLite broker transport for {self.config.path!r} is closed")
        return self._store

    def _poke(self) -> None:
        for transport in list(_neighbours.get(self._file, ())):
            for subscription in list(transport._subscriptions):
                subscription._poke()

    # -- the port ----------------------------------------------------------------------------

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Store all `envelopes` and their fan-out in one transaction; return after the commit."""
        if not envelopes:
            return
        rows = [encode(envelope) for envelope in envelopes]
        try:
            await self._run(partial(self._db.publish, rows, time.time()))
        except TransportError as error:
            raise PublishError(f"nothing was published: {error}") from error
        self._poke()

    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> SqliteSubscription:
        """Record (group, type) rows durably, then return a consumer holding at most `prefetch` deliveries."""
        if not group or isinstance(types, str) or not types or prefetch < 1:
            raise ConfigurationError(
                f"subscribe needs a group name, a collection of type names and prefetch >= 1; "
                f"got {group!r}, {types!r}, {prefetch!r}"
            )
        names = tuple(sorted(set(types)))
        await self._run(partial(self._db.subscribe, group, names, time.time()))
        subscription = SqliteSubscription(self, group, names, prefetch)
        self._subscriptions.add(subscription)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="tidings-sqlite-heartbeat")
        return subscription

    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        rows = await self._run(partial(self._db.dead_letters, group, limit))
        return [
            DeadLetter(
                id=str(id),
                group=group,
                reason=reason,
                attempts=attempts,
                headers=stored_headers(headers),
                body=body if isinstance(body, bytes) else str(body).encode(),
                event_id=event_id,
                type=type,
                dead_lettered_at=datetime.fromtimestamp(at, UTC),
            )
            for id, reason, attempts, headers, body, event_id, type, at in rows
        ]

    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        count = await self._run(partial(self._db.replay, group, _row_ids(ids), time.time()))
        self._poke()
        return count

    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self._run(partial(self._db.purge, group, _row_ids(ids)))

    async def backlog(self) -> dict[str, int]:
        return await self._run(self._db.backlog)

    async def close(self) -> None:
        """Hand back unsettled deliveries, commit pending settlements, close the file. Idempotent."""
        if self._store is None or self._closing:
            return
        self._closing = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._flusher is not None:
            await self._flusher
        store, self._store = self._store, None
        with suppress(TransportError):
            await self._run(store.close)
        self._executor.shutdown(wait=False)
        _neighbours.get(self._file, weakref.WeakSet()).discard(self)

    # -- settlement and leases ---------------------------------------------------------------

    async def _settle(self, settlement: Settlement) -> bool:
        """Queue a settlement for the next group commit; True once committed, False if the lease was lost."""
        if self._store is None:
            raise TransportError("the transport is closed: the delivery returns to its group when its lease ends")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((settlement, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="tidings-sqlite-flusher")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                done = await self._run(partial(self._db.settle, [item for item, _ in batch], time.time()))
            except TransportError as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
            else:
                for (_, future), ok in zip(batch, done, strict=True):
                    if not future.done():
                        future.set_result(ok)
            self._poke()

    async def _beat(self) -> None:
        """Renew held leases every third of the lease, so only a dead (or frozen) process loses them."""
        while True:
            await asyncio.sleep(self.config.lease / 3)
            leases = [lease for subscription in self._subscriptions for lease in subscription._leases()]
            if leases:
                try:
                    await self._run(partial(self._db.extend, leases, time.time() + self.config.lease))
                except TransportError as error:
                    _log.warning("could not renew %d leases: %s", len(leases), error)


def _row_ids(ids: Collection[str] | None) -> list[int] | None:
    if ids is None:
        return None
    return [int(id) for id in ids if str(id).isdigit()]  # an id that is not ours matches nothing
