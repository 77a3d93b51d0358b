"""RabbitMQ for `bench/transport.py`: a fresh vhost per run, and the same work done without
Tidings, by raw aio-pika and by FastStream, so the three figures come from one run.

"The same work": the same messages (the bytes and CloudEvents headers Tidings sends for the
run's envelopes, persistent), one topic exchange routing them to one quorum queue, publisher
confirms gathered per batch of `--batch`, then consumed with the same `--prefetch` and each
message acked. Raw aio-pika does nothing else (no decoding): it is the floor of the cost.
FastStream decodes as it always does, into its message object. Tidings decodes each envelope.

Shared machines are noisy, so the comparison runs `--rounds` rounds, each running the three in
a rotated order, and reports the median of each figure (and every sample).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from urllib.request import Request, urlopen

from tidings_round import summarise, tidings_round

from tidings.envelope import Envelope, to_binary

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

MANAGEMENT = "http://127.0.0.1:15672"
AMQP = "amqp://guest:guest@127.0.0.1:5672"
ROUTING_KEY = "bench.event"
Wire = tuple[bytes, dict[str, Any], str, str]
"""(body, headers, content type, message id) of one message as Tidings sends it."""


def _management(method: str, path: str, body: dict[str, Any] | None = None) -> None:
    token = base64.b64encode(b"guest:guest").decode()
    request = Request(
        f"{MANAGEMENT}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=30):
        pass


@asynccontextmanager
async def rabbitmq_broker(args: argparse.Namespace) -> AsyncIterator[str]:
    """A vhost made for this run (management API on 127.0.0.1:15672, guest/guest), then deleted."""
    vhost = f"tidings-bench-{uuid.uuid4().hex[:8]}"
    path = quote(vhost, safe="")
    await asyncio.to_thread(_management, "PUT", f"/api/vhosts/{path}")
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    await asyncio.to_thread(_management, "PUT", f"/api/permissions/{path}/guest", permissions)
    try:
        yield f"{AMQP}/{path}"
    finally:
        await asyncio.to_thread(_management, "DELETE", f"/api/vhosts/{path}")


def _wire(envelopes: list[Envelope]) -> list[Wire]:
    messages = []
    for envelope in envelopes:
        headers, body = to_binary(envelope, "cloudEvents_")
        content_type = headers.pop("content-type")
        messages.append((body, dict(headers), content_type, envelope.id))
    return messages


async def _declare(url: str, name: str) -> None:
    import aio_pika  # here, so that benchmarking other brokers does not need the rabbitmq extra

    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, ROUTING_KEY)


async def raw_aio_pika(url: str, args: argparse.Namespace, messages: list[Wire]) -> tuple[float, float]:
    import aio_pika

    name = "bench.raw"
    await _declare(url, name)
    async with await aio_pika.connect(url) as connection:
        publishing = await connection.channel(publisher_confirms=True)
        exchange = await publishing.get_exchange(name)
        started = time.perf_counter()
        for start in range(0, len(messages), args.batch):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            headers=headers,
                            content_type=content_type,
                            message_id=message_id,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        ROUTING_KEY,
                        mandatory=False,
                    )
                    for body, headers, content_type, message_id in messages[start : start + args.batch]
                )
            )
        publish_seconds = time.perf_counter() - started

        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=args.prefetch)
        queue = await consuming.get_queue(name)
        done = asyncio.Event()
        received = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received == len(messages):
                done.set()

        started = time.perf_counter()
        tag = await queue.consume(on_message)
        await done.wait()
        consume_seconds = time.perf_counter() - started
        await queue.cancel(tag)
    return publish_seconds, consume_seconds


async def faststream(url: str, args: argparse.Namespace, messages: list[Wire]) -> tuple[float, float]:
    from faststream.rabbit import Channel, ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
    from faststream.rabbit.annotations import RabbitMessage

    name = "bench.faststream"
    await _declare(url, name)
    broker = RabbitBroker(url, logger=None)
    queue = RabbitQueue(name, queue_type=QueueType.QUORUM, durable=True, routing_key=ROUTING_KEY)
    exchange = RabbitExchange(name, type=ExchangeType.TOPIC, durable=True)
    done = asyncio.Event()
    received = 0

    @broker.subscriber(queue, exchange, channel=Channel(prefetch_count=args.prefetch))
    async def handle(message: RabbitMessage) -> None:
        nonlocal received
        received += 1
        if received == len(messages):
            done.set()

    await broker.connect()
    try:
        started = time.perf_counter()
        for start in range(0, len(messages), args.batch):
            await asyncio.gather(
                *(
                    broker.publish(
                        body,
                        exchange=exchange,
                        routing_key=ROUTING_KEY,
                        headers=headers,
                        content_type=content_type,
                        message_id=message_id,
                        persist=True,
                        mandatory=False,
                    )
                    for body, headers, content_type, message_id in messages[start : start + args.batch]
                )
            )
        publish_seconds = time.perf_counter() - started

        started = time.perf_counter()
        await broker.start()
        await done.wait()
        consume_seconds = time.perf_counter() - started
    finally:
        await broker.stop()
    return publish_seconds, consume_seconds


async def tidings(url: str, args: argparse.Namespace, envelopes: list[Envelope], group: str) -> tuple[float, float]:
    """What `measure` in bench/transport.py does, as one round of the comparison."""
    return await tidings_round(url, args, envelopes, group)


Runner = Callable[[str, argparse.Namespace, list[Wire]], Awaitable[tuple[float, float]]]
BASELINES: dict[str, Runner] = {"aio_pika": raw_aio_pika, "faststream": faststream}
KINDS = ("publish", "consume_ack")


async def rabbitmq_baselines(url: str, args: argparse.Namespace, envelopes: list[Envelope]) -> dict[str, Any]:
    """Tidings, raw aio-pika and FastStream doing the same work, in interleaved rounds: median
    events/s of each, every sample, and Tidings' medians relative to the others'."""
    messages = _wire(envelopes)
    rounds = max(1, getattr(args, "rounds", 3))
    names = ["tidings", *BASELINES]
    samples: dict[str, dict[str, list[int]]] = {name: {kind: [] for kind in KINDS} for name in names}
    for round_number in range(rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            if name == "tidings":
                seconds = await tidings(url, args, envelopes, "compare")
            else:
                seconds = await BASELINES[name](url, args, messages)
            for kind, elapsed in zip(KINDS, seconds, strict=True):
                samples[name][kind].append(round(len(messages) / elapsed))
    figures = summarise(samples, BASELINES)
    figures["rounds"] = rounds
    figures["queue_type"] = "quorum"
    figures["vhost"] = urlsplit(url).path
    return figures
