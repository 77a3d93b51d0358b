"""One timed round of Tidings publish then consume+ack, shared by the broker comparisons."""

from __future__ import annotations

import argparse
import asyncio
import time

from tidings.envelope import Envelope
from tidings.transport import Delivery, connect


async def tidings_round(
    url: str, args: argparse.Namespace, envelopes: list[Envelope], group: str
) -> tuple[float, float]:
    """Publish `envelopes` in batches of `args.batch`, then consume and ack them all with
    `args.prefetch` in flight; returns (publish seconds, consume seconds)."""
    publisher, consumer = await connect(url), await connect(url)
    try:
        subscription = await consumer.subscribe(group, [envelopes[0].type], prefetch=args.prefetch)
        started = time.perf_counter()
        for start in range(0, len(envelopes), args.batch):
            await publisher.publish(envelopes[start : start + args.batch])
        publish_seconds = time.perf_counter() - started

        acks: set[asyncio.Task[None]] = set()

        async def handle(delivery: Delivery) -> None:
            delivery.envelope()  # decode, as a real consumer must
            await delivery.ack()

        started = time.perf_counter()
        received = 0
        async for delivery in subscription:
            task = asyncio.create_task(handle(delivery))
            acks.add(task)
            task.add_done_callback(acks.discard)
            received += 1
            if received == len(envelopes):
                break
        await asyncio.gather(*acks)
        consume_seconds = time.perf_counter() - started
        await subscription.close()
    finally:
        await publisher.close()
        await consumer.close()
    return publish_seconds, consume_seconds
