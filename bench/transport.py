"""Transport throughput: publish (batched) and consume+ack events/s with events of a given size.

    python bench/transport.py --broker sqlite --events 20000 --size 1024 --out bench/results/transport.json

Results are merged into the JSON file under the broker's name, so one file holds every broker's
latest figures: {"sqlite": {...}, "rabbitmq": {...}}. To add a broker, add a function to
`BROKERS` that yields a URL of a fresh, isolated namespace; the measurement is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidings_round import BenchEvent  # a sibling: bench/ is sys.path[0]
from transport_kafka import kafka_baselines, kafka_broker  # a sibling: bench/ is sys.path[0]
from transport_rabbitmq import rabbitmq_baselines, rabbitmq_broker  # a sibling: bench/ is sys.path[0]
from transport_sqlite import sqlite_baselines  # a sibling: bench/ is sys.path[0]

from tidings.envelope import Envelope
from tidings.transport import Delivery, connect


@asynccontextmanager
async def sqlite_broker(args: argparse.Namespace) -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'broker.db'}"


BROKERS: dict[str, Callable[[argparse.Namespace], AbstractAsyncContextManager[str]]] = {
    "sqlite": sqlite_broker,
    "rabbitmq": rabbitmq_broker,
    "kafka": kafka_broker,
}
BASELINES = {"rabbitmq": rabbitmq_baselines, "kafka": kafka_baselines, "sqlite": sqlite_baselines}
"""The same work without Tidings, measured in the same run (see bench/transport_rabbitmq.py); for
SQLite, the single-envelope shapes (bench/transport_sqlite.py)."""


def make_events(count: int, size: int, keys: int) -> list[Envelope]:
    """Envelopes whose JSON data is `size` bytes, built up front so only the transport is timed."""
    envelopes = []
    for n in range(count):
        key = f"key-{n % keys}" if keys else None
        bare = len(BenchEvent(n=n, key=key, payload="").model_dump_json())
        event = BenchEvent(n=n, key=key, payload="x" * max(0, size - bare))
        envelopes.append(Envelope.wrap(event, source="bench"))
    return envelopes


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    envelopes = make_events(args.events, args.size, args.keys)
    publisher, consumer = await connect(url), await connect(url)
    try:
        subscription = await consumer.subscribe("bench", [BenchEvent.event_type], prefetch=args.prefetch)

        started = time.perf_counter()
        for start in range(0, len(envelopes), args.batch):
            await publisher.publish(envelopes[start : start + args.batch])
        publish_seconds = time.perf_counter() - started

        started = time.perf_counter()
        received = 0
        acks: set[asyncio.Task[None]] = set()

        async def handle(delivery: Delivery) -> None:
            delivery.envelope()  # decode, as a real consumer must
            await delivery.ack()

        async for delivery in subscription:  # the prefetch window bounds the acks in flight
            task = asyncio.create_task(handle(delivery))
            acks.add(task)
            task.add_done_callback(acks.discard)
            received += 1
            if received == len(envelopes):
                break
        await asyncio.gather(*acks)
        consume_seconds = time.perf_counter() - started
        backlog = (await consumer.backlog()).get("bench")
        for _ in range(150):  # some brokers report backlog from statistics a few seconds old
            if backlog == 0:
                break
            await asyncio.sleep(0.1)
            backlog = (await consumer.backlog()).get("bench")
        await subscription.close()
    finally:
        await publisher.close()
        await consumer.close()
    assert backlog == 0, f"backlog after the run is {backlog}, not 0"
    return {
        "events": args.events,
        "size_bytes": args.size,
        "batch": args.batch,
        "prefetch": args.prefetch,
        "partition_keys": args.keys,
        "publish_events_per_s": round(args.events / publish_seconds),
        "consume_ack_events_per_s": round(args.events / consume_seconds),
        "publish_seconds": round(publish_seconds, 3),
        "consume_ack_seconds": round(consume_seconds, 3),
    }


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }


def merge(out: Path, broker: str, result: dict[str, Any]) -> None:
    """Replace this broker's entry in `out`, keeping the others'; written atomically."""
    data = json.loads(out.read_text()) if out.exists() else {}
    data[broker] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    temporary.replace(out)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with BROKERS[args.broker](args) as url:
        figures = await measure(args.url or url, args)
        if args.broker in BASELINES:
            envelopes = make_events(args.events, args.size, args.keys)
            figures["baselines"] = await BASELINES[args.broker](args.url or url, args, envelopes)
    return {**figures, "machine": machine(), "timestamp": datetime.now(UTC).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=sorted(BROKERS), default="sqlite")
    parser.add_argument("--url", help="use this broker URL instead of a fresh namespace")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes of event data")
    parser.add_argument("--batch", type=int, default=250, help="envelopes per publish call")
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument("--keys", type=int, default=1000, help="distinct partition keys (0: none)")
    parser.add_argument("--concurrency", type=int, default=32, help="callers of the single-envelope shapes")
    parser.add_argument("--out", type=Path, help="merge the figures into this JSON file")
    parser.add_argument("--key", help="the entry to write in --out (default: the broker's name)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the baseline comparison")
    args = parser.parse_args()

    result = asyncio.run(run(args))
    print(f"{'broker':<10}{'events':>8}{'size':>7}{'publish/s':>12}{'consume+ack/s':>16}")
    print(
        f"{args.broker:<10}{args.events:>8}{args.size:>7}"
        f"{result['publish_events_per_s']:>12,}{result['consume_ack_events_per_s']:>16,}"
    )
    if args.out is not None:
        merge(args.out, args.key or args.broker, result)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
