"""RabbitMQ, private node: per-service users with least privilege, and AMQPS with the test's CA."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from tests.integration.security.pki import Pki
from tests.integration.security.private_rabbit import SecureRabbit
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import PublishError, TransportError
from tidings.events import Event
from tidings.security import identities
from tidings.service import Service
from tidings.transport.base import connect
from tidings.transport.rabbitmq import identities as rabbit_identities

pytestmark = pytest.mark.rabbitmq


class Placed(Event, type="test.acl.placed", version=1):
    order_id: str


class Shipped(Event, type="test.acl.shipped", version=1):
    order_id: str


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    raise AssertionError("a refused consumer got a message")


def _shop(url: str) -> tuple[Service, Service, list[str]]:
    """`orders` publishes Placed and handles Shipped; `shipping` the other way round."""
    orders, shipping = Service("orders", broker=url), Service("shipping", broker=url)
    orders.publishes(Placed)
    shipping.publishes(Shipped)
    seen: list[str] = []

    @shipping.on(Placed)
    async def ship(event: Placed, ctx: Context) -> None:
        seen.append(event.order_id)
        ctx.publish(Shipped(order_id=event.order_id))

    @orders.on(Shipped)
    async def done(event: Shipped, ctx: Context) -> None:
        seen.append(f"shipped {event.order_id}")

    return orders, shipping, seen


async def test_each_service_may_use_only_its_own_queues_and_declared_types(secure_rabbit: SecureRabbit) -> None:
    vhost = f"acl-{uuid.uuid4().hex[:8]}"
    admin = secure_rabbit.admin_url(vhost)
    orders, shipping, seen = _shop(admin)
    plan = identities.plan([orders, shipping], prefix=f"{vhost}-")
    await rabbit_identities.apply(admin, plan)
    await rabbit_identities.apply(admin, plan)  # idempotent
    by_service = {identity.service: identity for identity in plan}
    for service in (orders, shipping):
        service.broker_url = by_service[service.name].url(admin)
    async with orders, shipping:  # each as itself: the whole flow works
        await orders.publish(Placed(order_id="o-1"))
        deadline = asyncio.get_running_loop().time() + 20
        while seen != ["o-1", "shipped o-1"]:
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.05)

    as_shipping = by_service["shipping"].url(f"amqp://127.0.0.1:{secure_rabbit.port}/{vhost}")
    # consuming another service's queue
    async with await aio_pika.connect(as_shipping) as connection:
        channel = await connection.channel()
        queue = await channel.get_queue("tidings:orders", ensure=False)
        with pytest.raises(ChannelAccessRefused, match=r"ACCESS_REFUSED.*queue 'tidings:orders'"):
            await queue.consume(_ignore)
    transport = await connect(f"{as_shipping}?connect_timeout=0&publish_timeout=5")
    try:
        with pytest.raises(TransportError, match="ACCESS_REFUSED"):
            await transport.subscribe("orders", [Shipped.event_type])
        # publishing a type it did not declare (orders' Placed)
        forged = Envelope.wrap(Placed(order_id="o-2"), source="shipping")
        with pytest.raises(
            PublishError, match=r"ACCESS_REFUSED - access to topic 'test\.acl\.placed' in exchange 'tidings\.events'"
        ):
            await transport.publish([forged])
    finally:
        await transport.close()


async def test_amqps_connects_with_the_right_ca_and_refuses_a_wrong_host_or_unknown_ca(
    secure_rabbit: SecureRabbit, pki: Pki
) -> None:
    port = secure_rabbit.tls_port

    def url(host: str, ca: Path) -> str:
        return f"amqps://guest:guest@{host}:{port}/?cafile={ca}&connect_timeout=0"

    transport = await connect(url("localhost", pki.ca))
    try:
        await transport.publish([Envelope.wrap(Placed(order_id="tls"), source="orders")])
    finally:
        await transport.close()
    for host, ca, why in (("127.0.0.1", pki.ca, "IP address mismatch"), ("localhost", pki.other_ca, "verify failed")):
        with pytest.raises(TransportError) as refused:
            await connect(url(host, ca))
        message = str(refused.value)
        assert why in message
        assert "\n" not in message
        assert "guest:***@" in message
        assert "guest:guest" not in message
