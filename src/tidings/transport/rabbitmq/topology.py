"""Names and arguments of the RabbitMQ topology, and the delay buckets of `retry(after)`.

::

    publish(type) ──► <ns>.events (topic, durable) ──binding per subscribed type──► <ns>:<group>
                                                                                   │  consumers
          ┌───────── retry(after): copy to the bucket ≥ after, then ack ◄──────────┤
          ▼                                                                        │
    <ns>:<group>:delay:<ms>  (x-message-ttl=<ms>, dead-letters to <ns>:<group>) ───┘
    <ns>:<group>:dlq         (classic; dead_letter(reason): copy with reason + attempts, then ack)

Group and delay queues are quorum queues by default (classic with `queue_type=classic`); they
dead-letter what the broker itself gives up on (a quorum `delivery_limit`) to the group's
dead-letter queue, so no path drops a message.

Delays are buckets of 10 ms * 2^k (k = 0..23, 10 ms to 23.3 h). `after` is rounded *up* to
a bucket, so a retry waits at least `after` and less than twice `after` (plus up to 10 ms).
A longer delay waits in the largest bucket and carries the remainder in a header; the
subscription parks it again when it comes back, without handing it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Collection
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel

from tidings.errors import ConfigurationError, TransportError
from tidings.transport.rabbitmq.config import RabbitConfig
from tidings.transport.rabbitmq.link import BROKER_ERRORS, Link

log = logging.getLogger("tidings.transport.rabbitmq")
BUCKET_BASE_MS = 10
BUCKETS_MS = tuple(BUCKET_BASE_MS * 2**k for k in range(24))
MAX_BUCKET_MS = BUCKETS_MS[-1]


def events_exchange(config: RabbitConfig) -> str:
    return f"{config.namespace}.events"


def group_queue(config: RabbitConfig, group: str) -> str:
    return f"{config.namespace}:{group}"


def dead_letter_queue(config: RabbitConfig, group: str) -> str:
    return f"{config.namespace}:{group}:dlq"


def delay_queue(config: RabbitConfig, group: str, bucket_ms: int) -> str:
    return f"{config.namespace}:{group}:delay:{bucket_ms}"


def parse_queue(config: RabbitConfig, name: str) -> tuple[str, str] | None:
    """(group, role) of one of our queue names, role being `group`, `delay` or `dlq`; else None."""
    prefix = f"{config.namespace}:"
    if not name.startswith(prefix):
        return None
    group, _, rest = name[len(prefix) :].partition(":")
    if not rest:
        return group, "group"
    if rest == "dlq":
        return group, "dlq"
    if rest.startswith("delay:"):
        return group, "delay"
    return None


def bucket_for(delay_ms: int) -> tuple[int, int]:
    """(bucket to wait in, remainder to wait after it) for a delay of `delay_ms` > 0."""
    if delay_ms > MAX_BUCKET_MS:
        return MAX_BUCKET_MS, delay_ms - MAX_BUCKET_MS
    k = max(0, math.ceil(math.log2(delay_ms / BUCKET_BASE_MS))) if delay_ms > BUCKET_BASE_MS else 0
    bucket = BUCKETS_MS[min(k, len(BUCKETS_MS) - 1)]
    while bucket < delay_ms:  # guard against floating-point rounding down
        bucket *= 2
    return bucket, 0


def group_arguments(config: RabbitConfig, group: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": config.queue_type,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue(config, group),
    }
    if config.queue_type == "quorum":
        # dead-letter at least once (needs reject-publish); only the broker's own give-ups use it
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
        if config.delivery_limit is not None:
            arguments["x-delivery-limit"] = config.delivery_limit
    if config.ordering == "key":
        arguments["x-single-active-consumer"] = True
    return arguments


def delay_arguments(config: RabbitConfig, group: str, bucket_ms: int) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-queue-type": config.queue_type,
        "x-message-ttl": bucket_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": group_queue(config, group),
    }
    if config.queue_type == "quorum":
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


def dead_letter_arguments() -> dict[str, Any]:
    # Classic on purpose: listing dead letters gets and requeues them, which must neither count
    # towards a quorum delivery limit nor reorder them.
    return {"x-queue-type": "classic"}


class Declarer:
    """Declares the topology idempotently and remembers it, to declare it again after a reconnect.

    A queue that exists with other arguments (another `queue_type` or `ordering`, a legacy queue
    declared differently) makes the broker refuse the declaration: that surfaces as a
    `ConfigurationError` naming the queue, at `subscribe` time.
    """

    def __init__(self, link: Link) -> None:
        self._link = link
        self._config = link.config
        self._groups: dict[str, set[str]] = {}
        self._delays: set[tuple[str, int]] = set()
        self._legacy: set[str] = set()
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def redeclare(self) -> None:
        """Link hook: the exchange, then everything declared so far."""
        self._channel = None
        raw = await self._raw(wait=False)
        await raw.exchange_declare(events_exchange(self._config), exchange_type="topic", durable=True)
        for group, types in self._groups.items():
            await self._declare_group(group, types, wait=False)
        raw = await self._raw(wait=False)
        for group, bucket in self._delays:
            await self._declare_delay(raw, group, bucket)
        for queue in self._legacy:
            await self._declare_classic(queue, None, wait=False)

    async def group(self, group: str, types: Collection[str], legacy_queues: Collection[str] = ()) -> None:
        async with self._lock, self._refusals():
            await self._declare_group(group, types)
            for queue in legacy_queues:
                await self._declare_classic(queue, None)
        self._groups.setdefault(group, set()).update(types)
        self._legacy.update(legacy_queues)

    async def delay(self, group: str, bucket_ms: int) -> None:
        if (group, bucket_ms) in self._delays:
            return
        async with self._lock, self._refusals():
            await self._declare_delay(await self._raw(), group, bucket_ms)
        self._delays.add((group, bucket_ms))

    async def _declare_group(self, group: str, types: Collection[str], *, wait: bool = True) -> None:
        queue = group_queue(self._config, group)
        await self._declare_classic(dead_letter_queue(self._config, group), dead_letter_arguments(), wait=wait)
        raw = await self._raw(wait=wait)
        await raw.queue_declare(queue, durable=True, arguments=group_arguments(self._config, group))
        for event_type in sorted(types):
            await raw.queue_bind(queue, events_exchange(self._config), routing_key=event_type)

    async def _declare_delay(self, raw: RawChannel, group: str, bucket_ms: int) -> None:
        await raw.queue_declare(
            delay_queue(self._config, group, bucket_ms),
            durable=True,
            arguments=delay_arguments(self._config, group, bucket_ms),
        )

    async def _declare_classic(self, queue: str, arguments: dict[str, Any] | None, *, wait: bool = True) -> None:
        """Declare a classic queue (dead letters, a legacy queue). In a cluster it lives on one
        node; while that node is down the broker answers NOT_FOUND ("home node ... is down"):
        the rest of the topology is declared anyway, so consuming resumes on the surviving nodes,
        and copies meant for that queue are refused until it is back (`settlement.move`
        publishes them `mandatory`, and the original returns to its queue)."""
        raw = await self._raw(wait=wait)
        try:
            await raw.queue_declare(queue, durable=True, arguments=arguments)
        except aiormq.exceptions.ChannelNotFoundEntity as error:
            text = str(error.args[-1] if error.args else error)
            if "home node" not in text:
                raise
            log.warning("queue %r is unavailable (%s); declaring the rest of the topology", queue, text)
            self._channel = None  # the refusal closed the channel

    async def _raw(self, *, wait: bool = True) -> RawChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._link.channel(wait=wait)
        return await self._channel.get_underlay_channel()

    @contextlib.asynccontextmanager
    async def _refusals(self) -> AsyncIterator[None]:
        try:
            yield
        except aiormq.exceptions.ChannelPreconditionFailed as error:
            raise ConfigurationError(
                f"the broker refused a declaration: {error.args[-1] if error.args else error}; a queue "
                "already exists with other arguments (queue_type, ordering or delivery_limit changed?): "
                "keep the options it was created with, or delete it"
            ) from None
        except BROKER_ERRORS as error:
            raise TransportError(f"declaring the topology failed: {error!r}") from error
