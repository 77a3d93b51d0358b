"""The consuming side of the SQLite broker: a subscription (one consumer) and its deliveries.

A subscription claims deliveries in batches on the transport's worker thread and hands them
out one by one. Its window is `prefetch`: claimed-but-not-handed-out plus handed-out-but-not-
settled deliveries never exceed it, so a busy consumer leaves the rest of the group's work to
the other consumers. Settling goes through the worker's group-commit writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import deque
from contextlib import suppress
from functools import partial
from typing import Self

from tidings.envelope import Envelope
from tidings.errors import TransportError
from tidings.transport.base import Delivery, Subscription
from tidings.transport.sqlite import members
from tidings.transport.sqlite.codec import decode_row
from tidings.transport.sqlite.members import Member
from tidings.transport.sqlite.store import Claimed, Kind, Lease, Settlement
from tidings.transport.sqlite.worker import Busy, Worker

_log = logging.getLogger("tidings.transport.sqlite")


class SqliteSubscription(Subscription):
    """One consumer of `group`: iterate it for deliveries, then `close()` it.

    It holds at most `prefetch` unsettled deliveries (claimed or handed out); when full it
    waits for a settlement before claiming more, as a broker's prefetch window does.
    """

    def __init__(self, worker: Worker, group: str, types: tuple[str, ...], prefetch: int) -> None:
        self.group = group
        self.types = types
        self.prefetch = prefetch
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._worker = worker
        self._buffer: deque[SqliteDelivery] = deque()
        self._held: dict[int, SqliteDelivery] = {}
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._fetching: asyncio.Task[None] | None = None
        self._error: TransportError | None = None
        self._closed = False

    @property
    def member(self) -> Member:
        return Member(self.owner, self.group, self.types)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SqliteDelivery:
        config = self._worker.config
        delay = config.poll_min
        while not self._closed:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._buffer:
                delivery = self._buffer.popleft()
                self._held[delivery.lease.id] = delivery
                return delivery
            self._wake.clear()  # before claiming: a poke during the claim is not lost
            room = self.prefetch - len(self._held)
            if room > 0:
                if await self._fetch(room):
                    delay = config.poll_min
                    continue
                await self._idle(delay)
                delay = min(delay * 2, config.poll_max)
            else:
                await self._idle(config.poll_max)
        raise StopAsyncIteration

    async def _fetch(self, room: int) -> bool:
        # The claim runs as its own task, shielded: a consumer cancelled while waiting (a timeout)
        # never loses claimed rows; they stay in the buffer for its next call or for close().
        if self._fetching is None:
            self._fetching = asyncio.create_task(self._claim(room))
        task = self._fetching
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._fetching is task:
                self._fetching = None
        return bool(self._buffer)

    async def _claim(self, room: int) -> None:
        now, lease = time.time(), self._worker.config.lease
        try:
            db = self._worker.store  # raises once the transport is closed
            claimed = await self._worker.run(
                partial(db.claim, self.group, self.types, self.owner, room, now, now + lease)
            )
        except Busy as error:
            _log.debug("claim for %r skipped: %s", self.group, error)
        except TransportError as error:
            self._error = error
        else:
            self._buffer.extend(SqliteDelivery(self, item) for item in claimed)

    async def _idle(self, seconds: float) -> None:
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _poke(self) -> None:
        if self._loop is asyncio.get_running_loop():
            self._wake.set()
        else:
            with suppress(RuntimeError):  # that loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._wake.set)

    def _leases(self) -> list[Lease]:
        return [delivery.lease for delivery in (*self._buffer, *self._held.values())]

    async def _settle(self, delivery: SqliteDelivery, kind: Kind, *, at: float = 0.0, reason: str = "") -> None:
        self._held.pop(delivery.lease.id, None)
        self._wake.set()  # room for one more
        settlement = Settlement(
            kind, delivery.lease, self.group, delivery.message_id, delivery.partition_key, at, reason
        )
        if not await self._worker.settle(settlement):
            _log.warning(
                "%s of a delivery for group %r had no effect: its lease ran out or its subscription closed first,"
                " so it is (or will be) delivered again",
                kind.value,
                self.group,
            )

    async def close(self) -> None:
        """Stop; unsettled deliveries (claimed or handed out) become claimable by others at once."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._fetching is not None:
            await asyncio.shield(self._fetching)
        leases = [(d.lease, True) for d in self._buffer] + [(d.lease, False) for d in self._held.values()]
        self._buffer.clear()
        self._held.clear()
        self._worker.subscriptions.discard(self)
        try:
            if leases:
                await self._worker.run(partial(self._worker.store.release, leases, time.time()))
            await self._worker.run(partial(members.leave, self._worker.store, [self.owner]))
        except TransportError as error:
            _log.warning("could not hand back %d deliveries (they return after the lease): %s", len(leases), error)
        self._worker.poke()


class SqliteDelivery(Delivery):
    """A claimed delivery. Settling it after its subscription closed (or its lease was lost) is a no-op."""

    def __init__(self, subscription: SqliteSubscription, claimed: Claimed) -> None:
        super().__init__(subscription.group, claimed.lease.attempts)
        self.lease = claimed.lease
        self.message_id = claimed.message_id
        self.partition_key = claimed.partition_key
        self._headers = claimed.headers
        self._body = claimed.body
        self._subscription = subscription

    def envelope(self) -> Envelope:
        return decode_row(self._headers, self._body)

    async def _ack(self) -> None:
        await self._subscription._settle(self, Kind.ACK)

    async def _retry(self, after: float) -> None:
        await self._subscription._settle(self, Kind.RETRY, at=time.time() + after)

    async def _dead_letter(self, reason: str) -> None:
        await self._subscription._settle(self, Kind.DEAD_LETTER, reason=reason)
