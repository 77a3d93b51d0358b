"""Each broker, written to with its own raw client, bypassing Tidings' `publish` and codecs.

A `Target` is a fresh namespace on one broker (a SQLite file, a RabbitMQ vhost, a Kafka topic
prefix), the URL a `Service` consumes it by, and `write`, which puts `Raw` messages on it in
one batch, in order: SQLite rows (`sqlite_raw.inject_many`), AMQP messages published to the
events exchange with the routing key of the subscribed type (aio-pika, publisher confirms),
Kafka records produced to the events topic (aiokafka, `acks=all`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from tests.integration.bad_input.hostile import PAYMENT, TAG, UNKNOWN_TYPES, Raw
from tests.integration.kafka_support import BOOTSTRAP, fresh_prefix, kafka_url
from tests.integration.rabbitmq_support import amqp_url, fresh_vhost
from tests.integration.sqlite_raw import Row, inject_many
from tidings.transport import connect

GROUP = "bad-input"


class Target(Protocol):
    name: str
    url: str

    async def write(self, messages: Sequence[Raw]) -> None: ...


def _headers(message: Raw, prefix: str) -> dict[str, str]:
    headers = {prefix + name: value for name, value in message.attributes.items()}
    headers[TAG] = message.tag
    return headers


class SqliteTarget:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}?lease=5"

    async def write(self, messages: Sequence[Raw]) -> None:
        rows = []
        for message in messages:
            headers = _headers(message, "ce_")
            if message.content_type is not None:
                headers["content-type"] = message.content_type
            event_id = message.attributes.get("id") or message.tag
            rows.append(Row(PAYMENT, headers, message.body, partition_key=message.key, event_id=event_id))
        await asyncio.to_thread(inject_many, self.path, rows)


class RabbitTarget:
    name = "rabbitmq"

    def __init__(self, vhost: str) -> None:
        self.url = amqp_url(vhost)

    async def write(self, messages: Sequence[Raw]) -> None:
        import aio_pika

        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel()  # publisher confirms: publish returns once confirmed
            exchange = await channel.get_exchange("tidings.events")
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            message.body,
                            headers=_headers(message, "cloudEvents_"),  # type: ignore[arg-type]
                            content_type=message.content_type,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        PAYMENT,  # the subscribed type's routing key, whatever the message says
                    )
                    for message in messages
                )
            )


class KafkaTarget:
    name = "kafka"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.url = kafka_url(prefix)

    async def prepare(self) -> None:
        """A member that knew `UNKNOWN_TYPES` joined the group and went away (a rolled-back deploy):
        the group's registry lists them, so its members are handed them instead of skipping them."""
        transport = await connect(self.url)
        try:
            subscription = await transport.subscribe(GROUP, [PAYMENT, *UNKNOWN_TYPES])
            await subscription.close()
        finally:
            await transport.close()

    async def write(self, messages: Sequence[Raw]) -> None:
        from aiokafka import AIOKafkaProducer

        # gzip: an over-limit body (more than 1 MiB of repeated bytes) fits the broker's record limit
        producer = AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP, acks="all", compression_type="gzip", max_request_size=8 * 1024 * 1024
        )
        await producer.start()
        try:
            sent = []
            for message in messages:
                headers = [(name, value.encode()) for name, value in _headers(message, "ce_").items()]
                if message.content_type is not None:
                    headers.append(("content-type", message.content_type.encode()))
                key = message.key.encode() if message.key else None
                sent.append(await producer.send(f"{self.prefix}events", message.body, key=key, headers=headers))
            await asyncio.gather(*sent)
        finally:
            await producer.stop()


@asynccontextmanager
async def target(name: str, tmp_path: Path) -> AsyncIterator[SqliteTarget | RabbitTarget | KafkaTarget]:
    """A fresh namespace on broker `name`, removed afterwards."""
    if name == "sqlite":
        yield SqliteTarget(tmp_path / "broker.db")
    elif name == "rabbitmq":
        async with fresh_vhost("bad-input") as vhost:
            yield RabbitTarget(vhost)
    else:
        async with fresh_prefix("bad-input") as prefix:
            kafka = KafkaTarget(prefix)
            await kafka.prepare()
            yield kafka
