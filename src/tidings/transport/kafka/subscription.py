"""One consumer of a Kafka consumer group: a member of `<prefix><group>` on the events topic.

A `KafkaSubscription` puts together the pieces that cooperate on one event loop:

- the *fetcher* (`fetch`) reads records while fewer than `read_ahead` are unsettled, skips those
  the group does not handle, and admits the rest to the partition's `Ledger`;
- the *hand-out* queue (`handout`) gives out due records (their key free, their retry delay
  over) once their raised delivery count is committed, at most `prefetch` at a time;
- the *committer* (`commits`) commits every changed ledger in one request whenever a settlement
  waits for it (settlements are group-committed: `await delivery.ack()` returns after the commit);
- the *rebalancer* (`rebalance`) stops, drains and forgets partitions the member loses, and
  loads the ones it gets.

Settling a delivery whose partition was lost raises `TransportError`, unless the partition came
back to this subscription before the record was handed out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tidings.errors import ConfigurationError, TransportError
from tidings.transport.base import AlreadySettled, Delivery, Subscription
from tidings.transport.kafka.cluster import Cluster, Outgoing
from tidings.transport.kafka.commits import Committer
from tidings.transport.kafka.delivery import (
    Batches,
    Deliveries,
    KafkaDelivery,
    TakenDelivery,
    dead_letter_record,
    ready_together,
)
from tidings.transport.kafka.fetch import Fetcher
from tidings.transport.kafka.handout import HandOut, stop_handing_out
from tidings.transport.kafka.ledger import IN_FLIGHT, Ledger, Slot
from tidings.transport.kafka.rebalance import Rebalancer

log = logging.getLogger("tidings.transport.kafka")


class KafkaSubscription(Subscription):
    """A member of one consumer group; iterate it for deliveries, then `close()` it."""

    deferred_acks = True
    """An ack of a delivery from `take` asks for its commit and returns; `flush()` waits for it."""

    def __init__(
        self,
        cluster: Cluster,
        group: str,
        types: Collection[str],
        prefetch: int,
        on_close: Callable[[KafkaSubscription], None] | None = None,
    ) -> None:
        config = cluster.config
        self._on_close = on_close
        self.group = group
        self._cluster = cluster
        self._consumer = AIOKafkaConsumer(
            **config.client_options(),
            group_id=config.group_id(group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=config.session_timeout_ms,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
        )
        self._ledgers: dict[Any, Ledger] = {}
        self._committer = Committer(self._consumer, self._ledgers, group)
        self._hand_out = HandOut(group, prefetch, self._committer)
        read_ahead = max(prefetch, config.read_ahead)
        self._fetcher = Fetcher(
            self._consumer, self._ledgers, self._hand_out, self._committer, group, set(types), read_ahead
        )
        self._rebalancer = Rebalancer(cluster, group, self._ledgers, self._fetcher, self._hand_out, self._committer)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Join the group; returns after the first assignment (or a generous timeout)."""
        config = self._cluster.config
        await self._consumer.start()
        self._consumer.subscribe([config.events_topic], listener=self._rebalancer)
        self._tasks = [
            asyncio.create_task(self._fetcher.run(), name=f"tidings-kafka-fetch-{self.group}"),
            asyncio.create_task(self._committer.run(), name=f"tidings-kafka-commit-{self.group}"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * config.session_timeout_ms / 1000 + 5):
                await self._rebalancer.assigned.wait()
                return
        log.warning("group %s: no partition assignment yet; consuming once the group settles", self.group)

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return Deliveries(self._hand_out, self)

    def batches(self, limit: int = 256) -> AsyncIterator[list[KafkaDelivery]]:
        """Deliveries in lists of up to `limit` (at most `prefetch` unsettled in all), for a
        consumer that handles many at once and settles them with `ack_all`: one task and one
        commit wait per batch instead of per delivery (ADR 0025). Mixing with plain iteration
        is allowed; each delivery is still settled exactly once, by either way."""
        if limit < 1:
            raise ConfigurationError(f"a batch holds at least one delivery, not {limit}")
        return Batches(self._hand_out, self, limit)

    async def take(self, limit: int) -> list[Delivery]:
        """Deliveries ready together, up to `limit` (as `batches`), whose `ack()` does not wait for
        the commit: the caller settles a batch and then awaits `flush()`, one commit wait for
        them all (how `tidings.runtime.consumer.Consumer` runs a service's deliveries)."""
        if limit < 1:
            raise ConfigurationError(f"a batch holds at least one delivery, not {limit}")
        return [TakenDelivery(self, slot) for slot in await ready_together(self._hand_out, limit)]

    async def flush(self) -> None:
        """Return once a commit covers every settlement made so far; `TransportError` if the
        commit failed or the subscription is closed (what it did not cover comes back)."""
        if self._hand_out.closed:
            raise TransportError(f"the subscription of group {self.group!r} is closed")
        await self._committer.flush()

    async def ack_all(self, deliveries: Sequence[Delivery]) -> None:
        """Ack every one of `deliveries` (handed out by this subscription); return once one commit
        covers them all, as each `ack()` would. `AlreadySettled` if one was settled before (then
        none is acked); `TransportError` after the commit if a partition of some was lost in a
        rebalance (those come back; the others are acked)."""
        slots = []
        for delivery in deliveries:
            if not isinstance(delivery, KafkaDelivery) or delivery.subscription is not self:
                raise ConfigurationError("ack_all takes deliveries of this subscription only")
            if delivery.settled:
                raise AlreadySettled(f"delivery for group {self.group!r} was already settled")
            slots.append(delivery.slot)
        lost: TransportError | None = None
        release = self._hand_out.release
        for delivery, slot in zip(deliveries, slots, strict=True):
            delivery._settled = True
            if slot.ledger.active:
                release(slot)
                continue
            try:
                self._settle_lost(slot)
            except TransportError as error:
                lost = lost or error
        await self._committer.waiter()
        if lost is not None:
            raise lost

    # -- settling ---------------------------------------------------------------------------------

    async def settle(self, slot: Slot) -> None:
        """The delivery of `slot` is done: forget it and return once that is committed."""
        await self.settled(slot)

    def settled(self, slot: Slot) -> asyncio.Future[None]:
        """`settle` without its coroutine (an ack's hot path): forget `slot` now and return the
        future of the commit covering that; raises `TransportError` if its partition was lost."""
        if slot.ledger.active:
            self._hand_out.release(slot)
        else:
            self._settle_lost(slot)
        return self._committer.waiter()

    def release(self, slot: Slot) -> None:
        """A deferred ack (`take`): forget `slot` now and ask for the commit covering it, without
        waiting; raises `TransportError` if its partition was lost."""
        if slot.ledger.active:
            self._hand_out.release(slot)
        else:
            self._settle_lost(slot)
        self._committer.want()

    async def retry(self, slot: Slot, after: float) -> None:
        """Hand `slot` out again after `after` seconds; its key stays blocked until then."""
        if not slot.ledger.active:
            return  # the partition's new owner delivers it again
        self._hand_out.land(slot)
        slot.not_before = time.time() + after
        self._hand_out.consider(slot)
        await self._committer.flush()

    async def dead_letter(self, slot: Slot, reason: str) -> None:
        """Produce `slot`'s record to the group's dead-letter topic, then settle it."""
        record = slot.record
        value, headers = dead_letter_record(record, reason, slot.deliveries)
        topic = self._cluster.config.dlq_topic(self.group)
        try:
            await self._cluster.send([Outgoing(topic, record.key, value, headers)])
        except TransportError:
            if slot.ledger.active:  # not dead-lettered: deliver it again
                self._hand_out.land(slot)
                self._hand_out.consider(slot)
            raise
        await self.settle(slot)

    def _settle_lost(self, slot: Slot) -> None:
        """Settle a delivery whose partition was revoked: possible only if it came back to us."""
        record = slot.record
        ledger = self._ledgers.get(TopicPartition(record.topic, record.partition))
        if ledger is None or not ledger.active:
            raise TransportError(
                f"group {self.group!r} lost partition {record.partition} in a rebalance; "
                "the message will be delivered again"
            )
        again = ledger.slot_at(record.offset)
        if again is None:
            ledger.presettle(record.offset)
        elif again.state is IN_FLIGHT:
            raise TransportError(f"group {self.group!r} handed this message out again after a rebalance")
        else:
            self._hand_out.release(again)

    # -- closing ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the group. Unsettled deliveries go to the group's other consumers with attempt + 1."""
        if self._hand_out.closed:
            return
        self._hand_out.close()
        fetcher, committer = self._tasks or (None, None)
        await _cancel(fetcher)
        stop_handing_out(list(self._ledgers.values()))
        with contextlib.suppress(Exception):
            await self._committer.commit()
        await _cancel(committer)
        for ledger in self._ledgers.values():
            ledger.active = ledger.handing_out = False
        try:
            await self._consumer.stop()
        except Exception:
            log.debug("group %s: stopping the consumer failed", self.group, exc_info=True)
        self._committer.close(f"the subscription of group {self.group!r} is closed")
        if self._on_close is not None:
            self._on_close(self)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
