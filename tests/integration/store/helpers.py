"""Waiting helpers for the store tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tidings.envelope import Envelope
from tidings.transport.base import Subscription


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition") -> None:
    """Wait until `await check()` is true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def receive(
    subscription: Subscription, count: int, *, within: float = 10.0, quiet: float = 0.0
) -> list[Envelope]:
    """Ack and return `count` deliveries, then keep listening for `quiet` seconds to catch extras."""
    received: list[Envelope] = []

    async def collect() -> None:
        async for delivery in subscription:
            received.append(delivery.envelope())
            await delivery.ack()

    task = asyncio.create_task(collect())
    try:
        deadline = time.monotonic() + within
        while len(received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"received {len(received)} of {count} events within {within}s")
            await asyncio.sleep(0.01)
        await asyncio.sleep(quiet)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return received
