"""A consumer may stop waiting (a timeout, a shutdown) without losing what it was about to get."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.events import PING, event_id, ping
from tests.conformance.harness import TIMEOUT, Broker
from tidings.transport import Delivery


async def test_cancelled_waits_lose_nothing_and_the_subscription_goes_on(broker: Broker) -> None:
    transport = await broker.connect()
    subscription = await transport.subscribe("g", [PING], prefetch=1)
    iterator = aiter(subscription)
    envelopes = [ping(n) for n in range(40)]
    received: list[Delivery] = []
    cancelled = 0
    try:
        await transport.publish(envelopes)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while len(received) < len(envelopes) and loop.time() < deadline:
            waiting = asyncio.ensure_future(anext(iterator))
            for _ in range(cancelled % 12):  # cancel at many different points of the adapter's work
                await asyncio.sleep(0)
            waiting.cancel()
            try:
                delivery = await waiting
            except asyncio.CancelledError:
                cancelled += 1
                continue
            except StopAsyncIteration:
                pytest.fail(f"the subscription ended after a cancelled wait ({len(received)} received)")
            received.append(delivery)
            await delivery.ack()
    finally:
        await subscription.close()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    assert cancelled > 0
    assert sorted(event_id(d) for d in received) == sorted(e.id for e in envelopes)
    attempts = [d.attempt for d in received]
    assert attempts == [1] * len(envelopes), f"claimed deliveries were dropped and came back: {attempts}"
