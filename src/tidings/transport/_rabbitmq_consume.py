"""Consuming a group's queue: the subscription, and how its deliveries are settled.

Settlement: `ack()` acks; `retry(after)` publishes a copy (confirmed) to the group's delay
bucket with the attempts so far in `x-tidings-attempts`, then acks; `dead_letter(reason)`
publishes a copy with reason, attempts and group to the group's dead-letter queue, then acks.
A copy that cannot be published raises `PublishError` and the original is requeued (or, if
the connection is gone, the broker has requeued it already). A delivery whose channel has
closed (connection lost, subscription closed) is already back in its queue: settling it does
nothing, so a stale delivery never crashes its consumer and never creates a duplicate copy.

With `ordering=key` the subscription hands out at most one unsettled delivery per partition
key (`KeyGate`), and `retry(after)` keeps the message unacked in the consumer and hands it out
again after `after` seconds, so later events of its key cannot overtake it. A retry longer than
`HOLD_MAX` goes through the delay queue instead (a held message must be acked well within the
broker's `consumer_timeout`, 30 minutes by default), and lets the key move on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Collection, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, Self

from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from tidings.errors import MalformedMessage, PublishError
from tidings.ids import uuid7
from tidings.transport._rabbitmq_codec import (
    ATTEMPTS,
    DEAD_AT,
    DEAD_LETTER_ID,
    DELAY_LEFT,
    GROUP,
    ORIGIN,
    REASON,
    attempt_of,
    copy_properties,
    encode,
    from_legacy,
    header_values,
)
from tidings.transport._rabbitmq_config import LegacyMapping
from tidings.transport._rabbitmq_delivery import KeyGate, RabbitDelivery
from tidings.transport._rabbitmq_link import BROKER_ERRORS, Link, Outgoing
from tidings.transport._rabbitmq_topology import (
    Declarer,
    bucket_for,
    dead_letter_queue,
    delay_queue,
    events_exchange,
    group_queue,
)
from tidings.transport.base import Subscription

log = logging.getLogger("tidings.transport.rabbitmq")
HOLD_MAX = 300.0
"""Longest retry an ordered subscription holds in the consumer, in seconds."""
_FAILURE_PAUSE = 0.5
"""Seconds before requeueing a message whose copy could not be published (no hot loop)."""
_COPY_ERRORS: tuple[type[BaseException], ...] = (PublishError, *BROKER_ERRORS)


class RabbitSubscription(Subscription):
    """One consumer of a group: a channel with `prefetch`, consuming the group's queue and the
    legacy queues mapped to the group; it reopens after a reconnect or a channel error."""

    def __init__(
        self, link: Link, declarer: Declarer, group: str, *, prefetch: int, legacy: Collection[LegacyMapping] = ()
    ) -> None:
        self.group = group
        self._link = link
        self._declarer = declarer
        self._config = link.config
        self._queue = group_queue(self._config, group)
        self._prefetch = max(1, prefetch)
        self._legacy = {mapping.queue: mapping for mapping in legacy}
        self._gate = KeyGate() if self._config.ordering == "key" else None
        self._ready: deque[RabbitDelivery] = deque()
        self._wakeup = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._raw: RawChannel | None = None
        self._queues: dict[str, str] = {}
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._bridge: asyncio.Queue[tuple[DeliveredMessage, LegacyMapping]] = asyncio.Queue()

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        await self._link.wait_up()
        await self._open()
        self._link.add_hook(self._open)
        if self._legacy:
            self._spawn(self._forward_legacy())

    # -- the channel ------------------------------------------------------------------------------

    async def _open(self) -> None:
        """Open a channel and consume; what the previous channel held is back in the queues.

        Never waits for a connection (it runs as a link hook): raises if there is none."""
        async with self._open_lock:
            if self._closed or (self._raw is not None and not self._raw.is_closed):
                return
            self._forget_deliveries()
            channel = await self._link.channel(wait=False)
            raw = await channel.get_underlay_channel()
            await raw.basic_qos(prefetch_count=self._prefetch)
            self._channel, self._raw, self._queues = channel, raw, {}
            channel.close_callbacks.add(self._on_channel_close)
            for queue in (self._queue, *self._legacy):
                ok = await raw.basic_consume(queue, self._on_message)
                self._queues[ok.consumer_tag or ""] = queue

    def _forget_deliveries(self) -> None:
        self._ready.clear()
        if self._gate is not None:
            self._gate.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _on_channel_close(self, sender: Any, error: BaseException | None = None) -> None:
        if sender is self._channel and not self._closed:
            self._spawn(self._reopen(error))

    async def _reopen(self, error: BaseException | None) -> None:
        """A channel error closed the channel but perhaps not the connection: consume again.
        If the connection went too, this fails and the link's reconnection hook reopens."""
        await asyncio.sleep(0)  # let the connection's own close callbacks run first
        try:
            await self._open()
        except BROKER_ERRORS:
            return
        log.warning("%s: consumer channel closed (%r) and reopened", self.group, error)

    def _live(self, delivery: RabbitDelivery) -> bool:
        return delivery.message.channel is self._raw and not delivery.message.channel.is_closed

    # -- receiving --------------------------------------------------------------------------------

    async def _on_message(self, message: DeliveredMessage) -> None:
        if message.channel is not self._raw or self._closed:
            return  # from a channel that is gone: the broker has requeued it
        queue = self._queues.get(message.consumer_tag or "", self._queue)
        left = (message.header.properties.headers or {}).get(DELAY_LEFT)
        if isinstance(left, int) and left > 0:
            self._spawn(self._park(message, left))
            return
        legacy = self._legacy.get(queue)
        if legacy is not None:
            self._bridge.put_nowait((message, legacy))
            return
        self._offer(RabbitDelivery(self, message, _attempt(message)))

    def _offer(self, delivery: RabbitDelivery) -> None:
        if self._gate is None or self._gate.admit(delivery):
            self._ready.append(delivery)
            self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> RabbitDelivery:
        """The next delivery; ends once the subscription is closed. Cancelling the wait loses
        nothing: a delivery leaves the ready queue only in the step that returns it."""
        while True:
            while not self._ready:
                if self._closed:
                    raise StopAsyncIteration
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._closed:
                raise StopAsyncIteration
            delivery = self._ready.popleft()
            if self._live(delivery):
                return delivery

    # -- settling ---------------------------------------------------------------------------------

    async def settle(self, delivery: RabbitDelivery, reason: str | None) -> None:
        """Ack (`reason` None), or dead-letter with `reason`."""
        if not self._live(delivery):
            return  # already back in the queue
        try:
            if reason is None:
                await _ack(delivery.message)
                return
            extra: dict[str, Any] = {
                REASON: reason,
                ATTEMPTS: delivery.attempt,
                GROUP: self.group,
                DEAD_LETTER_ID: uuid7(),
                DEAD_AT: datetime.now(UTC).isoformat(),
            }
            if delivery.legacy is not None:
                extra[ORIGIN] = delivery.legacy.queue
            await self._move(delivery, dead_letter_queue(self._config, self.group), extra)
        finally:
            self._release(delivery)

    async def retry(self, delivery: RabbitDelivery, after: float) -> None:
        if not self._live(delivery):
            return
        if self._gate is not None and delivery.key is not None and after <= HOLD_MAX:
            loop = asyncio.get_running_loop()
            self._timers[id(delivery)] = loop.call_later(after, self._hand_out_again, delivery)
            return  # the key stays taken until the message handed out again is settled
        try:
            delay_ms = math.ceil(after * 1000)
            extra: dict[str, Any] = {ATTEMPTS: delivery.attempt}
            if delay_ms == 0:
                await self._move(delivery, self._queue, extra)
                return
            bucket, left = bucket_for(delay_ms)
            if left:
                extra[DELAY_LEFT] = left
            await self._declarer.delay(self.group, bucket)
            await self._move(delivery, delay_queue(self._config, self.group, bucket), extra)
        finally:
            self._release(delivery)

    def _hand_out_again(self, delivery: RabbitDelivery) -> None:
        self._timers.pop(id(delivery), None)
        if self._live(delivery) and not self._closed:
            self._ready.append(delivery.again())
            self._wakeup.set()

    async def _move(self, delivery: RabbitDelivery, queue: str, extra: Mapping[str, Any]) -> None:
        """Publish a copy to `queue` (confirmed), then ack the original; requeue it on failure."""
        properties = copy_properties(delivery.message.header.properties, extra)
        try:
            await self._link.send([("", queue, properties, delivery.message.body)])
        except PublishError:
            await _requeue(delivery.message)
            raise
        await _ack(delivery.message)

    def _release(self, delivery: RabbitDelivery) -> None:
        if self._gate is not None and self._live(delivery):
            following = self._gate.release(delivery.key)
            if following is not None:
                self._ready.append(following)
                self._wakeup.set()

    # -- messages that are not handed out --------------------------------------------------------

    async def _park(self, message: DeliveredMessage, left_ms: int) -> None:
        """A delay longer than the largest bucket came back early: wait in a bucket again."""
        bucket, left = bucket_for(left_ms)
        headers = message.header.properties.headers or {}
        extra = {key: value for key, value in headers.items() if key.startswith("x-tidings-") and key != DELAY_LEFT}
        if left:
            extra[DELAY_LEFT] = left
        try:
            await self._declarer.delay(self.group, bucket)
            properties = copy_properties(message.header.properties, extra)
            await self._link.send([("", delay_queue(self._config, self.group, bucket), properties, message.body)])
        except _COPY_ERRORS as error:
            log.warning("%s: could not park a delayed retry (%r); requeueing it", self.group, error)
            await _requeue(message)
            return
        await _ack(message)

    async def _forward_legacy(self) -> None:
        """Forward mapped legacy messages to the events exchange in batches, then ack them;
        hand the others out as deliveries whose `envelope()` says why they are not events."""
        while True:
            batch = [await self._bridge.get()]
            while not self._bridge.empty():
                batch.append(self._bridge.get_nowait())
            forward: list[tuple[DeliveredMessage, Outgoing]] = []
            for message, mapping in batch:
                if message.channel is not self._raw:
                    continue
                try:
                    envelope = from_legacy(mapping, message)
                except MalformedMessage:
                    self._offer(RabbitDelivery(self, message, _attempt(message), mapping))
                    continue
                properties, body = encode(envelope)
                forward.append((message, (events_exchange(self._config), envelope.type, properties, body)))
            if not forward:
                continue
            try:
                await self._link.send([outgoing for _, outgoing in forward])
            except PublishError as error:
                log.warning("%s: forwarding %d legacy message(s) failed: %r", self.group, len(forward), error)
                for message, _ in forward:
                    await _requeue(message)
                continue
            for message, _ in forward:
                await _ack(message)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- closing ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop consuming; unsettled deliveries go back to the queue when the channel closes."""
        if self._closed:
            return
        self._closed = True
        self._link.remove_hook(self._open)
        self._forget_deliveries()
        self._wakeup.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._channel.close()


def _attempt(message: DeliveredMessage) -> int:
    return attempt_of(header_values(message.header.properties), bool(message.redelivered))


async def _ack(message: DeliveredMessage) -> None:
    if message.delivery_tag is not None:
        with contextlib.suppress(*BROKER_ERRORS):  # connection gone: the broker requeued it
            await message.channel.basic_ack(message.delivery_tag, wait=False)


async def _requeue(message: DeliveredMessage) -> None:
    """Give a message back after a failed copy, after a pause so a persistent failure is no hot loop."""
    await asyncio.sleep(_FAILURE_PAUSE)
    if message.delivery_tag is not None and not message.channel.is_closed:
        with contextlib.suppress(*BROKER_ERRORS):
            await message.channel.basic_nack(message.delivery_tag, requeue=True, wait=False)
