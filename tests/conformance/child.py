"""A consumer or publisher that the conformance tests run as a separate OS process and SIGKILL.

    python -m tests.conformance.child consume URL GROUP [PREFETCH]
        subscribes GROUP to pings (holding at most PREFETCH deliveries, 1 by default), prints
        "ready", then "received <event-id> <attempt>" for the first delivery, and blocks forever
        without settling it.
    python -m tests.conformance.child publish URL COUNT
        publishes COUNT pings in one call, prints "published <event-id>..." once `publish`
        returned, and blocks forever.

Output is flushed line by line; the parent kills the process right after reading a line.
"""

from __future__ import annotations

import asyncio
import sys

from tests.conformance.events import PING, ping
from tidings.transport import connect


def say(*words: str) -> None:
    print(*words, flush=True)


async def consume(url: str, group: str, prefetch: int = 1) -> None:
    transport = await connect(url)
    subscription = await transport.subscribe(group, [PING], prefetch=prefetch)
    say("ready")
    async for delivery in subscription:
        say("received", delivery.envelope().id, str(delivery.attempt))
        break
    await asyncio.Event().wait()


async def publish(url: str, count: int) -> None:
    transport = await connect(url)
    envelopes = [ping(n, key=f"durable-{n}") for n in range(count)]
    await transport.publish(envelopes)
    say("published", *(envelope.id for envelope in envelopes))
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    match argv:
        case ["consume", url, group]:
            asyncio.run(consume(url, group))
        case ["consume", url, group, prefetch]:
            asyncio.run(consume(url, group, int(prefetch)))
        case ["publish", url, count]:
            asyncio.run(publish(url, int(count)))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
