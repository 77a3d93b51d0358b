"""What tracing costs: the reliable path (handle, write the inbox claim, publish one follow-up
through the outbox and the relay) with the OpenTelemetry SDK off, then on.

    python bench/tracing_overhead.py --events 2000 --out bench/results/tracing_overhead.json

Each round starts a fresh service on the embedded SQLite broker with a SQLite database, publishes
`--events` events to it (not timed), then times until the relay has published every follow-up.
"on" is an SDK `TracerProvider` with a `BatchSpanProcessor` and an exporter that drops the spans
(so the figure is the SDK's and Tidings' span work, not a network's). Reported per mode: events
per second, CPU milliseconds per event (`time.process_time`), and the "on" minus "off" difference.
On a busy machine the end-to-end figures are noisy; `span_work_us_per_event` times the span work
of one event alone (process, create and send spans), off and on, which is steadier.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.observe import tracing
from tidings.observe.conventions import broker_of
from tidings.service import Service
from tidings.transport import connect


class Ordered(Event, type="bench.tracing.ordered", version=1):
    n: int


class Accepted(Event, type="bench.tracing.accepted", version=1):
    n: int


class Dropping(SpanExporter):
    """Takes every span and keeps none."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


async def one_round(events: int, directory: Path) -> dict[str, float]:
    broker = f"sqlite:///{directory / 'broker.db'}"
    service = Service("bench", broker=broker, database=f"sqlite+aiosqlite:///{directory / 'bench.db'}")

    @service.on(Ordered)
    async def accept(event: Ordered, ctx: Context) -> None:
        ctx.publish(Accepted(n=event.n))

    async with await connect(broker) as transport:
        await transport.subscribe("bench", [Ordered.event_type])
        await transport.subscribe("downstream", [Accepted.event_type])  # the follow-ups have somewhere to go
        await transport.publish([Envelope.wrap(Ordered(n=n), source="load") for n in range(events)])
    started, cpu = time.perf_counter(), time.process_time()
    async with service:
        relay, done = service.relay, asyncio.Event()
        assert relay is not None
        relay.on_published = lambda rows, at: done.set() if relay.stats["published"] >= events else None
        if relay.stats["published"] < events:
            await done.wait()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"events_per_s": round(events / seconds, 1), "cpu_ms_per_event": round(1000 * cpu_seconds / events, 3)}


def span_work(events: int, provider: Any) -> float:
    """CPU microseconds per event of Tidings' span work alone: one process span, one create span
    and a one-message send span per event (what the reliable path adds per event)."""
    tracing.use_tracer_provider(provider)
    broker = broker_of("sqlite:///bench.db")
    incoming = Envelope.wrap(Ordered(n=0), source="load")
    started = time.process_time()
    for n in range(events):
        with tracing.processing(incoming, 1, "bench", broker) as span:
            traceparent, created = tracing.creation(Accepted.event_type, "bench", broker, incoming.traceparent)
            envelope = Envelope.wrap(Accepted(n=n), source="bench", traceparent=traceparent)
            tracing.describe_created(created, envelope)
            tracing.end_created([created])
            span.outcome("handled")
        with tracing.sending([envelope], broker):
            pass
    tracing.use_tracer_provider(None)
    return round(1e6 * (time.process_time() - started) / events, 1)


async def run(events: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    figures["span_work_us_per_event"] = {"off": span_work(events * 10, None), "on": span_work(events * 10, provider)}
    provider.shutdown()
    for mode in ("off", "on"):
        exporter = Dropping()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracing.use_tracer_provider(provider if mode == "on" else None)
        with tempfile.TemporaryDirectory() as directory:
            figures[mode] = await one_round(events, Path(directory))
        provider.shutdown()
        tracing.use_tracer_provider(None)
        figures[mode]["spans_exported"] = exporter.spans
    figures["cpu_ms_per_event_added"] = round(figures["on"]["cpu_ms_per_event"] - figures["off"]["cpu_ms_per_event"], 3)
    figures["throughput_change_percent"] = round(
        100 * (figures["on"]["events_per_s"] / figures["off"]["events_per_s"] - 1), 1
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures = {"events": args.events, "python": platform.python_version(), **asyncio.run(run(args.events))}
    print(json.dumps(figures, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
