"""Per-test isolation on the real RabbitMQ: a fresh vhost, created and deleted through the
management HTTP API, and the conformance suite's adapter factory built on it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conformance.events import ping
from tests.conformance.harness import BrokerTarget
from tidings.errors import PublishError
from tidings.transport import Subscription, Transport

HOST = "127.0.0.1"
AMQP_PORT = 5672
MANAGEMENT = "http://127.0.0.1:15672"
AUTH = ("guest", "guest")


def amqp_url(vhost: str, query: str = "", *, port: int = AMQP_PORT) -> str:
    url = f"amqp://guest:guest@{HOST}:{port}/{quote(vhost, safe='')}"
    return f"{url}?{query}" if query else url


@asynccontextmanager
async def fresh_vhost(prefix: str = "tidings-test") -> AsyncIterator[str]:
    """A vhost that exists for the duration of the block, with full rights for guest."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    path = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=AUTH, timeout=30) as client:
        (await client.put(f"/api/vhosts/{path}")).raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        (await client.put(f"/api/permissions/{path}/guest", json=permissions)).raise_for_status()
        try:
            yield vhost
        finally:
            response = await client.delete(f"/api/vhosts/{path}")
            if response.status_code not in (204, 404):
                response.raise_for_status()


async def queue_counts(vhost: str) -> dict[str, int]:
    """Ready + unacked messages per queue, as the management API last sampled them."""
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=AUTH, timeout=30) as client:
        response = await client.get(f"/api/queues/{quote(vhost, safe='')}", params={"columns": "name,messages"})
        response.raise_for_status()
        return {queue["name"]: int(queue.get("messages") or 0) for queue in response.json()}


@dataclass(frozen=True)
class RabbitAdapter:
    """Conformance factory: each test gets its own vhost on the real broker."""

    name: str = "rabbitmq"
    marks: Sequence[pytest.MarkDecorator] = (pytest.mark.rabbitmq,)
    query: str = ""

    @asynccontextmanager
    async def target(self, tmp_path: Path) -> AsyncIterator[BrokerTarget]:
        async with fresh_vhost("tidings-conformance") as vhost:
            yield BrokerTarget(amqp_url(vhost, self.query))


@dataclass
class Traffic:
    """What a producer and a consumer saw while something disrupted the broker connection."""

    published: list[str]
    consumed: set[str]
    publish_failures: int
    published_after: int
    consumed_after: int

    @property
    def lost(self) -> set[str]:
        return set(self.published) - self.consumed


async def run_traffic(
    publisher: Transport,
    subscription: Subscription,
    disrupt: Callable[[], Awaitable[object]],
    *,
    before: float = 1.0,
    after: float = 2.0,
    drain_within: float = 60.0,
) -> Traffic:
    """Publish pings in small batches and consume them while `disrupt()` runs; then wait until
    every event whose `publish` returned has been consumed (or `drain_within` passes)."""
    published: list[str] = []
    consumed: set[str] = set()
    failures = 0
    counts = {"published_after": 0, "consumed_after": 0}
    disrupted, stop, enough, drained = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()

    def check_drained() -> None:
        if stop.is_set() and set(published) <= consumed:
            drained.set()

    async def produce() -> None:
        nonlocal failures
        n = 0
        while not stop.is_set():
            batch = [ping(n + i, key=f"k{(n + i) % 7}") for i in range(5)]
            n += len(batch)
            try:
                await publisher.publish(batch)
            except PublishError:
                failures += 1
                await asyncio.sleep(0.05)
                continue
            published.extend(envelope.id for envelope in batch)
            if disrupted.is_set():
                counts["published_after"] += len(batch)
                if counts["published_after"] >= 50:
                    enough.set()
            await asyncio.sleep(0.01)

    async def consume() -> None:
        async for delivery in subscription:
            consumed.add(delivery.envelope().id)
            if disrupted.is_set():
                counts["consumed_after"] += 1
            await delivery.ack()
            check_drained()

    producer = asyncio.create_task(produce())
    consumer = asyncio.create_task(consume())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + before + drain_within
    try:
        await asyncio.sleep(before)
        await disrupt()
        disrupted.set()
        await asyncio.sleep(after)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), max(0.1, deadline - loop.time()))
        stop.set()
        await producer
        check_drained()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), max(0.1, deadline - loop.time()))
    finally:
        stop.set()
        for task in (producer, consumer):
            task.cancel()
        await asyncio.gather(producer, consumer, return_exceptions=True)
    return Traffic(published, consumed, failures, counts["published_after"], counts["consumed_after"])
