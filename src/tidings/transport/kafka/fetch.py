"""Reading a Kafka subscription's partitions: the fetcher task and what it admits.

The fetcher reads records while fewer than `read_ahead` are admitted and unsettled, skips
those the group does not handle, and admits the rest to their partition's `Ledger`; records
that head their key go straight to the hand-out queue. It pauses partitions being loaded after
an assignment, and every partition while there is no room, but still polls now and then so
Kafka does not presume the consumer hung.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka.errors import KafkaError

from tidings.transport.kafka.cluster import relevant
from tidings.transport.kafka.commits import Committer
from tidings.transport.kafka.handout import HandOut
from tidings.transport.kafka.ledger import READY, Ledger

log = logging.getLogger("tidings.transport.kafka")

_FETCH_WAIT_MS = 100
_KEEPALIVE = 10.0
"""A consumer with no room still polls this often, so Kafka does not think it hung."""


class Fetcher:
    """Reads for one subscription's consumer into its ledgers and hand-out queue; `run` is its task."""

    def __init__(
        self,
        consumer: Any,
        ledgers: dict[Any, Ledger],
        hand_out: HandOut,
        committer: Committer,
        group: str,
        types: set[str],
        read_ahead: int,
    ) -> None:
        self.types = types
        """The types the group handles; the rebalancer adds those other members registered."""
        self.loading: set[Any] = set()
        """Partitions assigned whose committed offsets and metadata are being read: paused."""
        self._consumer = consumer
        self._ledgers = ledgers
        self._hand_out = hand_out
        self._committer = committer
        self._group = group
        self._read_ahead = read_ahead
        self._low_water = max(1, read_ahead // 4)

    def room(self) -> int:
        """Records the fetcher may still admit."""
        return self._read_ahead - self._hand_out.queued

    async def run(self) -> None:
        hand_out = self._hand_out
        while not hand_out.closed:
            try:
                room = self.room()
                self.sync_pause(room)
                if room < self._low_water and hand_out.queued:  # fetch in batches, not record by record
                    hand_out.room.clear()
                    try:
                        async with asyncio.timeout(_KEEPALIVE):
                            await hand_out.room.wait()
                    except TimeoutError:  # poll anyway, or Kafka presumes this consumer hung
                        self.admit(await self._consumer.getmany(timeout_ms=0, max_records=max(1, room)))
                    continue
                batch = await self._consumer.getmany(timeout_ms=_FETCH_WAIT_MS, max_records=room)
                self.admit(batch)
            except asyncio.CancelledError:
                raise
            except KafkaError as error:
                if not error.retriable:
                    self._fail(error)
                    return
                log.warning("group %s: fetching failed, retrying: %r", self._group, error)
                await asyncio.sleep(0.5)
            except Exception as error:
                self._fail(error)
                return

    def _fail(self, error: BaseException) -> None:
        log.error("group %s: the Kafka consumer stopped: %r", self._group, error)
        self._hand_out.fail(error)

    def admit(self, batch: dict[Any, list[Any]]) -> None:
        hand_out = self._hand_out
        for tp, records in batch.items():
            ledger = self._ledgers.get(tp)
            if ledger is None or not ledger.active:  # assigned but not loaded yet: read it again later
                with contextlib.suppress(Exception):
                    self._consumer.seek(tp, records[0].offset)
                continue
            # `HandOut.consider` inlined for the common case (due at once); all queued slots of
            # this batch share the ticket of the next commit, which cannot start during this loop.
            admit, group, types = ledger.admit, self._group, self.types
            ready, ticket = hand_out.ready, None
            for record in records:
                slot = admit(record.offset, record.key, record, relevant=relevant(record, group, types))
                if slot is None:
                    continue
                hand_out.queued += 1
                if slot.not_before:  # a retry delay carried over from the previous owner
                    hand_out.consider(slot)
                elif ledger.handing_out and slot.ahead is None:  # it heads its key
                    slot.state = READY
                    slot.deliveries += 1
                    if ticket is None:
                        ticket = self._committer.ticket()
                    slot.recorded = ticket
                    ready.append(slot)
            if ticket is not None:
                hand_out.wakeup.set()

    def sync_pause(self, room: int) -> None:
        """Pause partitions being loaded, and every partition while there is no room."""
        assigned = self._consumer.assignment()
        wanted = set(assigned) if room <= 0 else self.loading & assigned
        paused = self._consumer.paused()
        if wanted - paused:
            self._consumer.pause(*(wanted - paused))
        if paused - wanted:
            self._consumer.resume(*(paused - wanted))
