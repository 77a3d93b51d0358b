"""User code that raises while a delivery is decoded (an upcaster) does not leave the delivery
unsettled with its key blocked: it is retried like a handler's error, then dead-lettered with a
reason that names the error's class (not its text, which may quote the payload)."""

from __future__ import annotations

import asyncio
import itertools

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event, Registry
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport import connect

_names = itertools.count()


class Parcel(Event, type="test.decoding.parcel", version=2):
    weight_grams: int


class Before(Event, type="test.decoding.parcel", version=1):
    weight_kg: str  # version 1 carried the weight as text


async def test_an_upcaster_that_raises_dead_letters_the_delivery() -> None:
    broker = f"memory://decoding-{next(_names)}"
    registry = Registry()

    @registry.upcaster("test.decoding.parcel", 1)
    def grams(data: dict[str, object]) -> dict[str, object]:
        return {"weight_grams": int(float(str(data["weight_kg"])) * 1000)}  # raises on "heavy"

    service = Service("depot", broker=broker, registry=registry, retry=RetryPolicy(max_attempts=2, base=0.01))
    handled: list[int] = []

    @service.on(Parcel)
    async def handle(event: Parcel, ctx: Context) -> None:
        handled.append(event.weight_grams)

    transport = await connect(broker)
    async with service:
        await transport.publish([Envelope.wrap(Before(weight_kg="heavy"), source="test")])
        await transport.publish([Envelope.wrap(Before(weight_kg="1.5"), source="test")])
        deadline = asyncio.get_running_loop().time() + 5
        while handled != [1500] or service.stats["dead_lettered"] != 1:
            assert asyncio.get_running_loop().time() < deadline, (handled, service.stats)
            await asyncio.sleep(0.01)
        [letter] = await transport.dead_letters("depot")
    await transport.close()
    assert letter.reason == "gave up after 2 attempts: decoding raised ValueError"
    assert letter.attempts == 2
    assert service.stats["retried"] == 1
