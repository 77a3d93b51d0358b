"""What settling a RabbitMQ delivery does on the broker: acks, requeues, and the copies that
`retry(after)` and `dead_letter(reason)` publish before acking the original.

A copy is published with confirms, then the original is acked; a copy that cannot be published
requeues the original (after a pause, so a persistent failure is no hot loop). Acks and requeues
go through the channel's `ChannelAcks`, which coalesces them (ADR 0037). Every call here is safe
on a channel that has gone: the broker has put the message back in its queue already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiormq.abc import DeliveredMessage

from tidings.errors import PublishError
from tidings.ids import uuid7
from tidings.transport.rabbitmq.acks import acks_of
from tidings.transport.rabbitmq.codec import (
    ATTEMPTS,
    DEAD_AT,
    DEAD_LETTER_ID,
    DELAY_LEFT,
    GROUP,
    ORIGIN,
    REASON,
    attempt_of,
    copy_properties,
    header_values,
)
from tidings.transport.rabbitmq.config import LegacyMapping, RabbitConfig
from tidings.transport.rabbitmq.link import BROKER_ERRORS, Link
from tidings.transport.rabbitmq.topology import Declarer, bucket_for, delay_queue

log = logging.getLogger("tidings.transport.rabbitmq")

FAILURE_PAUSE = 0.5
"""Seconds before requeueing a message whose copy could not be published (no hot loop)."""
COPY_ERRORS: tuple[type[BaseException], ...] = (PublishError, *BROKER_ERRORS)


def attempt(message: DeliveredMessage) -> int:
    """The attempt a message is on, from its `x-tidings-` headers and the broker's counts."""
    return attempt_of(header_values(message.header.properties), bool(message.redelivered))


def dead_letter_headers(group: str, reason: str, attempts: int, legacy: LegacyMapping | None) -> dict[str, Any]:
    """The `x-tidings-` headers of a dead-letter copy: why, after how many attempts, for whom."""
    extra: dict[str, Any] = {
        REASON: reason,
        ATTEMPTS: attempts,
        GROUP: group,
        DEAD_LETTER_ID: uuid7(),
        DEAD_AT: datetime.now(UTC).isoformat(),
    }
    if legacy is not None:
        extra[ORIGIN] = legacy.queue
    return extra


async def move(link: Link, message: DeliveredMessage, queue: str, extra: Mapping[str, Any]) -> None:
    """Publish a copy to `queue` (confirmed), then ack the original; requeue it on failure."""
    properties = copy_properties(message.header.properties, extra)
    try:
        await link.send([("", queue, properties, message.body)], mandatory=True)
    except PublishError:
        await requeue(message)
        raise
    await ack(message)


async def park(
    link: Link, declarer: Declarer, config: RabbitConfig, group: str, message: DeliveredMessage, left_ms: int
) -> None:
    """A delay longer than the largest bucket came back early: wait in a bucket again."""
    bucket, left = bucket_for(left_ms)
    headers = message.header.properties.headers or {}
    extra = {key: value for key, value in headers.items() if key.startswith("x-tidings-") and key != DELAY_LEFT}
    if left:
        extra[DELAY_LEFT] = left
    try:
        await declarer.delay(group, bucket)
        properties = copy_properties(message.header.properties, extra)
        await link.send([("", delay_queue(config, group, bucket), properties, message.body)], mandatory=True)
    except COPY_ERRORS as error:
        log.warning("%s: could not park a delayed retry (%r); requeueing it", group, error)
        await requeue(message)
        return
    await ack(message)


async def ack(message: DeliveredMessage) -> None:
    """Ack, coalesced with the channel's other acks of this loop turn (`acks`)."""
    if message.delivery_tag is not None:
        await acks_of(message.channel).ack(message.delivery_tag)


async def requeue(message: DeliveredMessage) -> None:
    """Give a message back after a failed copy, after a pause so a persistent failure is no hot loop."""
    await asyncio.sleep(FAILURE_PAUSE)
    if message.delivery_tag is not None and not message.channel.is_closed:
        await acks_of(message.channel).requeue(message.delivery_tag)
