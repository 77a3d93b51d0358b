"""Forwarding messages of legacy queues (plain JSON from non-Tidings publishers) as events.

A subscription whose group has legacy mappings consumes their queues too and puts each
message it gets there into its `Bridge`. The bridge translates each (`translate.from_legacy`),
forwards the events to the events exchange in batches (confirmed), then acks the originals;
it acks what the translation ignores; what it refuses goes back to the subscription, which
hands it out as a delivery whose `envelope()` says why it is not an event, so the runtime
dead-letters it (with the queue it came from, where replay returns it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiormq.abc import DeliveredMessage

from tidings.errors import MalformedMessage, PublishError
from tidings.legacy import Ignore
from tidings.transport.rabbitmq.codec import encode
from tidings.transport.rabbitmq.config import LegacyMapping
from tidings.transport.rabbitmq.link import Link, Outgoing
from tidings.transport.rabbitmq.settlement import ack, requeue
from tidings.transport.rabbitmq.topology import events_exchange
from tidings.transport.rabbitmq.translate import from_legacy

log = logging.getLogger("tidings.transport.rabbitmq")


class Bridge:
    """The legacy messages one subscription received, on their way to the events exchange."""

    def __init__(
        self,
        link: Link,
        group: str,
        current: Callable[[DeliveredMessage], bool],
        refuse: Callable[[DeliveredMessage, LegacyMapping], None],
    ) -> None:
        """`current(message)`: whether it came over the subscription's live channel;
        `refuse(message, mapping)`: hand out a message no mapping recognises."""
        self._link = link
        self._group = group
        self._current = current
        self._refuse = refuse
        self._queue: asyncio.Queue[tuple[DeliveredMessage, LegacyMapping]] = asyncio.Queue()

    def put(self, message: DeliveredMessage, mapping: LegacyMapping) -> None:
        self._queue.put_nowait((message, mapping))

    async def run(self) -> None:
        """Forward mapped legacy messages to the events exchange in batches, then ack them;
        hand the others out as deliveries whose `envelope()` says why they are not events."""
        exchange = events_exchange(self._link.config)
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            forward: list[tuple[DeliveredMessage, Outgoing]] = []
            for message, mapping in batch:
                if not self._current(message):
                    continue
                try:
                    envelope = from_legacy(mapping, message)
                except MalformedMessage:
                    self._refuse(message, mapping)
                    continue
                if isinstance(envelope, Ignore):
                    log.info(
                        "%s: ignoring a message of legacy queue %s: %s", self._group, mapping.name, envelope.reason
                    )
                    await ack(message)
                    continue
                properties, body = encode(envelope)
                forward.append((message, (exchange, envelope.type, properties, body)))
            if not forward:
                continue
            try:
                await self._link.send([outgoing for _, outgoing in forward])
            except PublishError as error:
                log.warning("%s: forwarding %d legacy message(s) failed: %r", self._group, len(forward), error)
                for message, _ in forward:
                    await requeue(message)
                continue
            for message, _ in forward:
                await ack(message)
