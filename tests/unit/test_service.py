"""The runtime over the in-process transport: routing of results, context, concurrency, drain."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, PermanentError
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport import Transport, connect

_names = itertools.count()


class Pinged(Event, type="test.pinged", version=1):
    n: int

    def subject(self) -> str:
        return f"ping-{self.n}"


class Ponged(Event, type="test.ponged", version=1):
    n: int


@pytest.fixture
def broker() -> str:
    return f"memory://service-{next(_names)}"


@pytest.fixture
async def observer(broker: str) -> AsyncIterator[Transport]:
    transport = await connect(broker)
    await transport.subscribe("observer", ["test.ponged"])
    yield transport
    await transport.close()


async def wait_for(condition: object, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def fast_retry(attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, base=0.01, max_delay=0.05)


async def test_handler_gets_typed_event_and_follow_ups_inherit_correlation(broker: str, observer: Transport) -> None:
    service = Service("pinger", broker=broker)
    seen: list[Pinged] = []

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        seen.append(event)
        ctx.publish(Ponged(n=event.n))

    async with service:
        [sent] = await service.publish(Pinged(n=1))
        await wait_for(lambda: service.stats["handled"] == 1)
    assert seen == [Pinged(n=1)]
    subscription = await observer.subscribe("observer", ["test.ponged"])
    delivery = await anext(aiter(subscription))
    reply = delivery.envelope()
    assert reply.type == "test.ponged"
    assert reply.source == "urn:tidings:pinger"
    assert reply.correlationid == sent.correlationid == sent.id
    assert reply.causationid == sent.id
    await delivery.ack()
    await subscription.close()


async def test_transient_error_is_retried_then_succeeds(broker: str) -> None:
    service = Service("flaky", broker=broker, retry=fast_retry())
    attempts: list[int] = []

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt < 2:
            raise RuntimeError("database briefly unavailable")

    async with service:
        await service.publish(Pinged(n=1))
        await wait_for(lambda: service.stats["handled"] == 1)
    assert attempts == [1, 2]
    assert service.stats["retried"] == 1
    assert await service_dead_letters(broker, "flaky") == []


async def test_permanent_error_dead_letters_at_once_with_reason(broker: str) -> None:
    service = Service("strict", broker=broker, retry=fast_retry())
    calls = 0

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError(f"order {event.n} refers to a deleted customer")

    async with service:
        await service.publish(Pinged(n=4))
        await wait_for(lambda: service.stats["dead_lettered"] == 1)
    assert calls == 1
    [letter] = await service_dead_letters(broker, "strict")
    assert letter.reason == "PermanentError: order 4 refers to a deleted customer"
    assert letter.attempts == 1


@pytest.mark.parametrize("with_database", [False, True], ids=["no-database", "sqlite"])
async def test_a_handler_opening_its_own_unit_of_work_is_dead_lettered_not_hung(
    broker: str, tmp_path: Path, with_database: bool
) -> None:
    """On SQLite a second unit of work would wait forever for the handler's own connection."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'nested.db'}" if with_database else None
    service = Service("nested", broker=broker, database=database, retry=fast_retry())
    handled: list[int] = []

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        if event.n == 1:
            await service.publish(Ponged(n=event.n))  # should have been ctx.publish
        handled.append(event.n)

    async with service:
        await service.publish(Pinged(n=1), Pinged(n=2))
        await wait_for(lambda: service.stats["dead_lettered"] == 1 and handled == [2])
    [letter] = await service_dead_letters(broker, "nested")
    assert letter.reason.startswith("NestedUnitOfWork: a handler of service 'nested' called service.transaction()")
    assert "ctx.publish" in letter.reason
    assert letter.attempts == 1


async def test_exhausted_retries_dead_letter_with_attempt_count(broker: str) -> None:
    service = Service("doomed", broker=broker, retry=fast_retry(attempts=3))

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        raise RuntimeError("still down")

    async with service:
        await service.publish(Pinged(n=1))
        await wait_for(lambda: service.stats["dead_lettered"] == 1)
    [letter] = await service_dead_letters(broker, "doomed")
    assert letter.reason == "gave up after 3 attempts: RuntimeError: still down"
    assert letter.attempts == 3


async def test_data_not_matching_schema_is_dead_lettered_and_next_event_handled(broker: str) -> None:
    service = Service("validator", broker=broker)
    handled: list[int] = []

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        handled.append(event.n)

    async with service:
        good = Envelope.wrap(Pinged(n=2), source="test")
        bad = good.with_changes(id="bad-1", data=b'{"n": "not a number"}')
        await service.transport.publish([bad, good])
        await wait_for(lambda: handled == [2] and service.stats["dead_lettered"] == 1)
    [letter] = await service_dead_letters(broker, "validator")
    assert letter.reason.startswith("schema-mismatch: data does not match 'test.pinged': n:")


async def test_concurrency_is_bounded(broker: str) -> None:
    service = Service("bounded", broker=broker, concurrency=3)
    running = peak = 0

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    async with service:
        await service.publish(*(Pinged(n=n) for n in range(20)))
        await wait_for(lambda: service.stats["handled"] == 20)
    assert peak == 3


async def test_stop_drains_in_flight_handlers(broker: str) -> None:
    service = Service("drainer", broker=broker)
    started = asyncio.Event()
    finished: list[int] = []

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None:
        started.set()
        await asyncio.sleep(0.2)  # sleep-ok: a slow handler is the scenario (stop drains it)
        finished.append(event.n)

    await service.start()
    await service.publish(Pinged(n=9))
    await started.wait()
    await service.stop()
    assert finished == [9]
    assert service.stats["handled"] == 1
    transport = await connect(broker)
    assert (await transport.backlog())["drainer"] == 0


async def test_one_handler_per_event_type_and_session_needs_a_database(broker: str) -> None:
    service = Service("dup", broker=broker)

    @service.on(Pinged)
    async def first(event: Pinged, ctx: Context) -> None: ...

    with pytest.raises(ConfigurationError, match="already handles"):

        @service.on(Pinged)
        async def second(event: Pinged, ctx: Context) -> None: ...

    with pytest.raises(ConfigurationError, match="has no database"):
        _ = Context("dup").session


async def service_dead_letters(broker: str, group: str) -> list:  # type: ignore[type-arg]
    transport = await connect(broker)
    return await transport.dead_letters(group)


async def test_a_failed_start_closes_what_it_opened(broker: str) -> None:
    service = Service("half-started", broker=broker, database="sqlite+aiosqlite:///:memory:")

    @service.on(Pinged)
    async def handle(event: Pinged, ctx: Context) -> None: ...

    with pytest.raises(ConfigurationError):
        await service.start()  # the broker connects, then the in-memory database is refused
    with pytest.raises(ConfigurationError, match="is not started"):
        _ = service.transport
