"""`Consumer`: takes deliveries from a subscription, at most `concurrency` at a time, one task each.

`run()` is a supervised background task: it returns when the subscription ends and is cancelled
to stop taking deliveries; `drain(grace)` then waits for the ones in flight. A delivery that
does not finish within the drain timeout is left unsettled and comes back after its lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from tidings.transport.base import Delivery, Subscription


class Consumer:
    """Feeds `process` the deliveries of `subscription` with bounded concurrency."""

    def __init__(
        self, subscription: Subscription, process: Callable[[Delivery], Coroutine[Any, Any, None]], *, concurrency: int
    ) -> None:
        self.subscription = subscription
        self._process = process
        self._concurrency = concurrency
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def run(self) -> None:
        slots = asyncio.Semaphore(self._concurrency)
        deliveries = aiter(self.subscription)
        while True:
            await slots.acquire()
            try:
                delivery = await anext(deliveries)
            except StopAsyncIteration:
                slots.release()
                return
            task = asyncio.create_task(self._process(delivery))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            task.add_done_callback(lambda _: slots.release())

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for the deliveries in flight to be settled, then cancel the
        rest and wait for them to unwind, so that nothing they use is closed under them; their
        deliveries stay unsettled and come back (at-least-once)."""
        if not self._inflight:
            return
        _, late = await asyncio.wait(set(self._inflight), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
