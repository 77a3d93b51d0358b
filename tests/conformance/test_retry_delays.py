"""The runtime's retry delays, end to end on every adapter: a `Service` whose handler keeps failing
is handed the event again no earlier than its `RetryPolicy` says, and not much later.

The policy is jitter-free so each delay is known exactly. The lower bound is the contract (a retry
that comes early hammers the dependency that just failed); the upper one catches a delay that was
lost or multiplied, with room for a loaded machine and a broker that polls (`LATE`).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

from tests.conformance.events import Ping, ping
from tests.conformance.harness import Broker
from tests.waiting import eventually
from tidings.context import Context
from tidings.retry import RetryPolicy
from tidings.service import Service

POLICY = RetryPolicy(max_attempts=3, base=0.5, factor=2.0, max_delay=10.0, jitter=0.0)
EARLY = 0.02
"""Clock granularity: brokers time delays with wall clocks, the test with the event loop's."""
LATE = 1.5


async def test_each_retry_comes_after_the_policy_delay_and_not_much_later(broker: Broker) -> None:
    service = Service(f"retrier-{uuid.uuid4().hex[:8]}", broker=broker.url, retry=POLICY)
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    @service.on(Ping)
    async def fail(event: Ping, ctx: Context) -> None:
        attempts.append(loop.time())
        raise ConnectionError("the dependency is down (simulated)")

    async with service:
        publisher = await broker.connect()
        await publisher.publish([ping(1)])
        await eventually(lambda: service.stats["dead_lettered"] == 1, "the event dead-lettered", within=30)
    assert len(attempts) == POLICY.max_attempts
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    wanted = [POLICY.delay(attempt) for attempt in range(1, POLICY.max_attempts)]
    assert wanted == [0.5, 1.0]
    for gap, delay in zip(gaps, wanted, strict=True):
        assert delay - EARLY <= gap <= delay + LATE, f"retried after {gap:.3f}s, the policy says {delay}s"
