"""Spans that describe what happened, on the embedded broker with SQLite databases: a handler
attempt that rolled back leaves no create span, and a saga timed out by the sweeper continues the
trace of the transaction that began it (both reproduced before they were fixed, ADR 0020)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tidings import saga
from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.observe import tracing
from tidings.retry import RetryPolicy
from tidings.saga import Saga, SagaContext
from tidings.service import Service


class Requested(Event, type="test.spans.requested", version=1):
    request_id: str


class Answered(Event, type="test.spans.answered", version=1):
    request_id: str


class Expired(Event, type="test.spans.expired", version=1):
    request_id: str


class Waiting(Saga, name="waiting", begun=True):
    request_id: str = ""

    @saga.handles(Answered)
    async def answered(self, event: Answered, ctx: SagaContext) -> None:
        ctx.finish("answered")

    async def timed_out(self, ctx: SagaContext) -> None:
        ctx.publish(Expired(request_id=self.request_id))
        ctx.finish("expired")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


async def until(condition: object, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


async def test_an_attempt_that_rolled_back_leaves_no_create_span(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    worker = Service("worker", broker=broker, database=f"sqlite:///{tmp_path / 'w.db'}", retry=RetryPolicy(base=0.01))
    listener = Service("listener", broker=broker, database=f"sqlite:///{tmp_path / 'l.db'}")
    attempts: list[int] = []
    received: list[Envelope] = []

    @worker.on(Requested)
    async def answer(event: Requested, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        ctx.publish(Answered(request_id=event.request_id))  # published, then the attempt fails
        if len(attempts) == 1:
            raise ConnectionError("the database blinked after the publish")

    @listener.on(Answered)
    async def listen(event: Answered, ctx: Context) -> None:
        assert ctx.incoming is not None
        received.append(ctx.incoming)

    async with worker, listener:
        await worker.publish(Requested(request_id="r-1"))
        await until(lambda: len(received) == 1)
        await until(lambda: len(named(spans, f"process {Answered.event_type}")) == 1)

    assert attempts == [1, 2]
    [create] = named(spans, f"create {Answered.event_type}")  # the first attempt's rolled back with it
    assert received[0].traceparent is not None
    assert received[0].traceparent.split("-")[2] == format(create.context.span_id, "016x")
    assert create.attributes is not None
    assert create.attributes["messaging.message.id"] == received[0].id
    process = [s for s in named(spans, f"process {Requested.event_type}") if s.context.span_id == create.parent.span_id]  # type: ignore[union-attr]
    assert process, "the create span is a child of the attempt that committed"
    assert process[0].attributes is not None
    assert process[0].attributes["tidings.delivery.attempt"] == 2


async def test_a_saga_timed_out_by_the_sweeper_continues_the_transaction_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    desk = Service("desk", broker=broker, database=f"sqlite:///{tmp_path / 'desk.db'}")
    desk.saga(Waiting)
    archive = Service("archive", broker=broker, database=f"sqlite:///{tmp_path / 'archive.db'}")
    expired: list[Envelope] = []

    @archive.on(Expired)
    async def keep(event: Expired, ctx: Context) -> None:
        assert ctx.incoming is not None
        expired.append(ctx.incoming)

    async with desk, archive:
        async with desk.transaction() as ctx:  # the business transaction begins: no span is current
            ctx.publish(Requested(request_id="r-2"))
            await saga.begin(ctx, Waiting(request_id="r-2"), correlation="r-2", times_out_in=0.2)
        await until(lambda: len(expired) == 1)
        await until(lambda: len(named(spans, f"process {Expired.event_type}")) == 1)

    [created] = named(spans, f"create {Requested.event_type}")
    [timeout] = named(spans, "timeout waiting")
    assert timeout.kind is trace.SpanKind.INTERNAL
    assert timeout.parent is not None
    assert timeout.parent.span_id == created.context.span_id
    [create_expired] = named(spans, f"create {Expired.event_type}")
    assert create_expired.parent is not None
    assert create_expired.parent.span_id == timeout.context.span_id
    [process_expired] = named(spans, f"process {Expired.event_type}")
    trace_id = created.context.trace_id
    assert {timeout.context.trace_id, create_expired.context.trace_id, process_expired.context.trace_id} == {trace_id}


@pytest.mark.kafka
async def test_kafka_process_spans_name_the_topic_partition_offset_and_key(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    from tests.integration.kafka_support import fresh_prefix, kafka_url

    async with fresh_prefix("tidings-spans") as prefix:
        url = kafka_url(prefix)
        worker = Service("kafka-spans", broker=url)
        seen: list[Envelope] = []

        @worker.on(Answered)
        async def note(event: Answered, ctx: Context) -> None:
            assert ctx.incoming is not None
            seen.append(ctx.incoming)

        async with worker:
            await worker.publish(Answered(request_id="k-1"))
            await until(lambda: len(named(spans, f"process {Answered.event_type}")) == 1, within=60)

    [process] = named(spans, f"process {Answered.event_type}")
    attributes = dict(process.attributes or {})
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.destination.name"] == f"{prefix}events"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == 9092
    assert attributes["messaging.consumer.group.name"] == "kafka-spans"
    assert isinstance(attributes["messaging.destination.partition.id"], str)
    assert isinstance(attributes["messaging.kafka.offset"], int)
    assert attributes.get("messaging.kafka.message.key") == seen[0].partitionkey
