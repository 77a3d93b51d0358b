"""One timed round of Tidings publish then consume+ack, shared by the broker comparisons."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterable
from typing import Any

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


def summarise(samples: dict[str, dict[str, list[int]]], baselines: Iterable[str]) -> dict[str, Any]:
    """Medians per runner and kind, the samples behind them, and Tidings relative to each baseline."""
    figures: dict[str, Any] = {
        name: {
            **{f"{kind}_events_per_s": round(statistics.median(values)) for kind, values in kinds.items()},
            "samples": kinds,
        }
        for name, kinds in samples.items()
    }
    figures["tidings_relative"] = {
        name: {
            kind: round(figures["tidings"][f"{kind}_events_per_s"] / figures[name][f"{kind}_events_per_s"], 2)
            for kind in samples["tidings"]
        }
        for name in baselines
    }
    return figures
