"""What a Kafka subscription hands out: deliveries, the iterator, and dead-letter records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol

from tidings.envelope import MAX_MESSAGE_BYTES, Envelope, decode
from tidings.transport.base import Delivery
from tidings.transport.kafka.config import (
    CE_PREFIX,
    HEADER_ATTEMPTS,
    HEADER_DEAD_AT,
    HEADER_ORIGIN,
    HEADER_REASON,
)
from tidings.transport.kafka.ledger import Slot

COPY_LIMIT = MAX_MESSAGE_BYTES
"""The largest record the transport's producer sends (aiokafka's `max_request_size`, 1 MiB)."""


class Settler(Protocol):
    """What settles a delivery: the subscription that handed it out."""

    group: str

    def settled(self, slot: Slot) -> asyncio.Future[None]: ...

    def release(self, slot: Slot) -> None: ...

    async def retry(self, slot: Slot, after: float) -> None: ...

    async def dead_letter(self, slot: Slot, reason: str) -> None: ...


class Source(Protocol):
    """Where the iterator takes records from: the subscription's hand-out queue."""

    def take(self) -> Slot | None: ...

    def take_many(self, limit: int) -> list[Slot]: ...

    async def next_slot(self) -> Slot | None: ...


class KafkaDelivery(Delivery):
    """One record handed to one consumer; `attempt` counts hand-outs across all owners of its partition."""

    def __init__(self, subscription: Settler, slot: Slot) -> None:
        Delivery.__init__(self, subscription.group, slot.deliveries)  # not super(): one per delivery
        self.subscription = subscription
        self.slot = slot

    @property
    def position(self) -> tuple[int, int, str | None]:
        """(partition, offset, key) of the record, for the process span's attributes."""
        key = self.slot.key
        return self.slot.record.partition, self.slot.offset, key.decode("utf-8", "replace") if key else None

    def envelope(self) -> Envelope:
        """The record's envelope; with no `ce_partitionkey` header the record key is the
        partition key (the Kafka binding's partitioning extension), as producers that key
        their records but know nothing of the extension send them."""
        record = self.slot.record
        envelope = decode(record.headers or (), record.value or b"", CE_PREFIX)
        if envelope.partitionkey is None and record.key:
            return envelope.with_changes(partitionkey=record.key.decode("utf-8", "replace"))
        return envelope

    async def _ack(self) -> None:
        await self.subscription.settled(self.slot)  # a future: no coroutines in between

    async def _retry(self, after: float) -> None:
        await self.subscription.retry(self.slot, after)

    async def _dead_letter(self, reason: str) -> None:
        await self.subscription.dead_letter(self.slot, reason)


class TakenDelivery(KafkaDelivery):
    """A delivery from `KafkaSubscription.take`: its `ack()` settles the record and asks for the
    commit covering it without waiting for it (`deferred_acks`); `flush()` waits for that commit."""

    async def _ack(self) -> None:
        self.subscription.release(self.slot)


class Deliveries:
    """The iterator of a subscription. Not a generator: cancelling a wait ends only that wait."""

    def __init__(self, source: Source, subscription: Settler) -> None:
        self._source = source
        self._subscription = subscription

    def __aiter__(self) -> Deliveries:
        return self

    async def __anext__(self) -> Delivery:
        source = self._source
        slot = source.take()  # most of the time a record is ready: no coroutine to wait in
        if slot is None:
            slot = await source.next_slot()
            if slot is None:
                raise StopAsyncIteration
        return KafkaDelivery(self._subscription, slot)


class Batches:
    """The batch iterator of a subscription: lists of up to `limit` deliveries ready together.

    Waits only for the first of a batch; the rest are what is ready at that moment, so a batch
    is never held back to fill up. No two deliveries of one batch share a partition key (the
    next of a key is handed out after the previous is settled)."""

    def __init__(self, source: Source, subscription: Settler, limit: int) -> None:
        self._source = source
        self._subscription = subscription
        self._limit = limit

    def __aiter__(self) -> Batches:
        return self

    async def __anext__(self) -> list[KafkaDelivery]:
        slots = await ready_together(self._source, self._limit)
        if not slots:
            raise StopAsyncIteration
        subscription = self._subscription
        return [KafkaDelivery(subscription, slot) for slot in slots]


async def ready_together(source: Source, limit: int) -> list[Slot]:
    """Up to `limit` records to hand out: waits only for the first, then takes what is ready
    with it, so a batch is never held back to fill up; empty once the subscription is closed."""
    slots = source.take_many(limit)
    if slots:
        return slots
    first = await source.next_slot()
    if first is None:
        return []
    return [first, *source.take_many(limit - 1)]


def dead_letter_record(record: Any, reason: str, attempts: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of `record`'s dead letter: its body, its headers (CloudEvents attributes)
    plus why, after how many attempts, from where.

    A copy over `COPY_LIMIT` keeps no body: a record compressed by its producer can hold more
    than this transport's producer sends, and a copy that can never be produced would leave the
    record handed out again and again. The reason then says so, and where the body still is (the
    events topic keeps it for its retention).
    """
    origin = f"{record.topic}/{record.partition}/{record.offset}"
    value = record.value or b""
    headers = [(name, item) for name, item in record.headers or () if not name.startswith("tidings-")]
    size = len(value) + len(record.key or b"") + len(reason) + sum(len(name) + len(item) for name, item in headers)
    if size + 200 > COPY_LIMIT:  # 200: the headers added below and the record's framing
        reason = f"{reason} (the body, {len(value)} bytes, is too large to copy; it is at {origin})"
        value = b""
    return value, [
        *headers,
        (HEADER_REASON, reason.encode()),
        (HEADER_ATTEMPTS, str(attempts).encode()),
        (HEADER_DEAD_AT, datetime.now(UTC).isoformat().encode()),
        (HEADER_ORIGIN, origin.encode()),
    ]
