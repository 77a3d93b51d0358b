"""The SQLite side of one transport: its worker thread and `Store`, group commit, lease renewal.

All SQLite work of a transport runs on one worker thread, which owns the connection: the event
loop never blocks on the database, and no connection is shared between threads. Publishes and
settlements from all tasks and subscriptions of a transport are committed together by one
writer task (group commit); a heartbeat renews the leases of everything the subscriptions hold,
and their membership of their groups (`members`), and hands back at once what consumers of this
host that died held.
Both the transport and its subscriptions use the worker; neither knows the other's internals.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from typing import Any, Protocol, TypeVar

from tidings.errors import TransportError
from tidings.transport.sqlite import members
from tidings.transport.sqlite.config import SqliteConfig
from tidings.transport.sqlite.members import Member
from tidings.transport.sqlite.store import Lease, Row, Settlement, Store

_log = logging.getLogger("tidings.transport.sqlite")
T = TypeVar("T")
REAP_EVERY = 0.5
"""Seconds between two looks for consumers of this host whose process has died."""


class Busy(TransportError):
    """Another process held the write lock for longer than `busy_timeout`; worth trying again."""


class Holder(Protocol):
    """What the worker needs of a subscription: wake it, renew what it holds, close it."""

    @property
    def member(self) -> Member: ...

    def _poke(self) -> None: ...

    def _leases(self) -> list[Lease]: ...

    async def close(self) -> None: ...


_neighbours: dict[str, weakref.WeakSet[Worker]] = {}
"""Open workers per database file in this process, so a publish or settlement wakes idle
consumers of the same file at once instead of at their next poll."""


class Worker:
    """One transport's thread, connection and background tasks; `open()` it, `close()` it."""

    def __init__(self, config: SqliteConfig) -> None:
        self.config = config
        self.subscriptions: set[Holder] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-sqlite")
        self._store: Store | None = None
        self._publishes: list[tuple[Sequence[Row], asyncio.Future[None]]] = []
        self._pending: list[tuple[Settlement, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self._file = os.path.realpath(config.path)

    async def open(self) -> None:
        """Open (creating if needed) the broker file and its schema."""
        config = self.config
        try:
            self._store = await self.run(partial(Store, config.path, busy_timeout=config.busy_timeout))
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        _neighbours.setdefault(self._file, weakref.WeakSet()).add(self)

    async def run(self, call: Callable[[], T]) -> T:
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
    def store(self) -> Store:
        """The store, to pass to `run`; raises `TransportError` once the worker is closed."""
        if self._store is None:
            raise TransportError(f"the SQLite broker transport for {self.config.path!r} is closed")
        return self._store

    def poke(self) -> None:
        """Wake every idle consumer of this file in this process."""
        for worker in list(_neighbours.get(self._file, ())):
            for subscription in list(worker.subscriptions):
                subscription._poke()

    def watch(self, subscription: Holder) -> None:
        """Keep `subscription`'s leases renewed (and wake it with the others) until it leaves."""
        self.subscriptions.add(subscription)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(), name="tidings-sqlite-heartbeat")

    async def close(self) -> None:
        """Close the subscriptions, commit what is queued, close the file. Idempotent."""
        if self._store is None or self._closing:
            return
        self._closing = True
        for subscription in list(self.subscriptions):
            await subscription.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._writer is not None:
            await self._writer
        store, self._store = self._store, None
        with suppress(TransportError):
            await self.run(store.close)
        self._executor.shutdown(wait=False)
        _neighbours.get(self._file, weakref.WeakSet()).discard(self)

    # -- settlement and leases ---------------------------------------------------------------

    async def publish(self, rows: Sequence[Row]) -> None:
        """Queue `rows` for the next group commit; return once committed (`TransportError` if not)."""
        future: asyncio.Future[None] = self._queue("nothing was published")
        self._publishes.append((rows, future))
        await future

    async def settle(self, settlement: Settlement) -> bool:
        """Queue a settlement for the next group commit; True once committed, False if the lease was lost."""
        future: asyncio.Future[bool] = self._queue("the delivery returns to its group when its lease ends")
        self._pending.append((settlement, future))
        return await future

    def _queue(self, if_closed: str) -> asyncio.Future[Any]:
        """A future for work about to be queued, with the writer running; `TransportError` saying
        "closed: `if_closed`" once the transport is closed."""
        if self._store is None:
            raise TransportError(f"the SQLite broker transport for {self.config.path!r} is closed: {if_closed}")
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="tidings-sqlite-writer")
        return asyncio.get_running_loop().create_future()

    async def _write(self) -> None:
        """The writer: commit everything queued in one transaction, then what queued meanwhile.

        A caller's await returns after the commit that holds its work, so it is as durable as
        with a transaction of its own; concurrent callers share the transaction (and its
        thread hand-off), which is the cost that bounded one-envelope publishes and one-at-a-time
        acks (ADR 0025). A failed commit rolled back everything in it: each caller gets the error.
        """
        while self._publishes or self._pending:
            publishes, self._publishes = self._publishes, []
            settlements, self._pending = self._pending, []
            rows = [row for batch, _ in publishes for row in batch]
            try:
                done = await self.run(partial(self.store.commit, rows, [item for item, _ in settlements], time.time()))
            except Exception as error:  # `run` makes SQLite's errors TransportError; anything else is a bug
                failure = error if isinstance(error, TransportError) else TransportError(f"commit failed: {error!r}")
                futures: list[asyncio.Future[Any]] = [future for _, future in publishes]
                futures += [future for _, future in settlements]
                for future in futures:
                    if not future.done():
                        future.set_exception(failure)
            else:
                for _, future in publishes:
                    if not future.done():
                        future.set_result(None)
                for (_, future), ok in zip(settlements, done, strict=True):
                    if not future.done():
                        future.set_result(ok)
            self.poke()

    async def _beat(self) -> None:
        """Renew held leases and memberships every third of the lease, so only a dead (or frozen)
        process loses them; every `REAP_EVERY` seconds take back what dead processes held.

        A beat that fails in a way no SQLite call does (a bug) is logged with its traceback and
        the next beat follows: a heartbeat that ended would let this process's leases lapse while
        its handlers still run, and their deliveries would go to a neighbour a second time."""
        loop = asyncio.get_running_loop()
        renew_every = self.config.lease / 3
        renew_at = loop.time() + renew_every
        while True:
            await asyncio.sleep(min(REAP_EVERY, renew_every))
            try:
                if loop.time() >= renew_at:
                    renew_at = loop.time() + renew_every
                    await self._renew()
                if self.subscriptions:  # else nothing here would claim what a dead process held
                    await self._reap()
            except Exception as error:
                _log.error(
                    "SQLite broker %r: a heartbeat failed, the next follows: %r", self.config.path, error, exc_info=True
                )

    async def _reap(self) -> None:
        """Make what consumers of dead processes held claimable again; a busy file waits for the next beat."""
        try:
            released = await self.run(partial(members.reap, self.store, time.time()))
        except TransportError as error:
            _log.debug("could not look for dead consumers: %s", error)
            return
        if released:
            _log.info("%d deliveries held by consumers whose process died are claimable again", released)
            self.poke()

    async def _renew(self) -> None:
        holders = list(self.subscriptions)
        if not holders:
            return
        until = time.time() + self.config.lease
        leases = [lease for subscription in holders for lease in subscription._leases()]
        try:
            await self.run(partial(members.renew, self.store, [holder.member for holder in holders], until))
            if leases:
                await self.run(partial(self.store.extend, leases, until))
        except TransportError as error:
            _log.warning("could not renew %d leases: %s", len(leases), error)
