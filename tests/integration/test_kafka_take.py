"""The runtime's batches on the real Kafka (ADR 0028): `take` hands out what is ready together,
never two of one key; a taken delivery's `ack()` asks for its commit without waiting, and
`flush()` returns once it is committed. A `Service` consuming that way keeps per-key order,
retries, and on stop settles what it handled while what it did not comes back."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from tests.conformance.events import PING, Ping, event_of, ping
from tests.integration.kafka_support import assert_each_key_in_order, fresh_prefix, kafka_url
from tests.waiting import eventually
from tidings.context import Context
from tidings.errors import TransportError
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport import connect
from tidings.transport.base import Delivery

pytestmark = pytest.mark.kafka


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_prefix("kafka-take") as prefix:
        yield kafka_url(prefix)


def acked_without_waiting(delivery: Delivery) -> bool:
    """Run `delivery.ack()` one step: True if it returned without suspending."""
    step = delivery.ack()
    try:
        step.send(None)
    except StopIteration:
        return True
    step.close()
    return False


async def test_take_hands_out_keys_apart_and_flush_returns_after_the_commit_of_its_acks(url: str) -> None:
    transport = await connect(url)
    try:
        subscription = await transport.subscribe("g", [PING], prefetch=64)
        assert subscription.deferred_acks
        await transport.publish([ping(n, key=f"k{n % 6}") for n in range(60)])
        seen: list[Ping] = []
        while len(seen) < 60:
            deliveries = await subscription.take(16)
            assert 1 <= len(deliveries) <= 16
            events = [event_of(delivery) for delivery in deliveries]
            keys = [event.key for event in events if isinstance(event, Ping)]
            assert len(keys) == len(set(keys)), f"two deliveries of one key in a batch: {keys}"
            assert all(acked_without_waiting(delivery) for delivery in deliveries)
            seen += [event for event in events if isinstance(event, Ping)]
        await subscription.flush()
        backlog = (await transport.backlog())["g"]  # no waiting: flush returned after the commit
        await subscription.close()
        with pytest.raises(TransportError, match="closed"):
            await subscription.flush()
    finally:
        await transport.close()
    assert_each_key_in_order(seen, 60)
    assert backlog == 0


async def test_a_service_keeps_key_order_retries_and_leaves_nothing_unsettled(url: str) -> None:
    service = Service("ordered", broker=url, concurrency=4, retry=RetryPolicy(base=0.05, jitter=0.0))
    handled: dict[str, list[int]] = defaultdict(list)
    attempts: dict[int, int] = defaultdict(int)

    @service.on(Ping)
    async def handle(event: Ping, ctx: Context) -> None:
        attempts[event.n] += 1
        if event.n % 2:
            await asyncio.sleep(0)  # some handlers suspend, some finish at once
        if event.n == 7 and ctx.attempt == 1:
            raise ConnectionError("flaky")
        assert event.key is not None
        handled[event.key].append(event.n)

    publisher = await connect(url)
    try:
        async with service:
            await publisher.publish([ping(n, key=f"k{n % 5}") for n in range(100)])
            await eventually(lambda: service.stats["handled"] == 100, "every ping handled", within=30)
        backlog = (await publisher.backlog())["ordered"]
    finally:
        await publisher.close()
    for key, numbers in handled.items():
        assert numbers == sorted(numbers), f"{key} out of order: {numbers}"
    assert sorted(n for numbers in handled.values() for n in numbers) == list(range(100))
    assert attempts[7] == 2
    assert service.stats["retried"] == 1
    assert backlog == 0


async def test_stopping_a_service_commits_what_it_handled_and_gives_back_what_it_did_not(url: str) -> None:
    first = Service("draining", broker=url, concurrency=4, drain_timeout=0.5)
    stuck = asyncio.Event()
    done: list[int] = []

    @first.on(Ping)
    async def hang_on_one(event: Ping, ctx: Context) -> None:
        if event.n == 0:
            stuck.set()
            await asyncio.Event().wait()  # never finishes: cancelled by the drain
        done.append(event.n)

    publisher = await connect(url)
    try:
        async with first:
            await publisher.publish([ping(n, key=f"k{n}") for n in range(20)])
            await eventually(lambda: stuck.is_set() and len(done) == 19, "all but the stuck one handled")

        second = Service("draining", broker=url, concurrency=4)
        again: list[tuple[int, int]] = []

        @second.on(Ping)
        async def handle(event: Ping, ctx: Context) -> None:
            again.append((event.n, ctx.attempt))

        async with second:
            await eventually(lambda: again, "the stuck ping delivered again", within=30)
        backlog = (await publisher.backlog())["draining"]  # stopping committed its ack
    finally:
        await publisher.close()
    assert again == [(0, 2)], f"only the unsettled one comes back, once more: {again}"
    assert backlog == 0
