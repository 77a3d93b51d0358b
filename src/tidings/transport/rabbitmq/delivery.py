"""A delivery from RabbitMQ.

`RabbitDelivery` decodes lazily (once) and hands its settlement to the subscription that
received it, which knows whether the channel it came over is still open.
"""

from __future__ import annotations

from typing import Protocol

from aiormq.abc import DeliveredMessage

from tidings.envelope import Envelope
from tidings.errors import Malformation, MalformedMessage
from tidings.legacy import Ignore
from tidings.transport.base import Delivery
from tidings.transport.rabbitmq.codec import to_envelope
from tidings.transport.rabbitmq.config import LegacyMapping
from tidings.transport.rabbitmq.translate import from_legacy


class Settler(Protocol):
    """What settles a delivery: the subscription that received it."""

    group: str

    async def settle(self, delivery: RabbitDelivery, reason: str | None) -> None: ...

    async def retry(self, delivery: RabbitDelivery, after: float) -> None: ...


class RabbitDelivery(Delivery):
    """One message from a group's queue, or from a legacy queue mapped to the group."""

    def __init__(
        self, settler: Settler, message: DeliveredMessage, attempt: int, legacy: LegacyMapping | None = None
    ) -> None:
        super().__init__(settler.group, attempt)
        self.message = message
        self.legacy = legacy
        self._settler = settler
        self._decoded: Envelope | MalformedMessage | None = None

    def envelope(self) -> Envelope:
        if self._decoded is None:
            try:
                if self.legacy is not None:
                    self._decoded = _legacy_envelope(self.legacy, self.message)
                else:
                    self._decoded = to_envelope(self.message)
            except MalformedMessage as error:
                self._decoded = error
        if isinstance(self._decoded, MalformedMessage):
            raise MalformedMessage(self._decoded.kind, self._decoded.detail)
        return self._decoded

    @property
    def key(self) -> str | None:
        """The partition key, or None when there is none or the message cannot be decoded."""
        try:
            return self.envelope().partitionkey
        except MalformedMessage:
            return None

    def again(self) -> RabbitDelivery:
        """The same message handed out once more (a retry held in the consumer), one attempt on."""
        return RabbitDelivery(self._settler, self.message, self.attempt + 1, self.legacy)

    async def _ack(self) -> None:
        await self._settler.settle(self, None)

    async def _retry(self, after: float) -> None:
        await self._settler.retry(self, after)

    async def _dead_letter(self, reason: str) -> None:
        await self._settler.settle(self, reason)


def _legacy_envelope(legacy: LegacyMapping, message: DeliveredMessage) -> Envelope:
    """A legacy message the bridge handed out: its translation raises why it is no event."""
    result = from_legacy(legacy, message)
    if isinstance(result, Ignore):  # the bridge acks what is ignored; this translation changed its mind
        raise MalformedMessage(Malformation.SCHEMA_MISMATCH, f"legacy message ignored late: {result.reason}")
    return result
