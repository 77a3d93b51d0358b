"""Routing: every group gets every matching event, consumers of one group share the work."""

from __future__ import annotations

import asyncio

from tests.conformance.events import PING, PONG, event_id, ping, pong
from tests.conformance.harness import Broker, Consumer, settle_all, until
from tidings.transport import Delivery


async def test_every_group_receives_every_event(broker: Broker) -> None:
    transport = await broker.connect()
    billing = await broker.consumer(transport, "billing", [PING])
    audit = await broker.consumer(transport, "audit", [PING])
    envelopes = [ping(n) for n in range(5)]
    await transport.publish(envelopes)

    for consumer in (billing, audit):
        deliveries = await consumer.take(5)
        assert sorted(event_id(d) for d in deliveries) == sorted(e.id for e in envelopes)
        assert all(d.attempt == 1 for d in deliveries)
        await settle_all(deliveries)
    await until(transport.backlog, lambda b: b.get("billing") == 0 and b.get("audit") == 0)


async def test_group_receives_only_its_types(broker: Broker) -> None:
    transport = await broker.connect()
    pings = await broker.consumer(transport, "pings", [PING])
    pongs = await broker.consumer(transport, "pongs", [PONG])
    await transport.publish([pong(1), ping(2)])

    (got_pong,) = await pongs.take(1)
    (got_ping,) = await pings.take(1)
    assert got_pong.envelope().type == PONG
    assert got_ping.envelope().type == PING
    await settle_all([got_pong, got_ping])
    # The pong was routed before the ping, yet the ping group never holds it.
    await until(transport.backlog, lambda b: b.get("pings") == 0 and b.get("pongs") == 0)
    await pings.assert_idle(0.3)


async def test_competing_consumers_share_the_work(broker: Broker) -> None:
    first, second = await broker.connect(), await broker.connect()
    consumers = [
        await broker.consumer(first, "workers", [PING], prefetch=2),
        await broker.consumer(second, "workers", [PING], prefetch=2),
    ]
    total = 40
    envelopes = [ping(n, key=f"order-{n}") for n in range(total)]  # distinct keys: spread over partitions
    seen: dict[int, list[str]] = {0: [], 1: []}

    async def work(index: int, consumer: Consumer) -> None:
        while sum(len(ids) for ids in seen.values()) < total:
            delivery: Delivery | None = await consumer.poll(0.2)
            if delivery is None:
                continue
            seen[index].append(event_id(delivery))
            await asyncio.sleep(0.005)  # a handler doing some work
            await delivery.ack()

    await first.publish(envelopes)
    async with asyncio.timeout(30):
        await asyncio.gather(*(work(i, c) for i, c in enumerate(consumers)))

    assert seen[0], f"the second consumer got all {len(seen[1])}"
    assert seen[1], f"the first consumer got all {len(seen[0])}"
    everything = seen[0] + seen[1]
    assert len(everything) == len(set(everything)) == total, "duplicates although nothing failed"
    assert set(everything) == {e.id for e in envelopes}
    await until(first.backlog, lambda b: b.get("workers") == 0)
