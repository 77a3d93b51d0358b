"""A consumer process for the Kafka scale-out test, run as `python -m tests.integration.kafka_worker URL GROUP`.

It subscribes GROUP to pings, prints `ready`, then for every delivery, handled concurrently
(bounded by the prefetch window):

    handled <event-id> <key> <n> <attempt> <epoch-seconds>    when it starts handling
    settling <event-id>                                     as it calls `ack()` (its window slot is freed)
    acked <event-id>                                        once `ack()` returned (the commit covers it)
    unacked <event-id> <error>                              if `ack()` raised

Lines are flushed one by one, so a SIGKILL loses nothing that was printed. The worker exits
when its stdin closes, so it never outlives the test that started it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

from tests.conformance.events import PING, Ping, event_of
from tidings.transport import Delivery, connect

WORK_SECONDS = 0.005
"""Time a handler 'works' before it acks, so a kill always finds work in flight."""


def say(*words: object) -> None:
    print(*words, flush=True)


async def handle(delivery: Delivery) -> None:
    event = event_of(delivery)
    assert isinstance(event, Ping)
    envelope = delivery.envelope()
    say("handled", envelope.id, event.key, event.n, delivery.attempt, f"{time.time():.6f}")
    await asyncio.sleep(WORK_SECONDS)
    say("settling", envelope.id)
    try:
        await delivery.ack()
    except Exception as error:  # a lost partition: the event comes back elsewhere
        say("unacked", envelope.id, type(error).__name__)
        return
    say("acked", envelope.id)


async def consume(url: str, group: str, prefetch: int) -> None:
    transport = await connect(url)
    subscription = await transport.subscribe(group, [PING], prefetch=prefetch)
    say("ready")
    tasks: set[asyncio.Task[None]] = set()
    async for delivery in subscription:
        task = asyncio.create_task(handle(delivery))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def exit_with_parent() -> None:
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=exit_with_parent, daemon=True).start()
    url, group, *rest = sys.argv[1:]
    asyncio.run(consume(url, group, int(rest[0]) if rest else 8))
