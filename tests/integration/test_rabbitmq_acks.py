"""Coalesced acks on the real broker (ADR 0037): deliveries settled out of order, in concurrent
bursts, with one held back and some retried, cost fewer ack frames than deliveries, and the broker
takes every one of them: the channel stays open, nothing comes back, the queue ends empty."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aio_pika
import aiormq.channel
import pytest

from tests.conformance.events import PING, ping
from tests.conformance.harness import until
from tests.integration.rabbitmq_support import amqp_url
from tidings.transport import Delivery, connect

pytestmark = pytest.mark.rabbitmq

COUNT = 60


async def ready_messages(vhost: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url(vhost))
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_out_of_order_acks_are_coalesced_and_all_land(
    vhost: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    frames: list[tuple[int, bool]] = []
    original = aiormq.channel.Channel.basic_ack

    async def counted(self: aiormq.channel.Channel, delivery_tag: int, multiple: bool = False, **kw: Any) -> None:
        frames.append((delivery_tag, multiple))
        await original(self, delivery_tag, multiple, **kw)

    monkeypatch.setattr(aiormq.channel.Channel, "basic_ack", counted)
    caplog.set_level(logging.WARNING, logger="tidings.transport.rabbitmq")
    transport = await connect(amqp_url(vhost))
    try:
        subscription = await transport.subscribe("billing", [PING], prefetch=COUNT + 10)
        iterator = aiter(subscription)
        await transport.publish([ping(n) for n in range(COUNT)])
        deliveries = [await asyncio.wait_for(anext(iterator), 10) for _ in range(COUNT)]
        held = deliveries[COUNT - 10]  # unsettled till the end: the acks above it go one by one
        retried = deliveries[5:8]
        rest = [delivery for delivery in deliveries if delivery is not held and delivery not in retried]
        shuffle = random.Random(7).shuffle
        await asyncio.gather(*(delivery.retry(0) for delivery in retried))  # a copy, then an ack
        again: list[Delivery] = [await asyncio.wait_for(anext(iterator), 10) for _ in retried]
        assert sorted(d.envelope().id for d in again) == sorted(d.envelope().id for d in retried)
        for start in range(0, len(rest), 8):  # bursts in tag order, out of order within each, as
            burst = rest[start : start + 8]  # a group commit's batch settles
            shuffle(burst)
            await asyncio.gather(*(delivery.ack() for delivery in burst))
        await asyncio.gather(held.ack(), *(delivery.ack() for delivery in again))

        last = ping(COUNT)
        await transport.publish([last])  # the channel is still the same: nothing comes back first
        following = await asyncio.wait_for(anext(iterator), 10)
        assert following.envelope().id == last.id
        await following.ack()
        await subscription.close()
    finally:
        await transport.close()

    acks = COUNT + len(retried) + 1
    assert len(frames) <= acks / 2, f"{len(frames)} ack frames for {acks} acks: {frames}"
    assert any(multiple for _, multiple in frames)
    assert await until(lambda: ready_messages(vhost, "tidings:billing"), lambda count: count == 0) == 0
    assert not [record.getMessage() for record in caplog.records if "closed" in record.getMessage()]
