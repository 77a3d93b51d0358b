"""The headers the AsyncAPI document declares are exactly those a message Tidings publishes
carries, on the real RabbitMQ and the real Kafka (every optional attribute set, so every
declared header can appear), and its content type is where the document says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aiokafka import AIOKafkaConsumer

from tests.integration.kafka_support import BOOTSTRAP, fresh_prefix, kafka_url
from tests.integration.rabbitmq_support import amqp_url
from tidings.asyncapi import Brokers, document
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.service import Service
from tidings.transport import connect


class Stamped(Event, type="wire.letter.stamped", version=2):
    letter: str

    def subject(self) -> str:
        return self.letter

    def partition_key(self) -> str:
        return self.letter


def spec(prefix: str = "") -> dict[str, Any]:
    post = Service("post", broker="memory://asyncapi-wire")
    post.publishes(Stamped)
    sorting = Service("sorting", broker="memory://asyncapi-wire")

    @sorting.on(Stamped)
    async def sort(event: Stamped, ctx: Context) -> None: ...

    return document([post, sorting], title="Wire", brokers=Brokers(kafka_prefix=prefix))


def every_attribute() -> Envelope:
    envelope = Envelope.wrap(
        Stamped(letter="l-1"),
        source="urn:tidings:post",
        causationid="0193a1b2-0000-7000-8000-000000000001",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    assert all(value is not None for value in envelope.attributes().values())
    assert len(envelope.attributes()) == 12, "every attribute the document knows, and datacontenttype"
    return envelope


@pytest.mark.rabbitmq
async def test_amqp_headers_are_the_declared_ones(vhost: str) -> None:
    message = spec()["components"]["messages"]["wire.letter.stamped.v2.amqp"]
    channel_address = spec()["channels"]["amqp.wire.letter.stamped"]["address"]
    exchange = spec()["channels"]["amqp.wire.letter.stamped"]["bindings"]["amqp"]["exchange"]["name"]
    envelope = every_attribute()
    async with await connect(amqp_url(vhost)) as transport, await aio_pika.connect(amqp_url(vhost)) as raw:
        channel = await raw.channel()
        tap = await channel.declare_queue("", exclusive=True)
        await tap.bind(exchange, channel_address)
        await transport.publish([envelope])
        sent = await tap.get(timeout=5)
        await sent.ack()
    assert set(sent.headers) == set(message["headers"]["properties"])
    assert sent.content_type == message["contentType"]
    assert sent.routing_key == channel_address == envelope.type


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with fresh_prefix("asyncapi-wire") as prefix:
        yield prefix


@pytest.mark.kafka
async def test_kafka_headers_are_the_declared_ones(prefix: str) -> None:
    document_ = spec(prefix)
    message = document_["components"]["messages"]["wire.letter.stamped.v2.kafka"]
    topic = document_["channels"]["kafka.events"]["bindings"]["kafka"]["topic"]
    envelope = every_attribute()
    async with await connect(kafka_url(prefix)) as transport:
        await transport.publish([envelope])
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(15):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    names = [name for name, _ in record.headers]
    assert len(names) == len(set(names))
    assert set(names) == set(message["headers"]["properties"])
    assert dict(record.headers)["content-type"].decode() == message["contentType"]
    assert record.key == b"l-1", "the key the message binding declares: the partition key"
