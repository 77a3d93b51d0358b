"""Settlement: exactly once per delivery; retry waits; unsettled deliveries come back."""

from __future__ import annotations

import time

import pytest

from tests.conformance.events import PING, event_id, ping
from tests.conformance.harness import REDELIVERY_TIMEOUT, Broker
from tidings.transport import AlreadySettled


async def test_settling_twice_raises(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "g", [PING])
    await transport.publish([ping(1), ping(2)])
    acked, dead = await consumer.take(2)

    await acked.ack()
    assert acked.settled
    for settle in (acked.ack, lambda: acked.retry(0), lambda: acked.dead_letter("again")):
        with pytest.raises(AlreadySettled):
            await settle()

    await dead.dead_letter("first")
    with pytest.raises(AlreadySettled):
        await dead.ack()


async def test_retry_redelivers_no_earlier_than_after(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "g", [PING])
    envelope = ping(1)
    await transport.publish([envelope])
    (first,) = await consumer.take(1)
    assert first.attempt == 1

    after = 0.5
    started = time.monotonic()
    await first.retry(after)
    (second,) = await consumer.take(1)
    waited = time.monotonic() - started

    assert event_id(second) == envelope.id
    assert second.attempt == 2
    assert waited >= after, f"redelivered after {waited:.3f}s, asked for {after}s"
    await second.ack()


async def test_unsettled_delivery_returns_after_its_subscription_closes(broker: Broker) -> None:
    transport = await broker.connect()
    leaving = await broker.consumer(transport, "g", [PING])
    envelope = ping(1)
    await transport.publish([envelope])
    (unsettled,) = await leaving.take(1)
    await leaving.close()

    staying = await broker.consumer(await broker.connect(), "g", [PING])
    (again,) = await staying.take(1, within=REDELIVERY_TIMEOUT)
    assert event_id(again) == envelope.id
    assert again.attempt >= 2
    assert not unsettled.settled
    await again.ack()
