"""Connection loss between Tidings and RabbitMQ, made by cutting TCP in a proxy: nothing whose
`publish` returned is lost, and both sides recover without being restarted."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.events import PING, ping
from tests.integration.rabbitmq_support import amqp_url, run_traffic
from tests.integration.tcp_proxy import TcpProxy
from tidings.errors import PublishError
from tidings.transport import Delivery, connect

pytestmark = pytest.mark.rabbitmq


async def test_cutting_the_connection_mid_stream_loses_nothing(vhost: str, proxy: TcpProxy) -> None:
    url = amqp_url(vhost, "reconnect_max=0.5", port=proxy.port)
    publisher, consumer = await connect(url), await connect(url)
    try:
        subscription = await consumer.subscribe("survivors", [PING], prefetch=16)

        async def cut_twice() -> None:
            assert proxy.cut() >= 2
            await asyncio.sleep(0.5)  # sleep-ok: the outage's timing is the scenario
            proxy.refuse()  # keep both off the broker for a while: reconnects must back off and retry
            proxy.cut()
            await asyncio.sleep(1.5)  # sleep-ok: the outage's timing is the scenario
            proxy.accept()

        traffic = await run_traffic(publisher, subscription, cut_twice, after=2.0, drain_within=30)
        await subscription.close()
    finally:
        await publisher.close()
        await consumer.close()

    assert not traffic.lost, f"{len(traffic.lost)} of {len(traffic.published)} confirmed events never arrived"
    assert traffic.published_after >= 50, "the publisher did not recover"
    assert traffic.consumed_after > 0, "the consumer did not recover"
    assert proxy.connections >= 4, "expected both transports to reconnect"


async def test_publish_raises_when_the_connection_drops_before_the_confirms(vhost: str, proxy: TcpProxy) -> None:
    transport = await connect(amqp_url(vhost, "publish_timeout=5", port=proxy.port))
    try:
        await transport.subscribe("g", [PING])
        batch = [ping(n) for n in range(3000)]
        publishing = asyncio.ensure_future(transport.publish(batch))
        await asyncio.sleep(0.005)
        proxy.cut()
        with pytest.raises(PublishError):
            await publishing
        await transport.publish([ping(1)])  # and the next publish goes through again
    finally:
        await transport.close()


async def test_publish_waits_for_the_broker_then_gives_up(vhost: str, proxy: TcpProxy) -> None:
    transport = await connect(amqp_url(vhost, "publish_timeout=1&reconnect_max=0.2", port=proxy.port))
    try:
        proxy.refuse()
        proxy.cut()
        await asyncio.sleep(0.3)  # sleep-ok: no public signal of a lost link; shorter only weakens
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PublishError, match=r"not confirmed within 1\.0s"):
            await transport.publish([ping(1)])
        assert loop.time() - started >= 0.9

        pending = asyncio.ensure_future(transport.publish([ping(2)]))  # waits for the connection
        await asyncio.sleep(0.2)  # sleep-ok: the publish must be waiting when the broker is back
        proxy.accept()
        await pending
    finally:
        await transport.close()


async def test_settling_a_delivery_from_a_lost_connection_is_harmless(vhost: str, proxy: TcpProxy) -> None:
    transport = await connect(amqp_url(vhost, "reconnect_max=0.2", port=proxy.port))
    direct = await connect(amqp_url(vhost))
    try:
        subscription = await transport.subscribe("g", [PING], prefetch=3)
        envelopes = [ping(n) for n in range(3)]
        await direct.publish(envelopes)
        iterator = aiter(subscription)
        stale: list[Delivery] = [await anext(iterator) for _ in range(3)]
        proxy.cut()
        await asyncio.sleep(0.3)  # sleep-ok: no public signal of a lost link; shorter only weakens

        await stale[0].ack()  # none of these raise, and none makes a copy
        await stale[1].retry(0)
        await stale[2].dead_letter("too late")
        assert all(delivery.settled for delivery in stale)

        async with asyncio.timeout(15):
            again = [await anext(iterator) for _ in range(3)]
        assert sorted(d.envelope().id for d in again) == sorted(e.id for e in envelopes)
        assert all(d.attempt == 2 for d in again), [d.attempt for d in again]
        for delivery in again:
            await delivery.ack()
        assert await direct.dead_letters("g") == []
        await subscription.close()
    finally:
        await transport.close()
        await direct.close()


async def test_a_channel_error_reopens_the_consumer_on_the_same_connection(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    try:
        subscription = await transport.subscribe("g", [PING])
        envelope = ping(1)
        await transport.publish([envelope])
        iterator = aiter(subscription)
        first = await asyncio.wait_for(anext(iterator), 10)
        channel = first.message.channel  # type: ignore[attr-defined]
        await channel.basic_ack(999_999)  # unknown delivery tag: the broker closes the channel
        again = await asyncio.wait_for(anext(iterator), 10)
        assert (again.envelope().id, again.attempt) == (envelope.id, 2)
        await first.ack()  # stale: nothing happens
        await again.ack()
        await subscription.close()
    finally:
        await transport.close()
