"""Handing out a Kafka subscription's records: which record goes out next, and when.

A record that becomes due (its key free, its retry delay over) is queued with its delivery
count raised, and that count is committed while earlier deliveries are being handled; `take`
hands it out once the commit is done, so a consumer that dies holding a delivery makes it come
back with `attempt + 1`. At most `prefetch` deliveries are out (handed out, not settled) at once.

The fetcher admits records to their partition's `Ledger` and queues those due at once; the
subscription settles deliveries here; the rebalancer stops and forgets revoked partitions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from tidings.errors import TransportError
from tidings.transport.kafka.commits import Committer
from tidings.transport.kafka.ledger import IN_FLIGHT, READY, WAITING, Ledger, Slot

log = logging.getLogger("tidings.transport.kafka")


class HandOut:
    """What one subscription has admitted and not settled, and the queue of what goes out next."""

    def __init__(self, group: str, prefetch: int, committer: Committer) -> None:
        self.group = group
        self.prefetch = prefetch
        self.committer = committer
        self.ready: deque[Slot] = deque()
        self.queued = 0
        """Records admitted and not settled that are not in flight (read ahead, or waiting)."""
        self.in_flight = 0
        self.wakeup = asyncio.Event()
        """Set when a record is queued, the subscription fails or closes."""
        self.room = asyncio.Event()
        """Set when a record leaves (settled or forgotten): the fetcher may read more."""
        self.settling = asyncio.Event()
        """Set when a delivery in flight is settled or returns to waiting."""
        self.timers: set[asyncio.TimerHandle] = set()
        self.failure: BaseException | None = None
        self.closed = False

    def take(self) -> Slot | None:
        """The next record to hand out if one can go out right now (without waiting), else None.

        The iterator's fast path; `next_slot` waits (and raises a failure) when this gives None.
        """
        if self.failure is not None or self.closed:
            return None
        ready = self.ready
        while ready:
            slot = ready[0]
            if slot.state is READY and slot.ledger.handing_out:
                break
            ready.popleft()
        else:
            return None
        # Not while the caller holds `prefetch` unsettled deliveries, nor before its count is committed.
        if self.in_flight >= self.prefetch or not slot.recorded.done():
            return None
        ready.popleft()
        slot.state = IN_FLIGHT
        self.queued -= 1
        self.in_flight += 1
        return slot

    def take_many(self, limit: int) -> list[Slot]:
        """Up to `limit` records that can go out right now, in hand-out order (no waiting)."""
        slots: list[Slot] = []
        take = self.take
        while len(slots) < limit:
            slot = take()
            if slot is None:
                break
            slots.append(slot)
        return slots

    async def next_slot(self) -> Slot | None:
        """The next record to hand out, waiting for one; None once the subscription is closed."""
        while True:
            if self.failure is not None:
                raise TransportError(f"the Kafka consumer of group {self.group!r} failed") from self.failure
            if self.closed:
                return None
            slot = self.take()
            if slot is not None:
                return slot
            if not self.ready:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            if self.in_flight >= self.prefetch:  # the caller holds `prefetch` unsettled deliveries
                self.settling.clear()
                await self.settling.wait()
                continue
            try:  # the head's delivery count is being committed
                await asyncio.shield(self.ready[0].recorded)
            except TransportError as error:  # only the attempt count is at stake; hand out anyway
                log.warning("group %s: could not record a delivery before handing it out: %s", self.group, error)
            # the queue may have changed meanwhile: look again

    def consider(self, slot: Slot) -> None:
        """Queue `slot` if it is due; otherwise arm a timer for its retry delay, if it has one."""
        ledger = slot.ledger
        if slot.state is not WAITING or not ledger.handing_out or slot.ahead is not None:
            return  # not waiting, its partition is being revoked, or an earlier record of its key is unsettled
        if slot.not_before:
            delay = slot.not_before - time.time()
            if delay > 0:  # its key is free: wait for the retry delay
                self._arm(slot, delay)
                return
        # Count the coming hand-out and have it committed (with whatever else is pending)
        # while earlier deliveries are being handled; `next_slot` waits for that commit.
        slot.state = READY
        slot.deliveries += 1
        slot.recorded = self.committer.ticket()
        self.ready.append(slot)
        self.wakeup.set()

    def _arm(self, slot: Slot, delay: float) -> None:
        timer: asyncio.TimerHandle

        def fire() -> None:
            self.timers.discard(timer)
            self.consider(slot)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self.timers.add(timer)

    def land(self, slot: Slot) -> None:
        """An in-flight delivery goes back to waiting (a retry, a failed dead-lettering)."""
        slot.state = WAITING
        self.in_flight -= 1
        self.queued += 1
        self.settling.set()

    def release(self, slot: Slot) -> None:
        """`slot` is settled: forget it, and queue the next record of its key if that is now due."""
        if slot.state is IN_FLIGHT:
            self.in_flight -= 1
        else:
            self.queued -= 1
        following = slot.ledger.settle(slot)
        self.room.set()
        self.settling.set()
        if following is not None:
            self.consider(following)

    def forget(self, ledger: Ledger) -> None:
        """Drop a revoked partition's ledger; its deliveries in flight can no longer commit."""
        ledger.active = ledger.handing_out = False
        for slot in ledger.slots():
            if slot.state is IN_FLIGHT:
                self.in_flight -= 1
            else:
                self.queued -= 1
        self.room.set()
        self.settling.set()

    def fail(self, error: BaseException) -> None:
        """The consumer stopped: waiting for the next delivery raises from now on."""
        self.failure = error
        self.wakeup.set()

    def close(self) -> None:
        """Nothing more goes out; wake everyone waiting and cancel the retry timers."""
        self.closed = True
        self.wakeup.set()
        self.room.set()
        self.settling.set()
        for timer in self.timers:
            timer.cancel()


def stop_handing_out(ledgers: list[Ledger]) -> None:
    """No more hand-outs from these partitions; take back delivery counts raised for none."""
    for ledger in ledgers:
        ledger.handing_out = False
        for slot in ledger.slots():
            if slot.state is READY:
                slot.deliveries -= 1
                slot.state = WAITING


def in_flight(ledgers: list[Ledger]) -> bool:
    return any(slot.state is IN_FLIGHT for ledger in ledgers for slot in ledger.slots())
