"""Interoperability on RabbitMQ: the ADR-001 `pika` sample publisher run unchanged, CloudEvents
AMQP binding prefixes (`cloudEvents_` sent, `cloudEvents:` accepted), structured mode, and
plain JSON from publishers that know nothing of Tidings: an event, or a dead letter saying why."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import aio_pika
import pytest

from tests.conformance.harness import until
from tests.integration.rabbitmq_support import amqp_url, queue_counts
from tidings.context import Context
from tidings.envelope import Envelope, to_structured
from tidings.errors import Malformation, MalformedMessage
from tidings.events import Event
from tidings.service import Service
from tidings.transport import connect
from tidings.transport.rabbitmq import LegacyMapping, RabbitTransport

pytestmark = pytest.mark.rabbitmq

SAMPLE = Path(__file__).with_name("adr001_sample_publisher.txt")
ADR = Path(__file__).resolve().parents[3] / "shared" / "ADR-001-event-driven-architecture.md"
"""`../shared/` beside the checkout, where the decision record is kept: an optional cross-check."""
LEGACY = "legacy_queue=order_events&legacy_types=OrderCreated:shop.order.created&legacy_subject_field=order_id"


class OrderCreated(Event, type="shop.order.created", version=1):
    order_id: int
    amount: int

    def subject(self) -> str | None:
        return str(self.order_id)


async def run_adr_sample(vhost: str) -> None:
    """The ADR's publisher, byte for byte; only pika's default vhost points at the test's."""
    bootstrap = (
        "import pika, runpy, sys; pika.ConnectionParameters.DEFAULT_VIRTUAL_HOST = sys.argv[1]; "
        "runpy.run_path(sys.argv[2], run_name='__main__')"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", bootstrap, vhost, str(SAMPLE), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert "Event published successfully" in out.decode()


def test_the_sample_is_the_adrs_code() -> None:
    if not ADR.exists():
        # The tests run the copy (SAMPLE); this only cross-checks it against the record where that
        # is kept beside the checkout (a developer's machine), so a clone elsewhere has nothing to compare.
        pytest.skip(f"{ADR} is not beside the checkout: the sample's copy cannot be checked against the ADR")
    block = re.search(r"```python\n(.*?)```", ADR.read_text(), re.S)
    assert block is not None
    assert SAMPLE.read_text() == block.group(1)


async def test_adr_sample_becomes_an_event_through_the_legacy_mapping(vhost: str) -> None:
    handled: list[tuple[OrderCreated, Envelope]] = []
    done = asyncio.Event()
    service = Service("inventory", broker=amqp_url(vhost, LEGACY))

    @service.on(OrderCreated)
    async def reserve(event: OrderCreated, context: Context) -> None:
        assert context.incoming is not None
        handled.append((event, context.incoming))
        done.set()

    async with service:
        await run_adr_sample(vhost)
        await asyncio.wait_for(done.wait(), 15)

    ((event, envelope),) = handled
    assert event == OrderCreated(order_id=123, amount=250)
    assert envelope.type == "shop.order.created"
    assert envelope.source == "urn:tidings:legacy:order_events"
    assert envelope.subject == envelope.partitionkey == "123"
    assert (await queue_counts(vhost))["order_events"] == 0


async def test_adr_sample_without_a_mapping_is_dead_lettered_with_the_reason(vhost: str) -> None:
    """Unmapped: a dead letter that says so. Fix the mapping, replay: now it is an event."""
    unmapped = "legacy_queue=order_events&legacy_types=OrderShipped:shop.order.shipped"
    service = Service("inventory", broker=amqp_url(vhost, unmapped))

    @service.on(OrderCreated)
    async def reserve(event: OrderCreated, context: Context) -> None:
        raise AssertionError("an unmapped message must not reach a handler")

    async with service:
        await run_adr_sample(vhost)
        letters = await until(lambda: service.transport.dead_letters("inventory"), lambda found: len(found) == 1)
    (letter,) = letters
    assert "not a CloudEvents message" in letter.reason
    assert "event_type='OrderCreated' has no mapping" in letter.reason
    assert "the legacy rule for queue 'order_events'" in letter.reason
    assert json.loads(letter.body) == {"event_type": "OrderCreated", "order_id": 123, "amount": 250}
    assert letter.event_id is None

    handled: list[OrderCreated] = []
    fixed = Service("inventory", broker=amqp_url(vhost, LEGACY))

    @fixed.on(OrderCreated)
    async def reserve_again(event: OrderCreated, context: Context) -> None:
        handled.append(event)

    async with fixed:
        assert await fixed.transport.replay("inventory", [letter.id]) == 1  # back to order_events
        await until(lambda: asyncio.sleep(0, len(handled)), lambda count: count == 1)
        assert await fixed.transport.dead_letters("inventory") == []


async def test_a_redelivered_legacy_message_keeps_its_event_id(vhost: str) -> None:
    mapping = LegacyMapping(name="order_events", types={"OrderCreated": "shop.order.created"})
    transport = await RabbitTransport.open(amqp_url(vhost), legacy=[mapping])
    try:
        subscription = await transport.subscribe("inventory", ["shop.order.created"])
        await run_adr_sample(vhost)
        await run_adr_sample(vhost)  # the same bytes again: the same event, as far as ids go
        iterator = aiter(subscription)
        async with asyncio.timeout(10):
            first, second = await anext(iterator), await anext(iterator)
        assert first.envelope().id == second.envelope().id
        await first.ack()
        await second.ack()
        await subscription.close()
    finally:
        await transport.close()


async def test_plain_json_on_the_events_exchange_is_dead_lettered_with_the_reason(vhost: str) -> None:
    transport = await connect(amqp_url(vhost))
    try:
        subscription = await transport.subscribe("inventory", ["shop.order.created"])
        async with await aio_pika.connect(amqp_url(vhost)) as raw:
            channel = await raw.channel()
            exchange = await channel.get_exchange("tidings.events")
            await exchange.publish(
                aio_pika.Message(b'{"order_id": 1}', content_type="application/json"), "shop.order.created"
            )
        async with asyncio.timeout(10):
            delivery = await anext(aiter(subscription))
        with pytest.raises(
            MalformedMessage, match="not a CloudEvents message: missing CloudEvents attribute"
        ) as raised:
            delivery.envelope()
        assert raised.value.kind is Malformation.MISSING_ATTRIBUTE
        await delivery.dead_letter("malformed")
        (letter,) = await transport.dead_letters("inventory")
        assert letter.body == b'{"order_id": 1}'
        await subscription.close()
    finally:
        await transport.close()


async def test_cloudevents_prefixes_and_modes(vhost: str) -> None:
    envelope = Envelope.wrap(OrderCreated(order_id=7, amount=1), source="other-system", correlationid="c-1")
    transport = await connect(amqp_url(vhost))
    try:
        subscription = await transport.subscribe("inventory", [envelope.type])
        async with await aio_pika.connect(amqp_url(vhost)) as raw:
            channel = await raw.channel()
            tap = await channel.declare_queue("", exclusive=True)
            await tap.bind("tidings.events", envelope.type)
            await transport.publish([envelope])  # what Tidings sends
            sent = await tap.get(timeout=5)
            await sent.ack()

            exchange = await channel.get_exchange("tidings.events")
            old = {f"cloudEvents:{k}": v for k, v in envelope.attributes().items() if k != "datacontenttype"}
            await exchange.publish(
                aio_pika.Message(envelope.data, headers=old, content_type="application/json"), envelope.type
            )
            await exchange.publish(
                aio_pika.Message(to_structured(envelope), content_type="application/cloudevents+json"), envelope.type
            )

        assert sent.headers["cloudEvents_id"] == envelope.id
        assert sent.headers["cloudEvents_specversion"] == "1.0"
        assert not any(key.startswith("cloudEvents:") for key in sent.headers)
        assert "cloudEvents_datacontenttype" not in sent.headers
        assert sent.content_type == "application/json"
        assert sent.message_id == envelope.id
        assert sent.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert sent.body == envelope.data

        async with asyncio.timeout(10):
            received = [await anext(aiter(subscription)) for _ in range(3)]
        for delivery in received:
            decoded = delivery.envelope()
            assert (decoded.id, decoded.type, decoded.source) == (envelope.id, envelope.type, "other-system")
            assert decoded.correlationid == "c-1"
            assert json.loads(decoded.data) == json.loads(envelope.data)
            await delivery.ack()
        await subscription.close()
    finally:
        await transport.close()
