"""`Faults`: the failures events bring, injected into a service's transport so a test sees how its
handlers take them. Each one is something production does to every service sooner or later:

- `duplicate`: every event is delivered twice (a publisher retried after a lost confirm). Handlers
  must be idempotent: with a database, the inbox does it; without, the handler must.
- `reorder`: events with different partition keys arrive in another order than they were
  published (per-key order is kept, as every transport promises no more). Handlers must not assume
  an order across keys (aggregates).
- `redeliver_after_success`: a delivery whose handler succeeded comes back once, as if the
  process died after the commit and before the ack. Effects must happen once.
- `republish`: a publish reaches the broker but its caller sees a failure, as when the relay dies
  after the broker confirmed and before it marked the rows sent; the caller publishes again, so
  consumers get duplicates downstream.
- `refuse_publishes`: the broker refuses every publish for this many seconds from the start (an
  outage). Nothing may be lost: the outbox keeps events until the relay gets them out; without a
  database the handler is retried, so its effects must be idempotent.
- `slow_handler`: while a handler runs, its delivery is handed out a second time, concurrently,
  as when a handler outlives its lease (a stuck database call). Effects must still happen once.

`Faults(...).connector()` wraps `tidings.transport.connect`; a `Harness` installs it as the
service's `connector`. Each wrapper delegates everything it does not fault to the real transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

from tidings.envelope import Envelope
from tidings.errors import PublishError
from tidings.transport.base import DeadLetter, Delivery, Subscription, Transport, connect

Connector = Callable[[str], Awaitable[Transport]]
REORDER_WINDOW = 0.02
"""Seconds a reordering subscription waits to gather deliveries it can hand out in another order."""


@dataclass(frozen=True)
class Faults:
    """Which faults to inject; all off by default. See the module docstring for what each means."""

    duplicate: bool = False
    reorder: bool = False
    redeliver_after_success: bool = False
    republish: bool = False
    refuse_publishes: float = 0.0
    slow_handler: bool = False

    def connector(self, connect_to: Connector = connect) -> Connector:
        """A `connect` that wraps every transport it opens in these faults; the outage of
        `refuse_publishes` starts now (when the harness starts the services)."""
        refuse_until = time.monotonic() + self.refuse_publishes

        async def open_faulty(url: str) -> Transport:
            return FaultyTransport(await connect_to(url), self, refuse_until=refuse_until)

        return open_faulty


class FaultyTransport(Transport):
    """`inner` with `faults` injected into its publishes and subscriptions."""

    def __init__(self, inner: Transport, faults: Faults, *, refuse_until: float = 0.0) -> None:
        self.inner = inner
        self.faults = faults
        self.refuse_until = refuse_until
        # the wrapped adapter's promises, per instance (the port declares them per class)
        setattr(self, "capabilities", inner.capabilities)  # noqa: B010
        self._republished: set[str] = set()

    @classmethod
    async def open(cls, url: str) -> FaultyTransport:
        return cls(await connect(url), Faults())

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if time.monotonic() < self.refuse_until:
            raise PublishError("injected fault: the broker refuses publishes for now")
        await self.inner.publish(list(envelopes) * 2 if self.faults.duplicate else envelopes)
        if self.faults.republish and any(envelope.id not in self._republished for envelope in envelopes):
            self._republished.update(envelope.id for envelope in envelopes)
            raise PublishError("injected fault: the broker confirmed, but the caller did not hear it")

    async def subscribe(self, group: str, types: Collection[str], *, prefetch: int = 64) -> Subscription:
        return FaultySubscription(await self.inner.subscribe(group, types, prefetch=prefetch), self.faults)

    async def dead_letters(self, group: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(group, limit=limit)

    async def replay(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self.inner.replay(group, ids)

    async def purge(self, group: str, ids: Collection[str] | None = None) -> int:
        return await self.inner.purge(group, ids)

    async def backlog(self) -> dict[str, int]:
        return await self.inner.backlog()

    async def close(self) -> None:
        await self.inner.close()


class FaultySubscription(Subscription):
    """Hands out the inner subscription's deliveries, with the subscription-side faults."""

    def __init__(self, inner: Subscription, faults: Faults) -> None:
        self.inner = inner
        self.faults = faults
        self._redelivered: set[str] = set()
        self._ready: list[Delivery] = []
        self._source = aiter(inner)

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._deliveries()

    async def _deliveries(self) -> AsyncIterator[Delivery]:
        while True:
            if not self._ready:
                try:
                    await self._fill()
                except StopAsyncIteration:
                    return
            delivery = self._ready.pop(0)
            handed = FaultyDelivery(delivery, self)
            yield handed
            if self.faults.slow_handler and delivery.attempt == 1:
                yield Twin(delivery)  # handed out again while the first copy is still being handled

    async def _fill(self) -> None:
        self._ready.append(await anext(self._source))
        if not self.faults.reorder:
            return
        deadline = time.monotonic() + REORDER_WINDOW
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    self._ready.append(await anext(self._source))
            except TimeoutError:
                break
        self._ready = _reordered(self._ready)

    async def close(self) -> None:
        for delivery in self._ready:  # gathered but never handed out: back to the group
            await delivery.retry(0)
        self._ready.clear()
        await self.inner.close()


class FaultyDelivery(Delivery):
    """The inner delivery; its first successful ack per event becomes a redelivery when asked."""

    def __init__(self, inner: Delivery, subscription: FaultySubscription) -> None:
        super().__init__(inner.group, inner.attempt)
        self.inner = inner
        self._subscription = subscription

    def envelope(self) -> Envelope:
        return self.inner.envelope()

    async def _ack(self) -> None:
        if self._subscription.faults.redeliver_after_success:
            key = _identity(self.inner)
            if key not in self._subscription._redelivered:
                self._subscription._redelivered.add(key)
                await self.inner.retry(0)  # as if the process died between commit and ack
                return
        await self.inner.ack()

    async def _retry(self, after: float) -> None:
        await self.inner.retry(after)

    async def _dead_letter(self, reason: str) -> None:
        await self.inner.dead_letter(reason)


class Twin(Delivery):
    """A second, concurrent copy of a delivery (its lease ran out under a slow handler); settling
    it does nothing, since the broker knows only the first copy."""

    def __init__(self, original: Delivery) -> None:
        super().__init__(original.group, original.attempt + 1)
        self._original = original

    def envelope(self) -> Envelope:
        return self._original.envelope()

    async def _ack(self) -> None:
        return None

    async def _retry(self, after: float) -> None:
        return None

    async def _dead_letter(self, reason: str) -> None:
        return None


def _identity(delivery: Delivery) -> str:
    try:
        return delivery.envelope().id
    except Exception:  # malformed: faults apply to what can be read
        return str(id(delivery))


def _key(delivery: Delivery) -> str | None:
    try:
        return delivery.envelope().partitionkey
    except Exception:
        return None


def _reordered(deliveries: list[Delivery]) -> list[Delivery]:
    """The keys' turns reversed, each key's own deliveries still in their order (keyless ones each
    count as a key of their own)."""
    by_key: dict[object, list[Delivery]] = {}
    for delivery in deliveries:
        key = _key(delivery)
        by_key.setdefault(key if key is not None else object(), []).append(delivery)
    return [delivery for key in reversed(list(by_key)) for delivery in by_key[key]]
