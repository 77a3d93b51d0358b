"""Consuming a group's queue: the subscription, and how its deliveries are settled.

Settlement: `ack()` acks; `retry(after)` publishes a copy (confirmed) to the group's delay
bucket with the attempts so far in `x-tidings-attempts`, then acks; `dead_letter(reason)`
publishes a copy with reason, attempts and group to the group's dead-letter queue, then acks.
A copy that cannot be published raises `PublishError` and the original is requeued (or, if
the connection is gone, the broker has requeued it already). A delivery whose channel has
closed (connection lost, subscription closed) is already back in its queue: settling it does
nothing, so a stale delivery never crashes its consumer and never creates a duplicate copy.
The broker side of all this (acks, requeues, copies) is in `settlement`; legacy queues in `legacy`.

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
from collections.abc import Collection, Coroutine
from functools import partial
from typing import Any, Self

from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from tidings.transport.base import Subscription
from tidings.transport.keys import KeyGate
from tidings.transport.rabbitmq.codec import ATTEMPTS, DELAY_LEFT
from tidings.transport.rabbitmq.config import LegacyMapping
from tidings.transport.rabbitmq.delivery import RabbitDelivery
from tidings.transport.rabbitmq.legacy import Bridge
from tidings.transport.rabbitmq.link import BROKER_ERRORS, Link
from tidings.transport.rabbitmq.settlement import ack, attempt, dead_letter_headers, move, park
from tidings.transport.rabbitmq.topology import Declarer, bucket_for, dead_letter_queue, delay_queue, group_queue

log = logging.getLogger("tidings.transport.rabbitmq")
HOLD_MAX = 300.0
"""Longest retry an ordered subscription holds in the consumer, in seconds."""


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
        self._gate: KeyGate[RabbitDelivery] | None = KeyGate() if self._config.ordering == "key" else None
        self._ready: deque[RabbitDelivery] = deque()
        self._wakeup = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._raw: RawChannel | None = None
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._bridge = Bridge(link, group, self._current, self._refuse)

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        await self._link.wait_up()
        await self._open()
        self._link.add_hook(self._open)
        if self._legacy:
            self._spawn(self._bridge.run())

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
            self._channel, self._raw = channel, raw
            channel.close_callbacks.add(self._on_channel_close)
            for queue in (self._queue, *self._legacy):
                # One callback per queue: the broker sends waiting messages right behind
                # consume-ok, before this coroutine resumes, so a tag -> queue table filled
                # after the call would take them for messages of the group's own queue.
                await raw.basic_consume(queue, partial(self._on_message, queue))

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

    def _current(self, message: DeliveredMessage) -> bool:
        return message.channel is self._raw

    # -- receiving --------------------------------------------------------------------------------

    async def _on_message(self, queue: str, message: DeliveredMessage) -> None:
        if message.channel is not self._raw or self._closed:
            return  # from a channel that is gone: the broker has requeued it
        left = (message.header.properties.headers or {}).get(DELAY_LEFT)
        if isinstance(left, int) and left > 0:
            self._spawn(park(self._link, self._declarer, self._config, self.group, message, left))
            return
        legacy = self._legacy.get(queue)
        if legacy is not None:
            self._bridge.put(message, legacy)
            return
        self._offer(RabbitDelivery(self, message, attempt(message)))

    def _refuse(self, message: DeliveredMessage, mapping: LegacyMapping) -> None:
        """A legacy message no mapping recognises: hand it out, its `envelope()` says why."""
        self._offer(RabbitDelivery(self, message, attempt(message), mapping))

    def _offer(self, delivery: RabbitDelivery) -> None:
        if self._gate is None or self._gate.admit(delivery.key, delivery):
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
                await ack(delivery.message)
                return
            extra = dead_letter_headers(self.group, reason, delivery.attempt, delivery.legacy)
            await move(self._link, delivery.message, dead_letter_queue(self._config, self.group), extra)
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
                await move(self._link, delivery.message, self._queue, extra)
                return
            bucket, left = bucket_for(delay_ms)
            if left:
                extra[DELAY_LEFT] = left
            await self._declarer.delay(self.group, bucket)
            await move(self._link, delivery.message, delay_queue(self._config, self.group, bucket), extra)
        finally:
            self._release(delivery)

    def _hand_out_again(self, delivery: RabbitDelivery) -> None:
        self._timers.pop(id(delivery), None)
        if self._live(delivery) and not self._closed:
            self._ready.append(delivery.again())
            self._wakeup.set()

    def _release(self, delivery: RabbitDelivery) -> None:
        if self._gate is not None and self._live(delivery):
            following = self._gate.release(delivery.key)
            if following is not None:
                self._ready.append(following)
                self._wakeup.set()

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
