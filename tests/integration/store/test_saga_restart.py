"""A saga's compensations survive a restart of its service: the timeout sweep of a fresh process,
whose registry never saw the compensation's event class, still rebuilds and publishes it."""

from __future__ import annotations

import asyncio

from tidings.envelope import Envelope
from tidings.events import Event
from tidings.saga import Saga, SagaContext, handles, instance, starts
from tidings.service import Service
from tidings.transport import connect


class Booked(Event, type="test.saga-restart.booked", version=1):
    trip: str


class SeatHeld(Event, type="test.saga-restart.seat-held", version=1):
    trip: str


class FreeSeat(Event, type="test.saga-restart.free-seat", version=1):
    """Only ever named in `on_compensation`: no service handles or declares it."""

    trip: str
    seat: int


class Trip(Saga, name="trip"):
    trip: str = ""

    @starts(Booked)
    async def booked(self, event: Booked, ctx: SagaContext) -> None:
        self.trip = event.trip
        ctx.set_timeout(0.5)

    @handles(SeatHeld)
    async def held(self, event: SeatHeld, ctx: SagaContext) -> None:
        ctx.on_compensation(FreeSeat(trip=self.trip, seat=12))


def trips(broker: str, database: str) -> Service:
    service = Service("trips", broker=broker, database=database)
    service.saga(Trip)
    return service


async def test_a_compensation_recorded_before_a_restart_is_published_after_it(
    database_url: str, reliable_broker_url: str
) -> None:
    broker = reliable_broker_url
    transport = await connect(broker)
    freed = await transport.subscribe("observer", [FreeSeat.event_type])
    first = trips(broker, database_url)
    async with first:
        await transport.publish([Envelope.wrap(Booked(trip="t-1"), source="test", correlationid="trip-1")])
        await transport.publish([Envelope.wrap(SeatHeld(trip="t-1"), source="test", correlationid="trip-1")])
        deadline = asyncio.get_running_loop().time() + 10
        while first.stats["handled"] < 2:
            assert asyncio.get_running_loop().time() < deadline, first.stats
            await asyncio.sleep(0.02)
    second = trips(broker, database_url)  # a new process: a registry that never saw FreeSeat
    assert FreeSeat.event_type not in second.registry.types()
    async with second:
        async with asyncio.timeout(10):
            delivery = await anext(aiter(freed))
        await delivery.ack()
        async with second.store.session() as session, session.begin():
            status, _ = await instance(session, Trip, "trip-1") or ("missing", Trip())
    await transport.close()
    assert delivery.envelope().data == b'{"trip":"t-1","seat":12}'
    assert delivery.envelope().correlationid == "trip-1"
    assert status == "timed-out"
