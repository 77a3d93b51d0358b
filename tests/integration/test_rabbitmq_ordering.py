"""`ordering=key` beyond the conformance suite (which `test_rabbitmq_variants` runs against it):
one unsettled delivery per key for a greedy consumer, one working consumer per group, and a
standby that takes over in order.

The default configuration does not promise per-key order (competing consumers take turns on
one queue); `KeyOrderedRabbitTransport` does, and is not in the conformance factory list only
because it deliberately fails `test_competing_consumers_share_the_work`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conformance.events import PING, Ping, event_of, ping
from tests.conformance.harness import Broker, settle_all
from tests.integration.rabbitmq_support import RabbitAdapter
from tidings.transport import Delivery
from tidings.transport.rabbitmq import KeyOrderedRabbitTransport, RabbitTransport

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def ordered(tmp_path: Path) -> AsyncIterator[Broker]:
    async with RabbitAdapter(query="ordering=key").target(tmp_path) as target:
        broker = Broker(target)
        try:
            yield broker
        finally:
            await broker.aclose()


async def test_capabilities_follow_the_configuration(ordered: Broker) -> None:
    transport = await ordered.connect()
    assert isinstance(transport, KeyOrderedRabbitTransport)
    assert transport.capabilities.per_key_ordering
    assert not RabbitTransport.capabilities.per_key_ordering


async def test_a_greedy_consumer_gets_one_unsettled_delivery_per_key(ordered: Broker) -> None:
    """Like a runtime with concurrency 16: it pulls whatever is ready, settles out of order."""
    transport = await ordered.connect()
    subscription = await transport.subscribe("g", [PING], prefetch=32)
    await transport.publish([ping(n, key=f"k{n % 3}") for n in range(12)])
    iterator = aiter(subscription)
    arrived: dict[str, list[int]] = {"k0": [], "k1": [], "k2": []}
    in_flight: dict[str, Delivery] = {}
    async with asyncio.timeout(15):
        while sum(map(len, arrived.values())) < 12:
            try:
                async with asyncio.timeout(0.3):
                    delivery = await anext(iterator)
            except TimeoutError:
                # nothing more is handed out while every key has one unsettled: settle one
                key = sorted(in_flight)[-1]
                await in_flight.pop(key).ack()
                continue
            event = event_of(delivery)
            assert isinstance(event, Ping)
            assert event.key is not None
            assert event.key not in in_flight, f"second unsettled delivery for {event.key}"
            in_flight[event.key] = delivery
            arrived[event.key].append(event.n)
    await settle_all(list(in_flight.values()))
    assert arrived == {f"k{k}": list(range(k, 12, 3)) for k in range(3)}
    await subscription.close()


async def test_one_consumer_works_and_a_standby_takes_over_in_order(ordered: Broker) -> None:
    first, second = await ordered.connect(), await ordered.connect()
    active = await ordered.consumer(first, "g", [PING], prefetch=8)
    standby = await ordered.consumer(second, "g", [PING], prefetch=8)
    await first.publish([ping(n, key="k") for n in range(6)])

    (zero,) = await active.take(1)
    await standby.assert_idle(0.5)  # single active consumer: the other one waits
    await zero.ack()
    (one,) = await active.take(1)
    assert [event_of(zero), event_of(one)] == [Ping(n=0, key="k"), Ping(n=1, key="k")]
    await active.close()  # n=1 is unsettled: it goes back to the head of the queue

    rest = []
    for _ in range(5):  # one at a time: the next of the key waits for the previous to settle
        (delivery,) = await standby.take(1)
        rest.append(delivery)
        await delivery.ack()
    assert [event_of(d) for d in rest] == [Ping(n=n, key="k") for n in range(1, 6)]
    assert rest[0].attempt == 2
