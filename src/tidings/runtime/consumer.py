"""`Consumer`: takes deliveries from a subscription in batches, at most `concurrency` being handled
at a time, one task each.

`run()` is a supervised background task: it returns when the subscription ends and is cancelled
to stop taking deliveries; `drain(grace)` then waits for the ones in flight. A delivery that
does not finish within the drain timeout is left unsettled and comes back after its lease.

Batches (`Subscription.take`) let an adapter hand out many deliveries and settle them together:
where `deferred_acks` holds (Kafka), a handled delivery's `ack()` returns at once and the batch
waits for one commit covering all of its acks (`flush`) in a task of its own, instead of each
delivery waiting for its own (ADR 0028). Every delivery still runs in its own task, so handlers
run concurrently and each has its own `asyncio.current_task()` and context variables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tidings.transport.base import Delivery, Subscription

log = logging.getLogger("tidings.service")


class Consumer:
    """Feeds `process` the deliveries of `subscription` with bounded concurrency."""

    def __init__(
        self, subscription: Subscription, process: Callable[[Delivery], Coroutine[Any, Any, None]], *, concurrency: int
    ) -> None:
        self.subscription = subscription
        self._process = process
        self._concurrency = concurrency
        self._handling: set[asyncio.Task[None]] = set()
        self._flushing: set[asyncio.Task[None]] = set()
        """One per batch of deferred acks: waiting for the commit that covers them."""
        self._room = asyncio.Event()

    @property
    def inflight(self) -> int:
        """Deliveries being handled (their acks' commit still awaited does not count)."""
        return len(self._handling)

    async def run(self) -> None:
        subscription, handling, limit = self.subscription, self._handling, self._concurrency
        deferred = subscription.deferred_acks
        while True:
            while len(handling) >= limit:
                self._room.clear()
                await self._room.wait()
            deliveries = await subscription.take(limit - len(handling))
            if not deliveries:
                return
            done = _Batch(self, len(deliveries)).done if deferred else self._done
            for delivery in deliveries:
                task = asyncio.create_task(self._process(delivery))
                handling.add(task)
                task.add_done_callback(done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._handling.discard(task)
        self._room.set()

    def _flush(self, count: int) -> None:
        task = asyncio.create_task(self._flushed(count))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flushed(self, count: int) -> None:
        try:
            await self.subscription.flush()
        except Exception as error:  # the broker is gone, or the partitions moved: they come back
            log.warning("the acks of %d deliveries were not committed; they will be redelivered: %s", count, error)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for the deliveries in flight to be settled (and their acks
        committed), then cancel the rest and wait for them to unwind, so that nothing they use is
        closed under them; their deliveries stay unsettled and come back (at-least-once)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for tasks in (self._handling, self._flushing):  # a batch's flush starts once it is handled
            if not tasks:
                continue
            _, late = await asyncio.wait(set(tasks), timeout=max(0.0, deadline - loop.time()))
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)


class _Batch:
    """Counts a batch's deliveries down as they finish; the last one starts its flush."""

    __slots__ = ("_consumer", "_left", "_size")

    def __init__(self, consumer: Consumer, size: int) -> None:
        self._consumer = consumer
        self._left = self._size = size

    def done(self, task: asyncio.Task[None]) -> None:
        consumer = self._consumer
        consumer._done(task)
        self._left -= 1
        if not self._left:
            consumer._flush(self._size)
