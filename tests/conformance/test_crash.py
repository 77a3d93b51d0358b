"""Crashes: a killed consumer's delivery comes back; a publish that returned outlives its publisher."""

from __future__ import annotations

import pytest

from tests.conformance.events import PING, ping
from tests.conformance.harness import REDELIVERY_TIMEOUT, Broker, kill, read_line
from tidings.transport import Transport


def require(transport: Transport, *flags: str) -> None:
    missing = [flag for flag in flags if not getattr(transport.capabilities, flag)]
    if missing:
        pytest.skip(f"the adapter is not {' and '.join(missing)}")


async def test_delivery_of_a_killed_consumer_is_redelivered(broker: Broker) -> None:
    transport = await broker.connect()
    require(transport, "multi_process")
    child = await broker.spawn("consume", broker.url, "crashy")
    try:
        assert await read_line(child) == ["ready"]
        envelope = ping(1)
        await transport.publish([envelope])
        word, received_id, attempt = await read_line(child)
        assert (word, received_id, attempt) == ("received", envelope.id, "1")
    finally:
        await kill(child)

    survivor = await broker.consumer(transport, "crashy", [PING])
    (again,) = await survivor.take(1, within=REDELIVERY_TIMEOUT)
    assert again.envelope().id == envelope.id
    assert again.attempt >= 2
    await again.ack()


async def test_published_events_survive_the_publisher_being_killed(broker: Broker) -> None:
    transport = await broker.connect()
    require(transport, "durable", "multi_process")
    declaring = await broker.consumer(transport, "durable", [PING])  # fan-out must include the group
    await declaring.close()
    await transport.close()

    child = await broker.spawn("publish", broker.url, "5")
    try:
        word, *published = await read_line(child)
    finally:
        await kill(child)
    assert word == "published"
    assert len(published) == 5

    fresh = await broker.connect()
    consumer = await broker.consumer(fresh, "durable", [PING])
    deliveries = await consumer.take(5)
    assert sorted(d.envelope().id for d in deliveries) == sorted(published)
    for delivery in deliveries:
        await delivery.ack()
