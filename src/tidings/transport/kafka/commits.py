"""Group commit for a Kafka subscription: many settlements, one OffsetCommit request.

A settlement waits (`flush`, or the future `waiter` returns) for the next commit to start;
records queued for hand-out share the *ticket* of that commit. The committer commits the
checkpoint of every ledger that changed in one request and resolves what was waiting when it
started; everyone asking while that commit is in flight waits for the following one. A
deferred ack (`want`) asks without waiting. Under load each request covers many settlements,
and the next starts no sooner than `PACE` after it (ADR 0028). Without requests it still
commits once a second, to move past records the group skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from tidings.errors import TransportError
from tidings.transport.kafka.ledger import Ledger

log = logging.getLogger("tidings.transport.kafka")

IDLE_COMMIT = 1.0
"""Seconds between commits nobody asked for."""
PACE = 0.005
"""Under load, seconds at least from the start of one commit to the start of the next: what is
settled meanwhile shares the next request instead of each round trip carrying a few (a request
costs far more CPU than an offset in it). About 100 instead of 600 commits for 10,000 events."""
BUSY = 4
"""Asks (tickets, waiters, deferred acks) that make a commit count as one under load, so that
the next waits for `PACE`. Below it the next starts at once: a lone key's records (each one's ack
and the next one's raised count: two asks), or one caller awaiting ack after ack, are not slowed
to one per `PACE`."""


class Committer:
    """Commits the checkpoints of `ledgers` (the subscription's live mapping) through `consumer`."""

    def __init__(self, consumer: Any, ledgers: Mapping[Any, Ledger], group: str) -> None:
        self._consumer = consumer
        self._ledgers = ledgers
        self._group = group
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._ticket: asyncio.Future[None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._asked = 0
        """Asks for a commit since the last one started."""

    def ticket(self) -> asyncio.Future[None]:
        """The future of the next commit to start: it covers every change made before this call.

        Shared by everyone who asks before that commit starts: await it through `asyncio.shield`.
        It fails with `TransportError` if the commit fails.
        """
        if self._ticket is None:
            self._ticket = asyncio.get_running_loop().create_future()
            self._ticket.add_done_callback(_observe)
        self._asked += 1
        self._wanted.set()
        return self._ticket

    def want(self) -> None:
        """Ask for a commit of every change made so far, soon, without waiting for it."""
        self._asked += 1
        self._wanted.set()

    async def flush(self) -> None:
        """Return once a commit covering every change made so far succeeded."""
        await self.waiter()

    def waiter(self) -> asyncio.Future[None]:
        """A future of its own (cancelling it harms nobody) that `flush` awaits: done once a commit
        covering every change made before this call succeeded, failed with `TransportError` if not."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._asked += 1
        self._wanted.set()
        return waiter

    async def run(self) -> None:
        """The committer task: commit when asked, or every `IDLE_COMMIT` seconds; under load
        (`BUSY`), no sooner than `PACE` after the previous commit started."""
        loop = asyncio.get_running_loop()
        started, busy = loop.time(), False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_COMMIT):
                    await self._wanted.wait()
            if busy and (wait := started + PACE - loop.time()) > 0:
                await asyncio.sleep(wait)
            self._wanted.clear()
            started, busy, self._asked = loop.time(), self._asked >= BUSY, 0
            await self.commit()

    async def commit(self) -> None:
        """Commit every changed checkpoint now; failures go to the ticket holders (and the log)."""
        async with self._lock:
            ticket, self._ticket = self._ticket, None
            waiters, self._waiters = self._waiters, []
            assigned = self._consumer.assignment()
            changed: list[tuple[Ledger, tuple[int, str]]] = []
            offsets = {}
            for tp, ledger in self._ledgers.items():
                point = ledger.checkpoint() if ledger.active and tp in assigned else None
                if point is not None and point != ledger.committed:
                    offsets[tp] = point
                    changed.append((ledger, point))
            try:
                if offsets:
                    await self._consumer.commit(offsets)
            except BaseException as error:
                failure = TransportError(f"group {self._group!r} could not commit offsets: {error!r}")
                for future in (ticket, *waiters):
                    _settle(future, failure)
                if isinstance(error, asyncio.CancelledError):
                    raise
                log.warning("group %s: offset commit failed: %r", self._group, error)
                return
            for ledger, point in changed:
                ledger.committed = point
            _settle(ticket, None)
            for waiter in waiters:  # one per settlement: inline, not through `_settle`
                if not waiter.done():
                    waiter.set_result(None)

    def close(self, reason: str) -> None:
        """Fail the ticket and waiters of a commit that will not happen any more."""
        ticket, self._ticket = self._ticket, None
        waiters, self._waiters = self._waiters, []
        for future in (ticket, *waiters):
            _settle(future, TransportError(reason))


def _settle(ticket: asyncio.Future[None] | None, error: BaseException | None) -> None:
    if ticket is None or ticket.done():
        return
    if error is None:
        ticket.set_result(None)
    else:
        ticket.set_exception(error)


def _observe(ticket: asyncio.Future[None]) -> None:
    """Mark a failure as seen: nobody may be waiting for this ticket any more."""
    if not ticket.cancelled():
        ticket.exception()
