"""`Consumer` (pure logic, a fake subscription): batches taken within the free concurrency, a task
per delivery, one `flush()` per batch once its last delivery is done (only where acks are
deferred), a failed flush logged rather than fatal, and a drain that waits for the flushes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.conformance.events import ping
from tests.waiting import eventually
from tidings.envelope import Envelope
from tidings.errors import TransportError
from tidings.runtime.consumer import Consumer
from tidings.transport.base import Delivery, Subscription


class Item(Delivery):
    def __init__(self, n: int) -> None:
        super().__init__("g", 1)
        self.n = n
        self.acked = False

    def envelope(self) -> Envelope:
        return ping(self.n)

    async def _ack(self) -> None:
        self.acked = True

    async def _retry(self, after: float) -> None:
        raise AssertionError("not retried here")

    async def _dead_letter(self, reason: str) -> None:
        raise AssertionError("not dead-lettered here")


class Batches(Subscription):
    """Hands out `items` in batches as asked; records the limits asked and each flush."""

    deferred_acks = True

    def __init__(self, items: list[Item]) -> None:
        self.items = items
        self.handed = list(items)
        self.limits: list[int] = []
        self.batches: list[set[int]] = []
        self.flushes: list[set[int]] = []
        """The numbers of the deliveries acked when each flush was called."""
        self.fail_flush = False
        self.hold_flush: asyncio.Event | None = None

    def __aiter__(self) -> AsyncIterator[Delivery]:
        raise AssertionError("the consumer takes batches")

    async def take(self, limit: int) -> list[Delivery]:
        self.limits.append(limit)
        taken, self.items = self.items[:limit], self.items[limit:]
        if not taken:
            await asyncio.Event().wait()  # nothing more: wait until cancelled
        self.batches.append({item.n for item in taken})
        return list(taken)

    async def flush(self) -> None:
        self.flushes.append({item.n for item in self.handed if item.acked})
        if self.hold_flush is not None:
            await self.hold_flush.wait()
        if self.fail_flush:
            raise TransportError("the commit failed")

    async def close(self) -> None:
        pass


def subscription_of(count: int) -> Batches:
    return Batches([Item(n) for n in range(count)])


async def test_batches_fit_the_free_concurrency_and_each_flushes_after_its_last_delivery() -> None:
    subscription = subscription_of(10)
    gates = {n: asyncio.Event() for n in range(10)}
    running: set[int] = set()
    most = 0

    async def process(delivery: Delivery) -> None:
        nonlocal most
        assert isinstance(delivery, Item)
        running.add(delivery.n)
        most = max(most, len(running))
        await gates[delivery.n].wait()
        running.discard(delivery.n)
        await delivery.ack()

    consumer = Consumer(subscription, process, concurrency=3)
    run = asyncio.create_task(consumer.run())
    for n in range(10):
        await eventually(lambda n=n: n in running, f"delivery {n} handled")  # type: ignore[misc]
        assert consumer.inflight <= 3
        gates[n].set()
    await eventually(lambda: len(subscription.flushes) == len(subscription.batches), "every batch flushed")
    run.cancel()
    await consumer.drain(1.0)
    assert most == 3
    assert subscription.limits[0] == 3
    assert all(1 <= limit <= 3 for limit in subscription.limits)
    # one flush per batch taken, each once every delivery of its batch had acked
    assert set().union(*subscription.batches) == set(range(10))
    assert all(batch <= acked for batch, acked in zip(subscription.batches, subscription.flushes, strict=True))


async def test_without_deferred_acks_nothing_is_flushed() -> None:
    subscription = subscription_of(4)
    subscription.deferred_acks = False  # type: ignore[misc]

    async def process(delivery: Delivery) -> None:
        await delivery.ack()

    consumer = Consumer(subscription, process, concurrency=2)
    run = asyncio.create_task(consumer.run())
    await eventually(lambda: all(item.acked for item in subscription.handed), "every delivery acked")
    run.cancel()
    await consumer.drain(1.0)
    assert subscription.flushes == []


async def test_a_failed_flush_is_logged_and_consuming_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    subscription = subscription_of(4)
    subscription.fail_flush = True

    async def process(delivery: Delivery) -> None:
        await delivery.ack()

    consumer = Consumer(subscription, process, concurrency=1)
    run = asyncio.create_task(consumer.run())
    with caplog.at_level(logging.WARNING, logger="tidings.service"):
        await eventually(lambda: len(subscription.flushes) == 4, "four flushes")
        await consumer.drain(1.0)
    assert not run.done()
    run.cancel()
    assert "the acks of 1 deliveries were not committed" in caplog.text


async def test_drain_waits_for_the_flush_and_cancels_it_at_the_deadline() -> None:
    subscription = subscription_of(2)
    subscription.hold_flush = asyncio.Event()

    async def process(delivery: Delivery) -> None:
        await delivery.ack()

    consumer = Consumer(subscription, process, concurrency=2)
    run = asyncio.create_task(consumer.run())
    await eventually(lambda: subscription.flushes, "a flush")
    run.cancel()
    flushing = set(consumer._flushing)
    assert flushing, "the batch's flush is in flight"
    await consumer.drain(0.05)  # the flush never returns: cancelled at the deadline
    assert all(task.cancelled() for task in flushing)
