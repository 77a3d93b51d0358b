"""The Kafka subscription's batch API (`batches()` + `ack_all`): the same contract as one delivery
at a time -- per-key order, each delivery settled exactly once, and `ack_all` returning only after
the commit that covers every delivery in it -- with one ack wait per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conformance.events import PING, Ping, event_of, ping
from tests.integration.kafka_support import assert_each_key_in_order, fresh_prefix, kafka_url
from tidings.transport import connect
from tidings.transport.base import AlreadySettled
from tidings.transport.kafka.delivery import KafkaDelivery
from tidings.transport.kafka.subscription import KafkaSubscription

pytestmark = pytest.mark.kafka


def numbers(deliveries: list[KafkaDelivery]) -> list[int]:
    return [event.n for event in map(event_of, deliveries) if isinstance(event, Ping)]


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_prefix("kafka-batches") as prefix:
        yield kafka_url(prefix)


async def test_batches_keep_key_order_and_ack_all_returns_after_the_commit(url: str) -> None:
    transport = await connect(url)
    try:
        subscription = await transport.subscribe("g", [PING], prefetch=64)
        assert isinstance(subscription, KafkaSubscription)
        await transport.publish([ping(n, key=f"k{n % 6}") for n in range(60)])
        seen: list[Ping] = []
        sizes: list[int] = []
        async for deliveries in subscription.batches(16):
            events = [event_of(delivery) for delivery in deliveries]
            assert isinstance(events[0], Ping)
            keys = [event.key for event in events if isinstance(event, Ping)]
            assert len(keys) == len(set(keys)), f"two deliveries of one key in a batch: {keys}"
            await subscription.ack_all(deliveries)
            seen += [event for event in events if isinstance(event, Ping)]
            sizes.append(len(deliveries))
            if len(seen) == 60:
                break
        backlog = (await transport.backlog())["g"]  # no waiting: ack_all returned after the commit
        await subscription.close()
    finally:
        await transport.close()
    assert_each_key_in_order(seen, 60)
    assert max(sizes) <= 16
    assert backlog == 0


async def test_ack_all_acks_none_if_one_was_settled_and_leaves_the_rest_to_come_back(url: str) -> None:
    transport = await connect(url)
    try:
        subscription = await transport.subscribe("g", [PING], prefetch=8)
        assert isinstance(subscription, KafkaSubscription)
        await transport.publish([ping(n) for n in range(3)])
        batch: list[KafkaDelivery] = []
        async for deliveries in subscription.batches(8):
            batch += deliveries
            if len(batch) == 3:
                break
        first, *rest = batch
        await first.ack()
        with pytest.raises(AlreadySettled):
            await subscription.ack_all(batch)
        assert not any(delivery.settled for delivery in rest)
        await subscription.close()  # the two unsettled ones go back to the group
        again = await transport.subscribe("g", [PING], prefetch=8)
        assert isinstance(again, KafkaSubscription)
        returned: list[KafkaDelivery] = []
        async for deliveries in again.batches(8):
            returned += deliveries
            if len(returned) == 2:
                break
        await again.ack_all(returned)
        backlog = (await transport.backlog())["g"]
        await again.close()
    finally:
        await transport.close()
    assert sorted(numbers(returned)) == sorted(numbers(rest))
    assert [d.attempt for d in returned] == [2, 2]
    assert backlog == 0
