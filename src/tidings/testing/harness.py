"""`Harness`: run services in a test, send them events, and wait for what they publish.

    async with Harness(inventory, faults=Faults(duplicate=True)) as harness:
        await harness.send(OrderCreated(order_id="o-1", ...))
        [reserved] = await harness.published(StockReserved, subject="o-1")
        await harness.settled()                       # nothing left in flight anywhere
        assert await harness.count(StockReserved) == 1

The harness gives the services a private broker (`memory://` by default, or the `broker` URL you
pass: a SQLite file, a RabbitMQ vhost, a Kafka prefix of your test's own) and records every event
of the types the services handle or declare with `publishes`, whoever publishes them. Waiting is
always for a condition, with a deadline (`within` seconds), never a fixed sleep; a wait that runs
out raises `AssertionError` saying what was awaited and what was seen. The services' own settings
are put back on exit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from tidings.envelope import Envelope
from tidings.events import Event
from tidings.service import Service
from tidings.testing.faults import Faults
from tidings.transport.base import Delivery, Transport, connect

E = TypeVar("E", bound=Event)
GROUP = "tidings-harness"
SOURCE = "urn:tidings:testing"
POLL = 0.01


class Harness:
    """Runs `services` on one private broker with optional `faults`; see the module docstring."""

    def __init__(self, *services: Service, broker: str | None = None, faults: Faults | None = None) -> None:
        self.services = services
        self.broker = broker or f"memory://tidings-harness-{uuid.uuid4().hex}"
        self.faults = faults
        self.recorded: list[Envelope] = []
        self._saved: list[tuple[str, Any]] = []
        self._transport: Transport | None = None
        self._recorder: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self._transport = await connect(self.broker)
        subscription = await self._transport.subscribe(GROUP, sorted(self._types()), prefetch=256)
        self._recorder = asyncio.create_task(self._record(aiter(subscription)), name="tidings-harness-recorder")
        started: list[Service] = []
        try:
            for service in self.services:
                self._saved.append((service.broker_url, service.connector))
                service.broker_url = self.broker
                if self.faults is not None:
                    service.connector = self.faults.connector()
                await service.start()
                started.append(service)
        except BaseException:
            await self._close(started)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close(list(self.services))

    async def send(self, *events: Event, correlationid: str | None = None) -> list[Envelope]:
        """Publish `events` as an outside producer would (faults apply to the services, not here)."""
        envelopes = [Envelope.wrap(event, source=SOURCE, correlationid=correlationid) for event in events]
        await self._broker().publish(envelopes)
        return envelopes

    def events(self, event_class: type[E], *, subject: str | None = None) -> list[E]:
        """The events of `event_class` recorded so far (every copy: duplicates show), in arrival order."""
        return [
            event_class.model_validate_json(envelope.data)
            for envelope in self.recorded
            if envelope.type == event_class.event_type and (subject is None or envelope.subject == subject)
        ]

    async def published(
        self,
        event_class: type[E],
        *,
        subject: str | None = None,
        where: Callable[[E], bool] | None = None,
        count: int = 1,
        within: float = 5.0,
    ) -> list[E]:
        """Wait until `count` events of `event_class` (with `subject`, matching `where`) were recorded."""

        def found() -> list[E]:
            return [event for event in self.events(event_class, subject=subject) if where is None or where(event)]

        await self.until(lambda: len(found()) >= count, f"{count} {event_class.event_type}", within=within)
        return found()

    async def count(self, event_class: type[Event], *, subject: str | None = None) -> int:
        """How many events of `event_class` were recorded, once the services are settled."""
        await self.settled()
        return len(self.events(event_class, subject=subject))

    async def settled(self, *, within: float = 10.0) -> None:
        """Wait until no group has anything left to handle and no relay has anything left to send."""

        async def quiet() -> bool:
            backlog = await self._broker().backlog()
            if any(count for count in backlog.values()):
                return False
            for service in self.services:
                if service.relay is not None and await _pending(service):
                    return False
            return True

        deadline = asyncio.get_running_loop().time() + within
        while not await quiet():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not settled within {within:g}s: backlog {await self._broker().backlog()}")
            await asyncio.sleep(POLL)

    async def until(self, condition: Callable[[], bool], what: str, *, within: float = 5.0) -> None:
        """Wait until `condition()` holds; `AssertionError` naming `what` after `within` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                seen = sorted({envelope.type for envelope in self.recorded})
                raise AssertionError(f"not within {within:g}s: {what}; recorded types so far: {seen}")
            await asyncio.sleep(POLL)

    def _types(self) -> set[str]:
        types: set[str] = set()
        for service in self.services:
            types.update(service.registry.types(), service.handled_types, service.published_types)
        return types

    def _broker(self) -> Transport:
        if self._transport is None:
            raise RuntimeError("use the harness as `async with Harness(...) as harness:`")
        return self._transport

    async def _record(self, deliveries: Any) -> None:
        delivery: Delivery
        async for delivery in deliveries:
            self.recorded.append(delivery.envelope())
            await delivery.ack()

    async def _close(self, started: list[Service]) -> None:
        for service in reversed(started):
            await service.stop()
        for service, (broker, connector) in zip(self.services, self._saved, strict=False):
            service.broker_url, service.connector = broker, connector
        self._saved.clear()
        if self._recorder is not None:
            self._recorder.cancel()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None


async def _pending(service: Service) -> int:
    from tidings.store import outbox

    async with service.store.session() as session, session.begin():
        return await outbox.pending_count(session, service.name)
