"""Backlog: what each declared group has not acked yet, ready, in flight or waiting to retry."""

from __future__ import annotations

from tests.conformance.events import PING, PONG, ping
from tests.conformance.harness import BACKLOG_TIMEOUT, Broker, until


async def test_backlog_counts_everything_not_yet_acked(broker: Broker) -> None:
    transport = await broker.connect()
    consumer = await broker.consumer(transport, "busy", [PING], prefetch=4)
    await broker.consumer(transport, "idle", [PONG])
    await until(transport.backlog, lambda b: b.get("busy") == 0 and b.get("idle") == 0, BACKLOG_TIMEOUT)

    await transport.publish([ping(n) for n in range(10)])
    await until(transport.backlog, lambda b: b.get("busy") == 10, BACKLOG_TIMEOUT)

    received = await consumer.take(4)
    for delivery in received[:3]:
        await delivery.ack()
    in_flight = received[3]
    await until(transport.backlog, lambda b: b.get("busy") == 7 and b.get("idle") == 0, BACKLOG_TIMEOUT)

    await in_flight.retry(60)  # waiting to retry still counts
    await until(transport.backlog, lambda b: b.get("busy") == 7, BACKLOG_TIMEOUT)

    for _ in range(6):
        (delivery,) = await consumer.take(1)
        await delivery.ack()
    await until(transport.backlog, lambda b: b.get("busy") == 1, BACKLOG_TIMEOUT)
