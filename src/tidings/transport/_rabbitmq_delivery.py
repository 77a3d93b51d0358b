"""A delivery from RabbitMQ, and the per-key gate of `ordering=key` subscriptions.

`RabbitDelivery` decodes lazily (once) and hands its settlement to the subscription that
received it, which knows whether the channel it came over is still open.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from aiormq.abc import DeliveredMessage

from tidings.envelope import Envelope
from tidings.errors import MalformedMessage
from tidings.transport._rabbitmq_codec import from_legacy, to_envelope
from tidings.transport._rabbitmq_config import LegacyMapping
from tidings.transport.base import Delivery


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
                    self._decoded = from_legacy(self.legacy, self.message)
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


class KeyGate:
    """At most one unsettled delivery per partition key; later ones wait here, in arrival order.

    Deliveries without a key pass at once. `admit` says whether a delivery may be handed out
    now; `release` is called when the key's delivery is settled and returns the next one of
    that key, if any, which then holds the key in turn.
    """

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._waiting: dict[str, deque[RabbitDelivery]] = {}

    def admit(self, delivery: RabbitDelivery) -> bool:
        key = delivery.key
        if key is None:
            return True
        if key in self._busy:
            self._waiting.setdefault(key, deque()).append(delivery)
            return False
        self._busy.add(key)
        return True

    def release(self, key: str | None) -> RabbitDelivery | None:
        if key is None:
            return None
        waiting = self._waiting.get(key)
        if not waiting:
            self._busy.discard(key)
            return None
        following = waiting.popleft()
        if not waiting:
            del self._waiting[key]
        return following

    def clear(self) -> None:
        self._busy.clear()
        self._waiting.clear()
