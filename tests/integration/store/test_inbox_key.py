"""The inbox keys on (group, source, id), as CloudEvents makes only (source, id) unique, and an id
or source the store cannot hold is dead-lettered at once with a reason, on every database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.integration.store.helpers import eventually
from tests.integration.store.shop import Job, create_tables, effect_counts, worker
from tidings.envelope import Envelope
from tidings.retry import RetryPolicy
from tidings.transport.base import connect

LIMIT = 200
"""The longest id and source the envelope accepts (and the store holds)."""
FAST = RetryPolicy(max_attempts=3, base=0.01, max_delay=0.05)


def _job(n: int, *, source: str, event_id: str) -> Envelope:
    return Envelope.wrap(Job(n=n), source=source).with_changes(id=event_id)


def _when(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


async def test_colliding_ids_from_two_sources_are_both_handled(database_url: str, reliable_broker_url: str) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    service = worker(reliable_broker_url, database_url, retry=FAST)
    first = _job(1, source="https://billing.example/orders", event_id="order-1")
    second = _job(2, source="https://shipping.example/orders", event_id="order-1")  # same id, another producer
    try:
        async with service:
            await transport.publish([first, second])
            await eventually(_when(lambda: service.stats["handled"] == 2), what="both events handled")
            await transport.publish([first])  # a real redelivery: same source, same id
            await eventually(_when(lambda: service.stats["duplicates"] == 1), what="the duplicate")
    finally:
        await transport.close()
    assert await effect_counts(database_url, "worker") == {1: 1, 2: 1}


async def test_an_id_and_a_source_at_the_limit_are_handled_on_every_database(
    database_url: str, reliable_broker_url: str
) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    service = worker(reliable_broker_url, database_url, retry=FAST)
    try:
        async with service:
            await transport.publish([_job(1, source="s" * LIMIT, event_id="i" * LIMIT)])
            await eventually(_when(lambda: service.stats["handled"] + service.stats["dead_lettered"] == 1))
    finally:
        await transport.close()
    assert (service.stats["handled"], service.stats["retried"]) == (1, 0)


async def test_an_over_long_id_is_dead_lettered_at_once_with_the_limit_as_reason(
    database_url: str, reliable_broker_url: str
) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    service = worker(reliable_broker_url, database_url, retry=FAST)
    too_long = "i" * (LIMIT + 1)
    try:
        async with service:
            await transport.publish([_job(1, source="test", event_id=too_long), _job(2, source="test", event_id="ok")])
            await eventually(_when(lambda: service.stats["dead_lettered"] == 1 and service.stats["handled"] == 1))
            [letter] = await transport.dead_letters("worker")
    finally:
        await transport.close()
    assert letter.attempts == 1
    assert service.stats["retried"] == 0
    assert "invalid-attribute: " in letter.reason, letter.reason  # memory broker: from the inbox's own check
    assert f"{LIMIT + 1} characters" in letter.reason
    assert f"the limit is {LIMIT}" in letter.reason
    assert await effect_counts(database_url, "worker") == {2: 1}


async def test_an_over_long_source_is_dead_lettered_at_once(database_url: str, reliable_broker_url: str) -> None:
    await create_tables(database_url)
    transport = await connect(reliable_broker_url)
    service = worker(reliable_broker_url, database_url, retry=FAST)
    try:
        async with service:
            await transport.publish([_job(1, source="s" * (LIMIT + 1), event_id="e-1")])
            await eventually(_when(lambda: service.stats["dead_lettered"] == 1))
            [letter] = await transport.dead_letters("worker")
    finally:
        await transport.close()
    assert letter.attempts == 1
    assert "source" in letter.reason
    assert f"the limit is {LIMIT}" in letter.reason
