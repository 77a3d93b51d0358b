"""CloudEvents conformance both ways, checked with the official SDK (`cloudevents` 2.x) on the
real RabbitMQ and Kafka and on structured JSON.

SDK -> Tidings: what the SDK's AMQP, Kafka and JSON converters write is published raw to the
broker (as another team's producer would) and read by a Tidings subscription, including the
forms Tidings did not read before: `time` as integer milliseconds (the SDK's AMQP timestamp),
typed extensions (an AMQP boolean and integer) read as their canonical strings, and a Kafka
record whose partition key is only its record key. Tidings -> SDK: what Tidings publishes is
read raw off the broker and parsed by the SDK's converters.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cloudevents.core.bindings import amqp as ce_amqp
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tests.integration.kafka_support import BOOTSTRAP, fresh_prefix, kafka_url
from tests.integration.rabbitmq_support import amqp_url
from tidings.envelope import Envelope, from_structured, to_structured
from tidings.errors import Malformation, MalformedMessage
from tidings.events import Event
from tidings.service import Service
from tidings.transport import Delivery, Transport, connect

TYPE = "interop.parcel.weighed"
WHEN = datetime(2026, 12, 1, 23, 45, 12, 345000, tzinfo=UTC)
"""Whole milliseconds: the AMQP timestamp form keeps no finer precision."""


class ParcelWeighed(Event, type=TYPE, version=1):
    parcel: str
    grams: int

    def subject(self) -> str:
        return self.parcel


def sdk_event(**extensions: Any) -> CloudEvent:
    return CloudEvent(
        {
            "id": "sdk-1",
            "source": "urn:example:scales",
            "type": TYPE,
            "time": WHEN,
            "subject": "p-1",
            "datacontenttype": "application/json",
            **extensions,
        },
        {"parcel": "p-1", "grams": 740},
    )


def tidings_envelope() -> Envelope:
    envelope = Envelope.wrap(ParcelWeighed(parcel="p-2", grams=55), source="urn:tidings:scales", correlationid="c-9")
    return envelope.with_changes(time=WHEN, extensions={"priority": "5", "urgent": "true"})


def assert_read_from_sdk(envelope: Envelope, *, partitionkey: str | None = None) -> None:
    assert (envelope.id, envelope.source, envelope.type, envelope.subject) == (
        "sdk-1",
        "urn:example:scales",
        TYPE,
        "p-1",
    )
    assert envelope.time == WHEN
    assert json.loads(envelope.data) == {"parcel": "p-1", "grams": 740}
    assert envelope.partitionkey == partitionkey


def assert_sdk_reads_tidings(event: Any, envelope: Envelope) -> None:
    assert (event.get_id(), event.get_source(), event.get_type()) == (envelope.id, envelope.source, envelope.type)
    assert event.get_specversion() == "1.0"
    assert event.get_time() == WHEN
    assert event.get_subject() == "p-2"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_extension("correlationid") == "c-9"
    assert event.get_dataschema() == f"urn:tidings:{TYPE}:1"
    assert event.get_extension("urgent") == "true"
    assert event.get_data() == {"parcel": "p-2", "grams": 55}


async def take(transport: Transport, group: str, count: int, send: Any) -> list[Delivery]:
    """Subscribe `group`, then `send()`, and take `count` deliveries (acked)."""
    subscription = await transport.subscribe(group, [TYPE])
    await send()
    got: list[Delivery] = []
    async with asyncio.timeout(20):
        async for delivery in subscription:
            got.append(delivery)
            await delivery.ack()
            if len(got) == count:
                break
    await subscription.close()
    return got


# -- structured JSON, no broker ------------------------------------------------------------------


def test_structured_json_both_ways() -> None:
    written = JSONFormat().write(sdk_event(urgent=True, priority=5))
    envelope = from_structured(written)
    assert_read_from_sdk(envelope)
    assert envelope.extensions == {"urgent": "true", "priority": "5"}

    mine = tidings_envelope()
    event = JSONFormat().read(None, to_structured(mine))
    assert_sdk_reads_tidings(event, mine)


# -- AMQP (RabbitMQ) -----------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_amqp_binary_and_structured_from_the_sdk(vhost: str) -> None:
    """The SDK's AMQP binary mode sends `time` as integer milliseconds and keeps booleans and
    integers typed: all are read, as canonical strings."""
    binary = ce_amqp.to_binary(sdk_event(urgent=True, priority=5), JSONFormat())
    assert isinstance(binary.application_properties["cloudEvents_time"], int)
    structured = ce_amqp.to_structured(sdk_event(), JSONFormat())

    async def send() -> None:
        async with await aio_pika.connect(amqp_url(vhost)) as raw:
            exchange = await (await raw.channel()).get_exchange("tidings.events")
            for message in (binary, structured):
                properties = message.properties
                await exchange.publish(
                    aio_pika.Message(
                        message.application_data,
                        headers=message.application_properties,
                        content_type=properties.get("content-type") or properties.get("content_type"),
                    ),
                    TYPE,
                )

    async with await connect(amqp_url(vhost)) as transport:
        first, second = await take(transport, "scales", 2, send)
    from_binary, from_structured_ = first.envelope(), second.envelope()
    assert_read_from_sdk(from_binary)
    assert from_binary.extensions == {"urgent": "true", "priority": "5"}
    assert_read_from_sdk(from_structured_)


@pytest.mark.rabbitmq
async def test_amqp_binary_from_tidings_parses_with_the_sdk(vhost: str) -> None:
    envelope = tidings_envelope()
    async with await connect(amqp_url(vhost)) as transport, await aio_pika.connect(amqp_url(vhost)) as raw:
        channel = await raw.channel()
        tap = await channel.declare_queue("", exclusive=True)
        await tap.bind("tidings.events", TYPE)
        await transport.publish([envelope])
        sent = await tap.get(timeout=5)
        await sent.ack()
    message = ce_amqp.AMQPMessage(
        properties={"content-type": sent.content_type},
        application_properties=dict(sent.headers),
        application_data=sent.body,
    )
    assert_sdk_reads_tidings(ce_amqp.from_binary(message, JSONFormat()), envelope)
    structured = ce_amqp.AMQPMessage(
        properties={"content-type": "application/cloudevents+json"},
        application_properties={},
        application_data=to_structured(envelope),
    )
    assert_sdk_reads_tidings(ce_amqp.from_structured(structured, JSONFormat()), envelope)


# -- Kafka ---------------------------------------------------------------------------------------


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with fresh_prefix("cloudevents-sdk") as prefix:
        yield prefix


@pytest.mark.kafka
async def test_kafka_binary_and_structured_from_the_sdk(prefix: str) -> None:
    """A producer that keys its records but sets no `partitionkey` extension: the key is it."""
    keyed = ce_kafka.to_binary(sdk_event(priority=5), JSONFormat(), key_mapper=lambda event: "parcel-p-1")
    assert "ce_partitionkey" not in keyed.headers
    structured = ce_kafka.to_structured(sdk_event(partitionkey="p-1"), JSONFormat())

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
        await producer.start()
        try:
            for message in (keyed, structured):
                key = message.key.encode() if isinstance(message.key, str) else message.key
                headers = list(message.headers.items())
                await producer.send_and_wait(f"{prefix}events", message.value, key=key, headers=headers)
        finally:
            await producer.stop()

    async with await connect(kafka_url(prefix)) as transport:
        first, second = await take(transport, "scales", 2, send)
    binary_envelope = first.envelope()
    assert_read_from_sdk(binary_envelope, partitionkey="parcel-p-1")
    assert binary_envelope.extensions == {"priority": "5"}
    assert_read_from_sdk(second.envelope(), partitionkey="p-1")


@pytest.mark.kafka
async def test_kafka_binary_from_tidings_parses_with_the_sdk(prefix: str) -> None:
    envelope = tidings_envelope().with_changes(partitionkey="p-2")
    async with await connect(kafka_url(prefix)) as transport:
        await transport.publish([envelope])
    consumer = AIOKafkaConsumer(f"{prefix}events", bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(15):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    message = ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    event = ce_kafka.from_binary(message, JSONFormat())
    assert_sdk_reads_tidings(event, envelope)
    assert event.get_extension("partitionkey") == "p-2"
    assert record.key == b"p-2"


@pytest.mark.rabbitmq
async def test_a_dead_letter_that_did_not_decode_still_shows_its_id_and_type(vhost: str) -> None:
    """Plain text data is refused (event data is read as JSON), but the headers name the event."""
    event = CloudEvent(
        {"id": "sdk-2", "source": "urn:example:scales", "type": TYPE, "datacontenttype": "text/plain"}, "740 g"
    )
    binary = ce_amqp.to_binary(event, JSONFormat())

    async def send() -> None:
        async with await aio_pika.connect(amqp_url(vhost)) as raw:
            exchange = await (await raw.channel()).get_exchange("tidings.events")
            message = aio_pika.Message(
                binary.application_data, headers=binary.application_properties, content_type="text/plain"
            )
            await exchange.publish(message, TYPE)

    async with await connect(amqp_url(vhost)) as transport:
        subscription = await transport.subscribe("scales", [TYPE])
        await send()
        async with asyncio.timeout(10):
            delivery = await anext(aiter(subscription))
        with pytest.raises(MalformedMessage, match="datacontenttype 'text/plain' is not JSON") as raised:
            delivery.envelope()
        assert raised.value.kind is Malformation.INVALID_ATTRIBUTE
        await delivery.dead_letter("not JSON")
        (letter,) = await transport.dead_letters("scales")
        await subscription.close()
    assert (letter.event_id, letter.type) == ("sdk-2", TYPE)


@pytest.mark.kafka
async def test_a_kafka_dead_letter_that_did_not_decode_still_shows_its_id_and_type(prefix: str) -> None:
    event = CloudEvent(
        {"id": "sdk-3", "source": "urn:example:scales", "type": TYPE, "datacontenttype": "text/plain"}, "740 g"
    )
    binary = ce_kafka.to_binary(event, JSONFormat())

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
        await producer.start()
        try:
            await producer.send_and_wait(f"{prefix}events", binary.value, headers=list(binary.headers.items()))
        finally:
            await producer.stop()

    async with await connect(kafka_url(prefix)) as transport:
        subscription = await transport.subscribe("scales", [TYPE])
        await send()
        async with asyncio.timeout(20):
            delivery = await anext(aiter(subscription))
        with pytest.raises(Exception, match="datacontenttype 'text/plain' is not JSON"):
            delivery.envelope()
        await delivery.dead_letter("not JSON")
        (letter,) = await transport.dead_letters("scales")
        await subscription.close()
    assert (letter.event_id, letter.type) == ("sdk-3", TYPE)


# -- what a service sends as its source --------------------------------------------------------


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, "urn:tidings:scales"), ("https://scales.example.com/eu", "https://scales.example.com/eu")],
)
async def test_the_sdk_sees_a_service_source_as_an_absolute_uri(
    vhost: str, configured: str | None, expected: str
) -> None:
    """The spec recommends an absolute URI: by default `urn:tidings:<service>`, else the configured one."""
    service = Service("scales", broker=amqp_url(vhost), source=configured)
    service.publishes(ParcelWeighed)
    async with service, await aio_pika.connect(amqp_url(vhost)) as raw:
        channel = await raw.channel()
        tap = await channel.declare_queue("", exclusive=True)
        await tap.bind("tidings.events", TYPE)
        (envelope,) = await service.publish(ParcelWeighed(parcel="p-4", grams=1))
        sent = await tap.get(timeout=5)
        await sent.ack()
    message = ce_amqp.AMQPMessage(
        properties={"content-type": sent.content_type},
        application_properties=dict(sent.headers),
        application_data=sent.body,
    )
    event = ce_amqp.from_binary(message, JSONFormat())
    assert event.get_source() == envelope.source == expected
    assert urlsplit(event.get_source()).scheme in ("urn", "https")
