"""Per-key order: events with one partition key reach a group in publish order, one at a time."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.conformance.events import PING, Ping, event_of, ping
from tests.conformance.harness import Broker, Consumer, settle_all, until
from tidings.transport import Delivery, Transport

KEYS = [f"account-{n}" for n in range(5)]
PER_KEY = 20


async def test_events_with_one_key_arrive_in_publish_order(broker: Broker) -> None:
    first, second = await broker.connect(), await broker.connect()
    if not first.capabilities.per_key_ordering:
        pytest.skip("the adapter does not promise per-key ordering")
    consumers = [
        await broker.consumer(first, "ordered", [PING], prefetch=8),
        await broker.consumer(second, "ordered", [PING], prefetch=8),
    ]
    chance = random.Random(20240601)
    total = len(KEYS) * PER_KEY
    arrived: dict[str, list[int]] = {key: [] for key in KEYS}
    count = 0

    async def publish_key(transport: Transport, key: str) -> None:
        """One key's events in order, in batches of 1-4, interleaved with the other keys' publishers."""
        n = 0
        while n < PER_KEY:
            size = min(chance.randint(1, 4), PER_KEY - n)
            await transport.publish([ping(seq, key=key) for seq in range(n, n + size)])
            n += size
            await asyncio.sleep(chance.uniform(0, 0.002))

    async def work(consumer: Consumer) -> None:
        nonlocal count
        while count < total:
            delivery = await consumer.poll(0.2)
            if delivery is None:
                continue
            event = event_of(delivery)
            assert isinstance(event, Ping)
            assert event.key is not None
            arrived[event.key].append(event.n)
            count += 1
            await asyncio.sleep(chance.uniform(0, 0.004))  # acks come back in a shuffled order
            await delivery.ack()

    async with asyncio.timeout(60):
        await asyncio.gather(
            *(publish_key((first, second)[i % 2], key) for i, key in enumerate(KEYS)),
            *(work(consumer) for consumer in consumers),
        )

    for key, sequence in arrived.items():
        assert sequence == list(range(PER_KEY)), f"{key} arrived as {sequence}"
    await until(first.backlog, lambda b: b.get("ordered") == 0)


async def test_a_retried_event_keeps_later_events_of_its_key_waiting(broker: Broker) -> None:
    transport = await broker.connect()
    if not transport.capabilities.per_key_ordering:
        pytest.skip("the adapter does not promise per-key ordering")
    consumer = await broker.consumer(transport, "ordered", [PING])
    await transport.publish([ping(0, key="k"), ping(1, key="k"), ping(2, key="k")])

    (first,) = await consumer.take(1)
    assert event_of(first) == Ping(n=0, key="k")
    await first.retry(0.3)
    (again,) = await consumer.take(1)
    assert (event_of(again), again.attempt) == (Ping(n=0, key="k"), 2)
    await again.dead_letter("gave up")  # settled for good: the key moves on
    (second,) = await consumer.take(1)
    assert event_of(second) == Ping(n=1, key="k")
    await second.ack()
    (third,) = await consumer.take(1)
    assert event_of(third) == Ping(n=2, key="k")
    await third.ack()


HOLD = 0.5
"""How long a held delivery must keep its key's next event back: well past the time the other key's
event takes to arrive, and shorter than the suite's one-second leases (a lease running out would
legitimately hand the held event out again)."""


async def test_the_next_event_of_a_key_waits_until_the_previous_one_is_settled(broker: Broker) -> None:
    """One at a time: while a delivery of key `k` is out unsettled, no consumer of the group gets
    the next event of `k`, though another key's event flows past it; once settled, it comes."""
    first, second = await broker.connect(), await broker.connect()
    if not first.capabilities.per_key_ordering:
        pytest.skip("the adapter does not promise per-key ordering")
    consumers = [await broker.consumer(first, "held", [PING]), await broker.consumer(second, "held", [PING])]
    await first.publish([ping(0, key="k"), ping(1, key="k"), ping(0, key="other")])
    arrived: list[tuple[Ping, Delivery]] = []
    pulling = [asyncio.create_task(_collect(consumer, arrived)) for consumer in consumers]
    try:
        seen = lambda key, n: [d for event, d in arrived if (event.key, event.n) == (key, n)]  # noqa: E731
        await until(lambda: asyncio.sleep(0, arrived), lambda _: bool(seen("k", 0) and seen("other", 0)))
        loop = asyncio.get_running_loop()
        held_since = loop.time()
        while loop.time() - held_since < HOLD:  # a bounded "nothing of k arrives" window, justified above
            assert not seen("k", 1), "the next event of 'k' was handed out before the previous one was settled"
            await asyncio.sleep(0.01)
        assert not seen("k", 1), "the next event of 'k' was handed out before the previous one was settled"
        await seen("k", 0)[0].ack()
        await until(lambda: asyncio.sleep(0, arrived), lambda _: bool(seen("k", 1)))
        await settle_all([delivery for event, delivery in arrived if (event.key, event.n) != ("k", 0)])
    finally:
        for task in pulling:
            task.cancel()
        await asyncio.gather(*pulling, return_exceptions=True)


async def _collect(consumer: Consumer, into: list[tuple[Ping, Delivery]]) -> None:
    """Pull whatever the consumer is handed, for as long as the test runs."""
    while True:
        delivery = await consumer.poll(0.05)
        if delivery is not None:
            event = event_of(delivery)
            assert isinstance(event, Ping)
            into.append((event, delivery))
