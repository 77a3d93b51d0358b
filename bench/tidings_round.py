"""One timed round of Tidings publish then consume+ack, shared by the broker comparisons."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from collector import COLLECTOR  # type: ignore[import-not-found]  # bench/ is the script's folder

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.service import Service
from tidings.transport import Delivery, connect


class BenchEvent(Event, type="bench.event", version=1):
    """The event every broker comparison sends (its `payload` pads it to the run's size)."""

    n: int
    key: str | None
    payload: str

    def subject(self) -> str | None:
        return self.key


class Seconds(float):
    """Wall seconds of a timed phase, carrying the CPU seconds this process spent in it (`cpu`):
    on a shared machine, CPU per event moves far less with other load than events/s. `collector`
    is the part of those the cyclic garbage collector ran, which grows with how many objects
    outlive a few collections (records read ahead and held until settled, for instance)."""

    cpu: float
    collector: float

    def __new__(cls, wall: float, cpu: float, collector: float = 0.0) -> Seconds:
        seconds = super().__new__(cls, wall)
        seconds.cpu, seconds.collector = cpu, collector
        return seconds


class Stopwatch:
    """`Stopwatch()` starts; `stop()` gives the `Seconds` since."""

    def __init__(self) -> None:
        self._wall, self._cpu, self._collector = time.perf_counter(), time.process_time(), COLLECTOR.total

    def stop(self) -> Seconds:
        return Seconds(
            time.perf_counter() - self._wall, time.process_time() - self._cpu, COLLECTOR.total - self._collector
        )


async def tidings_round(
    url: str, args: argparse.Namespace, envelopes: list[Envelope], group: str, *, batched: bool = False
) -> tuple[Seconds, Seconds]:
    """Publish `envelopes` in batches of `args.batch`, then consume and ack them all with
    `args.prefetch` in flight; returns (publish seconds, consume seconds).

    Consuming is a task per delivery, each awaiting its own ack (what `Service` did before ADR
    0028; `service_round` measures a `Service` itself); with `batched`, the subscription's batch
    API instead (Kafka: `batches()` and `ack_all`): a task per batch, which decodes every delivery
    and then waits for one ack, while the next batch is taken (the prefetch window bounds what is
    unsettled)."""
    publisher, consumer = await connect(url), await connect(url)
    try:
        subscription = await consumer.subscribe(group, [envelopes[0].type], prefetch=args.prefetch)
        watch = Stopwatch()
        for start in range(0, len(envelopes), args.batch):
            await publisher.publish(envelopes[start : start + args.batch])
        publish_seconds = watch.stop()

        acks: set[asyncio.Task[None]] = set()

        async def handle(delivery: Delivery) -> None:
            delivery.envelope()  # decode, as a real consumer must
            await delivery.ack()

        async def handle_all(deliveries: list[Delivery]) -> None:
            for delivery in deliveries:
                delivery.envelope()
            await subscription.ack_all(deliveries)  # type: ignore[attr-defined]

        watch = Stopwatch()
        received = 0
        if batched:
            async for deliveries in subscription.batches(args.prefetch):  # type: ignore[attr-defined]
                task = asyncio.create_task(handle_all(deliveries))
                acks.add(task)
                task.add_done_callback(acks.discard)
                received += len(deliveries)
                if received == len(envelopes):
                    break
        else:
            async for delivery in subscription:
                task = asyncio.create_task(handle(delivery))
                acks.add(task)
                task.add_done_callback(acks.discard)
                received += 1
                if received == len(envelopes):
                    break
        await asyncio.gather(*acks)
        consume_seconds = watch.stop()
        await subscription.close()
    finally:
        await publisher.close()
        await consumer.close()
    return publish_seconds, consume_seconds


async def service_round(url: str, args: argparse.Namespace, envelopes: list[Envelope], group: str) -> Seconds:
    """The runtime path users get: a `Service` without a database whose handler does nothing,
    consuming `envelopes` (published before it starts, to the group it declared); returns the
    seconds from its start (the group joined) until every delivery is handled and settled.

    Settled: the clock stops once the handler saw the last event and the consumer's in-flight
    work (its acks and their commit) is done."""
    publisher = await connect(url)
    try:
        declared = await publisher.subscribe(group, [BenchEvent.event_type], prefetch=1)
        await declared.close()  # the group exists: the service starts at the events published next
        for start in range(0, len(envelopes), args.batch):
            await publisher.publish(envelopes[start : start + args.batch])
    finally:
        await publisher.close()

    service = Service(group, broker=url)
    seen = 0
    everything = asyncio.Event()

    @service.on(BenchEvent)
    async def handle(event: BenchEvent, ctx: Context) -> None:
        nonlocal seen
        seen += 1
        if seen == len(envelopes):
            everything.set()

    async with service:
        watch = Stopwatch()
        async with asyncio.timeout(300):
            await everything.wait()
            consumer = service._consumer  # the settling of the last deliveries counts too
            assert consumer is not None
            await consumer.drain(60.0)
        seconds = watch.stop()
        handled = service.stats["handled"]
    assert handled == len(envelopes), f"handled {handled} of {len(envelopes)}"
    return seconds


def summarise(samples: Mapping[str, Mapping[str, Sequence[float]]], baselines: Iterable[str]) -> dict[str, Any]:
    """Medians per runner and kind, the samples behind them, and Tidings relative to each baseline.

    Kinds ending in `_us` are microseconds per event (CPU, or the garbage collector's part of it;
    lower is better); their relative figure is the baseline's over Tidings', so above 1 means
    Tidings is cheaper, like events/s. A kind in which Tidings spent nothing (no collection ran
    in its rounds) has no ratio, and is left out of the relative figures rather than shown as 0."""
    figures: dict[str, Any] = {
        name: {
            **{_figure(kind): round(statistics.median(values), 1) for kind, values in kinds.items()},
            "samples": kinds,
        }
        for name, kinds in samples.items()
    }
    figures["tidings_relative"] = {
        name: {
            kind: round(ratio, 2)
            for kind in samples["tidings"]
            if (ratio := _ratio(figures["tidings"], figures[name], kind)) is not None
        }
        for name in baselines
    }
    return figures


def _figure(kind: str) -> str:
    return kind if kind.endswith("_us") else f"{kind}_events_per_s"


def _ratio(tidings: dict[str, Any], baseline: dict[str, Any], kind: str) -> float | None:
    if kind.endswith("_us"):
        return float(baseline[kind] / tidings[kind]) if tidings[kind] else None
    return float(tidings[_figure(kind)] / baseline[_figure(kind)])
