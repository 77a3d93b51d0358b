"""Sagas on SQLite and PostgreSQL: steps, compensation newest first, timeouts, events that
arrive before the start or after the end, and concurrent events for one instance."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import Field
from sqlalchemy import text

from tests.waiting import eventually, eventually_async
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event
from tidings.retry import RetryPolicy
from tidings.saga import Saga, SagaContext, handles, instance, starts
from tidings.service import Service
from tidings.transport import Delivery, Transport, connect

_names = itertools.count()  # memory brokers of the tests that need no other broker


class Placed(Event, type="test.saga.placed", version=1):
    order_id: str
    timeout: float | None = None


class Reserved(Event, type="test.saga.reserved", version=1):
    order_id: str


class Charged(Event, type="test.saga.charged", version=1):
    order_id: str


class ChargeFailed(Event, type="test.saga.charge-failed", version=1):
    order_id: str


class Shipped(Event, type="test.saga.shipped", version=1):
    order_id: str


class Noted(Event, type="test.saga.noted", version=1):
    order_id: str


class Reserve(Event, type="test.saga.reserve", version=1):
    order_id: str


class Release(Event, type="test.saga.release", version=1):
    order_id: str


class Refund(Event, type="test.saga.refund", version=1):
    order_id: str
    amount: int


OUTGOING = [Reserve.event_type, Release.event_type, Refund.event_type]


class Fulfilment(Saga, name="fulfilment"):
    order_id: str = ""
    steps: list[str] = Field(default_factory=list)
    notes: int = 0

    @starts(Placed)
    async def placed(self, event: Placed, ctx: SagaContext) -> None:
        self.order_id = event.order_id
        self.steps.append("placed")
        ctx.publish(Reserve(order_id=event.order_id))
        ctx.set_timeout(event.timeout)

    @handles(Reserved)
    async def reserved(self, event: Reserved, ctx: SagaContext) -> None:
        self.steps.append("reserved")
        ctx.on_compensation(Release(order_id=self.order_id))

    @handles(Charged)
    async def charged(self, event: Charged, ctx: SagaContext) -> None:
        self.steps.append("charged")
        ctx.on_compensation(Refund(order_id=self.order_id, amount=1250))

    @handles(ChargeFailed)
    async def charge_failed(self, event: ChargeFailed, ctx: SagaContext) -> None:
        self.steps.append("failed")
        ctx.compensate()

    @handles(Shipped)
    async def shipped(self, event: Shipped, ctx: SagaContext) -> None:
        self.steps.append("shipped")
        ctx.finish()

    @handles(Noted)
    async def noted(self, event: Noted, ctx: SagaContext) -> None:
        self.notes += 1  # read-modify-write: concurrent events must not lose an update


class Harness:
    def __init__(self, service: Service, transport: Transport, outgoing: list[Envelope]) -> None:
        self.service, self.transport, self.outgoing = service, transport, outgoing

    async def send(self, event: Event, correlation: str) -> None:
        await self.transport.publish([Envelope.wrap(event, source="test", correlationid=correlation)])

    async def state(self, correlation: str) -> tuple[str, Fulfilment] | None:
        async with self.service.store.session() as session, session.begin():
            return await instance(session, Fulfilment, correlation)

    async def until(self, correlation: str, check: object, within: float = 10.0) -> Fulfilment:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found = await self.state(correlation)
            if found is not None and check(*found):  # type: ignore[operator]
                return found[1]
            assert asyncio.get_running_loop().time() < deadline, f"saga {correlation} is {found}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def shop(database_url: str, reliable_broker_url: str) -> AsyncIterator[Harness]:
    broker = reliable_broker_url
    transport = await connect(broker)
    observer = await transport.subscribe("observer", OUTGOING)
    outgoing: list[Envelope] = []

    async def observe() -> None:
        delivery: Delivery
        async for delivery in observer:
            outgoing.append(delivery.envelope())
            await delivery.ack()

    watcher = asyncio.create_task(observe())
    service = Service(
        "orders", broker=broker, database=database_url, concurrency=8, retry=RetryPolicy(max_attempts=20, base=0.02)
    )
    service.saga(Fulfilment)
    async with service:
        yield Harness(service, transport, outgoing)
    watcher.cancel()
    await transport.close()


async def test_compensations_run_newest_first_and_late_events_change_nothing(shop: Harness) -> None:
    await shop.send(Placed(order_id="o-1"), "order-1")
    await shop.until("order-1", lambda status, saga: saga.steps == ["placed"])
    await shop.send(Reserved(order_id="o-1"), "order-1")
    await shop.until("order-1", lambda status, saga: saga.steps[-1] == "reserved")
    await shop.send(Charged(order_id="o-1"), "order-1")
    await shop.until("order-1", lambda status, saga: saga.steps[-1] == "charged")
    await shop.send(ChargeFailed(order_id="o-1"), "order-1")
    saga = await shop.until("order-1", lambda status, saga: status == "compensated")
    assert saga.steps == ["placed", "reserved", "charged", "failed"]

    handled = shop.service.stats["handled"]
    await shop.send(Shipped(order_id="o-1"), "order-1")  # too late: the saga is over
    await eventually(lambda: shop.service.stats["handled"] > handled, "the late event acked as handled")
    assert shop.service.stats["handled"] == handled + 1  # acked as handled, but no step ran
    status, saga = await shop.state("order-1") or ("", Fulfilment())
    assert (status, saga.steps) == ("compensated", ["placed", "reserved", "charged", "failed"])

    await eventually(lambda: len(shop.outgoing) >= 3, "the relay published the saga's three commands")
    sent = [(envelope.type, envelope.correlationid) for envelope in shop.outgoing]
    assert sent == [
        (Reserve.event_type, "order-1"),
        (Refund.event_type, "order-1"),  # the newest compensation first
        (Release.event_type, "order-1"),
    ]
    refund = next(envelope for envelope in shop.outgoing if envelope.type == Refund.event_type)
    assert refund.data == b'{"order_id":"o-1","amount":1250}'


async def test_a_finished_saga_keeps_its_state(shop: Harness) -> None:
    for event in (Placed(order_id="o-2"), Reserved(order_id="o-2"), Shipped(order_id="o-2")):
        before = len((await shop.state("order-2") or ("", Fulfilment()))[1].steps)
        await shop.send(event, "order-2")
        await shop.until("order-2", lambda status, saga, n=before: len(saga.steps) == n + 1)
    status, saga = await shop.state("order-2") or ("", Fulfilment())
    assert status == "completed"
    assert saga.order_id == "o-2"
    assert Release.event_type not in {envelope.type for envelope in shop.outgoing}, "completed: nothing undone"


async def test_the_deadline_compensates_what_was_done(shop: Harness) -> None:
    await shop.send(Placed(order_id="o-3", timeout=0.3), "order-3")
    await shop.until("order-3", lambda status, saga: saga.steps == ["placed"])
    await shop.send(Reserved(order_id="o-3"), "order-3")
    saga = await shop.until("order-3", lambda status, saga: status == "timed-out", within=10)
    assert saga.steps == ["placed", "reserved"]
    await eventually(
        lambda: Release.event_type in {envelope.type for envelope in shop.outgoing}, "the relay published Release"
    )
    released = [envelope for envelope in shop.outgoing if envelope.type == Release.event_type]
    assert len(released) == 1
    assert released[0].correlationid == "order-3"


async def test_an_event_before_the_start_is_retried_until_the_saga_exists(shop: Harness) -> None:
    await shop.send(Reserved(order_id="o-4"), "order-4")
    await eventually(lambda: shop.service.stats["retried"] >= 1, "the early event retried")
    assert await shop.state("order-4") is None
    await shop.send(Placed(order_id="o-4"), "order-4")
    saga = await shop.until("order-4", lambda status, saga: len(saga.steps) == 2)
    assert saga.steps == ["placed", "reserved"]


async def test_concurrent_events_for_one_instance_lose_no_update(shop: Harness) -> None:
    await shop.send(Placed(order_id="o-5"), "order-5")
    await shop.until("order-5", lambda status, saga: saga.steps == ["placed"])
    await shop.transport.publish(
        [Envelope.wrap(Noted(order_id="o-5"), source="test", correlationid="order-5") for _ in range(24)]
    )
    saga = await shop.until("order-5", lambda status, saga: saga.notes == 24, within=20)
    assert saga.notes == 24


def test_a_saga_is_checked_when_it_is_declared() -> None:
    with pytest.raises(ConfigurationError, match="no @starts step"):

        class Endless(Saga, name="endless"):
            @handles(Reserved)
            async def reserved(self, event: Reserved, ctx: SagaContext) -> None: ...

    with pytest.raises(ConfigurationError, match="needs a name"):

        class Nameless(Saga):
            @starts(Placed)
            async def placed(self, event: Placed, ctx: SagaContext) -> None: ...

    with pytest.raises(ConfigurationError, match="keeps its state in the service's database"):
        Service("stateless", broker="memory://x").saga(Fulfilment)


class Opened(Event, type="test.saga.opened", version=1):
    pass


class Amended(Event, type="test.saga.amended", version=1):
    pass


class Expiring(Saga, name="expiring", timeout=30.0):
    """Times out by its class's `timeout`, not by `set_timeout`; its step keeps the deadline it saw."""

    deadline: float | None = None

    @starts(Opened)
    async def opened(self, event: Opened, ctx: SagaContext) -> None:
        self.deadline = ctx.deadline

    @handles(Amended)
    async def amended(self, event: Amended, ctx: SagaContext) -> None: ...


async def test_the_class_timeout_sets_the_deadline_of_a_new_instance(database_url: str) -> None:
    broker = f"memory://saga-{next(_names)}"
    service = Service("expiry", broker=broker, database=database_url)
    service.saga(Expiring)
    async with service:
        before = time.time()
        await service.transport.publish([Envelope.wrap(Opened(), source="test", correlationid="x-1")])

        async def started() -> tuple[str, Expiring] | None:
            async with service.store.session() as session, session.begin():
                return await instance(session, Expiring, "x-1")

        found = await eventually_async(started, lambda found: found is not None, "the saga instance")
        after = time.time()
    assert found is not None
    status, saga = found
    assert status == "running"
    assert saga.deadline is not None
    assert before + 30.0 <= saga.deadline <= after + 30.0


async def test_an_event_for_a_saga_that_never_started_is_dead_lettered_naming_the_instance(database_url: str) -> None:
    """Once its retries run out, the dead letter says which saga instance was missing, so an
    operator can tell a lost starting event from a wrong correlation id."""
    broker = f"memory://saga-{next(_names)}"
    service = Service("early", broker=broker, database=database_url, retry=RetryPolicy(max_attempts=1))
    service.saga(Expiring)
    async with service:
        await service.transport.publish([Envelope.wrap(Amended(), source="test", correlationid="x-9")])
        letters = await eventually_async(
            lambda: service.transport.dead_letters("early"), lambda found: len(found) == 1, "the dead letter"
        )
    assert "SagaNotStarted" in letters[0].reason
    assert "'expiring' x-9" in letters[0].reason
    assert Amended.event_type in letters[0].reason


async def test_a_correlation_id_longer_than_the_store_holds_is_dead_lettered_at_once_with_its_length(
    database_url: str,
) -> None:
    """`tidings_sagas.correlation` holds 64 characters: a longer one is refused before the store
    is touched, on every database alike (SQLite would store it; PostgreSQL would fail the
    transaction with a driver error and retry it to no avail)."""
    broker = f"memory://saga-{next(_names)}"
    service = Service("long", broker=broker, database=database_url, retry=RetryPolicy(max_attempts=3))
    service.saga(Expiring)
    async with service:
        await service.transport.publish([Envelope.wrap(Opened(), source="test", correlationid="c" * 65)])
        letters = await eventually_async(
            lambda: service.transport.dead_letters("long"), lambda found: len(found) == 1, "the dead letter"
        )
    assert letters[0].attempts == 1
    assert letters[0].reason == "PermanentError: saga 'expiring': the correlation id is 65 characters, the limit is 64"


class Booked(Event, type="test.saga.booked", version=1):
    order_id: str


FAIL_AFTER_WRITING: set[str] = set()
"""Order ids whose `Booking` step raises once, after its Core write."""


class Booking(Saga, name="booking"):
    order_id: str = ""

    @starts(Booked)
    async def booked(self, event: Booked, ctx: SagaContext) -> None:
        self.order_id = event.order_id
        await ctx.connection.execute(text("INSERT INTO bookings (order_id) VALUES (:id)"), {"id": event.order_id})
        if event.order_id in FAIL_AFTER_WRITING:
            FAIL_AFTER_WRITING.discard(event.order_id)
            raise RuntimeError("the step fails after its write")


async def test_a_step_s_core_statements_commit_and_roll_back_with_the_saga_state(database_url: str) -> None:
    broker = f"memory://saga-connection-{next(_names)}"
    service = Service("bookings", broker=broker, database=database_url, retry=RetryPolicy(max_attempts=5, base=0.01))
    service.saga(Booking)
    transport = await connect(broker)
    FAIL_AFTER_WRITING.add("order-2")
    try:
        async with service:
            async with service.store.engine.begin() as connection:
                await connection.execute(text("CREATE TABLE bookings (order_id VARCHAR(64))"))  # no key: see twice
            for order_id in ("order-1", "order-2"):
                event = Booked(order_id=order_id)
                await transport.publish([Envelope.wrap(event, source="test", correlationid=f"booking-{order_id}")])

            async def sagas() -> list[str]:
                found = []
                async with service.store.session() as session, session.begin():
                    for order_id in ("order-1", "order-2"):
                        saga = await instance(session, Booking, f"booking-{order_id}")
                        found += [saga[1].order_id] if saga is not None else []
                return found

            await eventually_async(sagas, lambda found: found == ["order-1", "order-2"], "the sagas begun")
            async with service.store.engine.connect() as connection:
                rows = await connection.execute(text("SELECT order_id FROM bookings ORDER BY order_id"))
                assert [order_id for (order_id,) in rows] == ["order-1", "order-2"]  # order-2's first row rolled back
            assert service.stats["retried"] == 1
    finally:
        await transport.close()
