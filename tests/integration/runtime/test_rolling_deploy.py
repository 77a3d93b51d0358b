"""A rolling deploy: old and new replicas of one group run side by side, the new ones handling a
new type and a newer version of an old one. An old replica that receives what only the new ones
know hands it back to the group instead of dead-lettering it; once the deploy is done every such
event has been handled by a new replica and nothing was dead-lettered, on every transport."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.conformance.events import Ping, Pong
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event, Registry
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport import connect

QUICK_HANDOVER = RetryPolicy(max_attempts=500, base=0.05, factor=1.5, max_delay=0.3)


class PingV2(Event, type="conformance.ping", version=2):
    """What the new replicas know as `conformance.ping`: version 2, with a field more."""

    n: int
    key: str | None = None
    pad: str = ""
    note: str = ""


async def until(condition: object, what: str, within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"not within {within:g}s: {what}"
        await asyncio.sleep(0.05)


async def test_old_replicas_hand_back_what_only_new_ones_handle(broker_url: str) -> None:
    handled: Counter[str] = Counter()
    old = Service("stock", broker=broker_url, handover=QUICK_HANDOVER)

    @old.on(Ping)
    async def old_ping(event: Ping, ctx: Context) -> None:
        handled["old ping v1"] += 1

    registry = Registry()
    registry.upcaster("conformance.ping", 1)(lambda data: {**data, "note": ""})
    new = Service("stock", broker=broker_url, registry=registry, handover=QUICK_HANDOVER)

    @new.on(PingV2)
    async def new_ping(event: PingV2, ctx: Context) -> None:
        handled["new ping v2"] += 1

    @new.on(Pong)
    async def new_pong(event: Pong, ctx: Context) -> None:
        handled["new pong"] += 1

    publisher = await connect(broker_url)
    await old.start()
    await new.start()
    try:
        batch = [Envelope.wrap(Pong(n=n), source="test") for n in range(20)]
        batch += [Envelope.wrap(PingV2(n=n, note="v2"), source="test") for n in range(20)]
        await publisher.publish(batch)
        # Both replicas run until the old one has handed something back or the new one has taken all
        # (on Kafka the old one owns partitions: what it hands back waits for the deploy to finish).
        await until(
            lambda: old.stats["retried"] > 0 or handled["new pong"] + handled["new ping v2"] == 40, "both replicas busy"
        )
    finally:
        await old.stop()  # the deploy completes: the old replica is gone
    try:
        await until(lambda: handled["new pong"] == 20 and handled["new ping v2"] == 20, "everything handled")
        assert await new.transport.dead_letters("stock") == []
    finally:
        await new.stop()
        await publisher.close()
    assert handled["old ping v1"] == 0
    assert old.stats["dead_lettered"] == 0


async def test_what_no_member_ever_handles_is_dead_lettered_after_the_handover_window(broker_url: str) -> None:
    service = Service("stock", broker=broker_url, handover=RetryPolicy(max_attempts=3, base=0.01, max_delay=0.02))
    handled: list[int] = []

    @service.on(Ping)
    async def on_ping(event: Ping, ctx: Context) -> None:
        handled.append(-event.n)  # never: the only ping is a version this service does not know

    @service.on(Pong)
    async def on_pong(event: Pong, ctx: Context) -> None:
        handled.append(event.n)

    publisher = await connect(broker_url)
    async with service:
        await publisher.publish([Envelope.wrap(PingV2(n=1, note="from the future"), source="test")])
        await publisher.publish([Envelope.wrap(Pong(n=2), source="test")])
        await until(lambda: handled == [2] and service.stats["dead_lettered"] == 1, "the dead letter")
        [letter] = await service.transport.dead_letters("stock")
    await publisher.close()
    assert letter.reason.startswith("unknown-type: 'conformance.ping' version 2 is newer than the known version 1")
    assert letter.reason.endswith("no member of group 'stock' took it in 3 attempts")
