"""What a Kafka subscription hands out: deliveries, the iterator, and dead-letter records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tidings.envelope import Envelope, decode
from tidings.transport._kafka_config import (
    CE_PREFIX,
    HEADER_ATTEMPTS,
    HEADER_DEAD_AT,
    HEADER_ORIGIN,
    HEADER_REASON,
)
from tidings.transport._kafka_ledger import Slot
from tidings.transport.base import Delivery

if TYPE_CHECKING:
    from tidings.transport._kafka_subscription import KafkaSubscription


class KafkaDelivery(Delivery):
    """One record handed to one consumer; `attempt` counts hand-outs across all owners of its partition."""

    def __init__(self, subscription: KafkaSubscription, slot: Slot) -> None:
        Delivery.__init__(self, subscription.group, slot.deliveries)  # not super(): one per delivery
        self._subscription = subscription
        self._slot = slot

    def envelope(self) -> Envelope:
        record = self._slot.record
        return decode(record.headers or (), record.value or b"", CE_PREFIX)

    async def _ack(self) -> None:
        await self._subscription.settled(self._slot)  # a future: no coroutines in between

    async def _retry(self, after: float) -> None:
        await self._subscription.retry(self._slot, after)

    async def _dead_letter(self, reason: str) -> None:
        await self._subscription.dead_letter(self._slot, reason)


class Deliveries:
    """The iterator of a subscription. Not a generator: cancelling a wait ends only that wait."""

    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    def __aiter__(self) -> Deliveries:
        return self

    async def __anext__(self) -> Delivery:
        subscription = self._subscription
        slot = subscription.take()  # most of the time a record is ready: no coroutine to wait in
        if slot is None:
            slot = await subscription.next_slot()
            if slot is None:
                raise StopAsyncIteration
        return KafkaDelivery(subscription, slot)


def dead_letter_headers(record: Any, reason: str, attempts: int) -> list[tuple[str, bytes]]:
    """The original record's headers (CloudEvents attributes) plus why, after how many attempts, from where."""
    headers = [(key, value) for key, value in record.headers or () if not key.startswith("tidings-")]
    return [
        *headers,
        (HEADER_REASON, reason.encode()),
        (HEADER_ATTEMPTS, str(attempts).encode()),
        (HEADER_DEAD_AT, datetime.now(UTC).isoformat().encode()),
        (HEADER_ORIGIN, f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]
