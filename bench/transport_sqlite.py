"""SQLite broker for `bench/transport.py`: the single-envelope figures group commit is for.

`measure` times batches of `--batch` envelopes and handlers acking concurrently. These are the
other two shapes a service produces:

- `publish_one_per_call`: `--concurrency` tasks, each publishing one envelope per call and
  awaiting it (a relay or HTTP handlers publishing as they go);
- `consume_ack_one_per_ack`: a consumer with `prefetch=--concurrency` whose handlers each
  await the ack of their own single delivery;

and, for reference, the same done by one caller strictly one after another (`sequential_*`:
nothing to share a transaction with, so one commit and one thread hand-off per call). Every
shape runs `--rounds` times in rotated order; medians and samples are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from tidings.envelope import Envelope
from tidings.transport import Delivery, connect

SHAPES = ("concurrent", "sequential")


async def _publish_one_per_call(url: str, envelopes: list[Envelope], concurrency: int) -> float:
    transport = await connect(url)
    try:
        await transport.subscribe("single", [envelopes[0].type])
        queue = iter(envelopes)

        async def publisher() -> None:
            for envelope in queue:  # shared: each envelope is published once, by whoever is free
                await transport.publish([envelope])

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        return time.perf_counter() - started
    finally:
        await transport.close()


async def _consume_ack_one_per_ack(url: str, count: int, concurrency: int) -> float:
    transport = await connect(url)
    try:
        subscription = await transport.subscribe("single", ["bench.event"], prefetch=concurrency)
        acks: set[asyncio.Task[None]] = set()

        async def handle(delivery: Delivery) -> None:
            delivery.envelope()
            await delivery.ack()

        started = time.perf_counter()
        received = 0
        async for delivery in subscription:
            if concurrency == 1:
                await handle(delivery)
            else:
                task = asyncio.create_task(handle(delivery))
                acks.add(task)
                task.add_done_callback(acks.discard)
            received += 1
            if received == count:
                break
        await asyncio.gather(*acks)
        elapsed = time.perf_counter() - started
        await subscription.close()
        assert (await transport.backlog())["single"] == 0
        return elapsed
    finally:
        await transport.close()


async def sqlite_baselines(url: str, args: argparse.Namespace, envelopes: list[Envelope]) -> dict[str, Any]:
    """Events/s publishing one envelope per call and acking one delivery per ack, concurrently
    (`--concurrency` callers) and sequentially, each on a fresh broker file per round."""
    samples: dict[str, dict[str, list[int]]] = {shape: {"publish": [], "consume_ack": []} for shape in SHAPES}
    rounds = max(1, args.rounds)
    for number in range(rounds):
        order = SHAPES[number % 2 :] + SHAPES[: number % 2]
        for shape in order:
            concurrency = args.concurrency if shape == "concurrent" else 1
            events = envelopes if shape == "concurrent" else envelopes[: max(1, len(envelopes) // 4)]
            round_url = url.replace("broker.db", f"single-{shape}-{number}.db")
            seconds = await _publish_one_per_call(round_url, events, concurrency)
            samples[shape]["publish"].append(round(len(events) / seconds))
            seconds = await _consume_ack_one_per_ack(round_url, len(events), concurrency)
            samples[shape]["consume_ack"].append(round(len(events) / seconds))
    return {
        "concurrency": args.concurrency,
        "rounds": rounds,
        **{
            f"{shape}_{kind}_events_per_s": round(statistics.median(values))
            for shape, kinds in samples.items()
            for kind, values in kinds.items()
        },
        "samples": samples,
    }
