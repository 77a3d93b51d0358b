"""Observability of a running service: /metrics over real HTTP, and one trace per business
transaction across services, on the embedded broker with SQLite databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import PermanentError
from tidings.events import Event
from tidings.observe import tracing
from tidings.observe.conventions import broker_of
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport import connect


class OrderPlaced(Event, type="test.observe.order.placed", version=1):
    order_id: str
    fail: str = ""

    def subject(self) -> str:
        return self.order_id


class StockReserved(Event, type="test.observe.stock.reserved", version=1):
    order_id: str


async def until(condition: object, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def inventory(broker: str, database: str, **options: object) -> Service:
    service = Service(
        "inventory", broker=broker, database=database, retry=RetryPolicy(max_attempts=3, base=0.01), **options
    )  # type: ignore[arg-type]
    attempts: dict[str, int] = {}

    @service.on(OrderPlaced)
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        attempts[event.order_id] = attempts.get(event.order_id, 0) + 1
        if event.fail == "once" and attempts[event.order_id] == 1:
            raise ConnectionError("stock database blinked")
        if event.fail == "always":
            raise PermanentError("no such product")
        ctx.publish(StockReserved(order_id=event.order_id))

    return service


def metric_values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_endpoint_counts_what_the_service_did(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    service = inventory(broker, f"sqlite:///{tmp_path / 'inventory.db'}", metrics_port=0)
    transport = await connect(broker)
    await transport.subscribe("shipping", [StockReserved.event_type])  # a downstream group
    async with service:
        url = f"http://127.0.0.1:{service.metrics_port}"
        await transport.publish(
            [
                Envelope.wrap(OrderPlaced(order_id="o-1"), source="orders"),
                Envelope.wrap(OrderPlaced(order_id="o-2", fail="once"), source="orders"),
                Envelope.wrap(OrderPlaced(order_id="o-3", fail="always"), source="orders"),
                Envelope.wrap(OrderPlaced(order_id="o-4"), source="orders").with_changes(data=b'{"order_id": 4}'),
            ]
        )
        await until(lambda: service.stats["handled"] == 2 and service.stats["dead_lettered"] == 2)
        await until(lambda: service.metrics.published[StockReserved.event_type] == 2)
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/metrics")
            health = await client.get("/health")
    await transport.close()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = metric_values(response.text)
    placed = {("service", "inventory"), ("type", OrderPlaced.event_type)}

    def handled(outcome: str, labels: set[tuple[str, str]] = placed) -> float:
        return values[("tidings_messages_handled_total", frozenset({*labels, ("outcome", outcome)}))]

    assert handled("handled") == 2
    assert handled("retried") == 1
    assert handled("dead_lettered") == 1
    assert handled("dead_lettered", {("service", "inventory"), ("type", "(malformed)")}) == 1
    assert values[("tidings_handler_duration_seconds_count", frozenset(placed))] == 4  # 2 handled, 1 retry, 1 dead
    reserved = frozenset({("service", "inventory"), ("type", StockReserved.event_type)})
    assert values[("tidings_messages_published_total", reserved)] == 2
    assert values[("tidings_outbox_pending", frozenset({("service", "inventory")}))] == 0
    assert values[("tidings_outbox_parked", frozenset({("service", "inventory")}))] == 0
    assert values[("tidings_consumer_backlog", frozenset({("service", "inventory"), ("group", "inventory")}))] == 0
    assert health.status_code == 200
    assert health.json()["status"] == "up"
    assert health.json()["stats"]["handled"] == 2


async def raw_request(port: int, request: bytes) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


async def test_bad_requests_get_a_4xx_with_a_reason_and_the_endpoint_keeps_serving(tmp_path: Path) -> None:
    service = inventory(f"sqlite:///{tmp_path / 'broker.db'}", f"sqlite:///{tmp_path / 'db.db'}", metrics_port=0)
    async with service:
        port = service.metrics_port
        assert port
        status, body = await raw_request(port, b"hello\r\n\r\n")
        assert (status, body) == (400, "expected a request line like 'GET /metrics HTTP/1.1'\n")
        status, body = await raw_request(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert (status, body) == (405, "/metrics answers GET only\n")
        status, body = await raw_request(port, b"GET /admin HTTP/1.1\r\n\r\n")
        assert status == 404
        assert "/metrics" in body
        status, _ = await raw_request(port, b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n")
        assert status == 431
        status, body = await raw_request(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        assert json.loads(body)["service"] == "inventory"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


def named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


async def test_one_business_transaction_is_one_trace_across_services(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    orders = Service("orders", broker=broker, database=f"sqlite:///{tmp_path / 'orders.db'}")
    stock = inventory(broker, f"sqlite:///{tmp_path / 'inventory.db'}")
    shipping = Service("shipping", broker=broker, database=f"sqlite:///{tmp_path / 'shipping.db'}")
    received: list[Envelope] = []

    @shipping.on(StockReserved)
    async def ship(event: StockReserved, ctx: Context) -> None:
        assert ctx.incoming is not None
        received.append(ctx.incoming)

    root_tracer = TracerProvider().get_tracer("test")  # a separate provider: only the root span's context matters
    async with orders, stock, shipping:
        with root_tracer.start_as_current_span("POST /orders") as request:
            async with orders.transaction() as ctx:
                ctx.publish(OrderPlaced(order_id="o-9", fail="once"))
        await until(lambda: len(received) == 1)
        await until(lambda: len(named(spans.get_finished_spans(), f"process {StockReserved.event_type}")) == 1)

    finished = spans.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    in_trace = {span.context.trace_id for span in finished if span.kind is not trace.SpanKind.CLIENT}
    assert in_trace == {trace_id}, "every create and process span is in the request's trace"

    [create_placed] = named(finished, f"create {OrderPlaced.event_type}")
    assert create_placed.parent is not None
    assert create_placed.parent.span_id == request.get_span_context().span_id
    assert create_placed.kind is trace.SpanKind.PRODUCER

    failed, handled = sorted(named(finished, f"process {OrderPlaced.event_type}"), key=lambda s: s.start_time or 0)
    for process in (failed, handled):
        assert process.kind is trace.SpanKind.CONSUMER
        assert process.parent is not None
        assert process.parent.span_id == create_placed.context.span_id
        assert process.attributes is not None
        assert process.attributes["messaging.consumer.group.name"] == "inventory"
        assert process.attributes["messaging.system"] == "tidings.sqlite"
        assert process.attributes["messaging.operation.name"] == "process"
        assert process.attributes["messaging.destination.name"] == "messages"
        assert [link.context.span_id for link in process.links] == [create_placed.context.span_id]
    assert failed.attributes is not None
    assert handled.attributes is not None
    assert failed.attributes["tidings.outcome"] == "retried"
    assert failed.attributes["error.type"] == "ConnectionError"
    assert failed.attributes["tidings.delivery.attempt"] == 1
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert handled.attributes["tidings.outcome"] == "handled"
    assert handled.attributes["tidings.delivery.attempt"] == 2
    assert handled.status.status_code is trace.StatusCode.UNSET

    creates_reserved = named(finished, f"create {StockReserved.event_type}")  # the failed attempt's rolled back
    published = [c for c in creates_reserved if c.parent is not None and c.parent.span_id == handled.context.span_id]
    assert len(published) == 1
    [process_reserved] = named(finished, f"process {StockReserved.event_type}")
    assert process_reserved.parent is not None
    assert process_reserved.parent.span_id == published[0].context.span_id
    assert received[0].traceparent is not None
    assert received[0].traceparent.split("-")[2] == format(published[0].context.span_id, "016x")

    sends = [span for span in finished if span.kind is trace.SpanKind.CLIENT]
    linked = {link.context.span_id for send in sends for link in send.links}
    assert {create_placed.context.span_id, published[0].context.span_id} <= linked
    assert all(send.attributes and send.attributes["messaging.batch.message_count"] >= 1 for send in sends)


async def test_without_opentelemetry_the_traceparent_is_passed_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "trace", None)
    inherited = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    broker = broker_of("sqlite:///broker.db")
    assert tracing.creation("t", "s", broker, inherited) == (inherited, None)
    with tracing.processing(None, 1, "g", broker) as span:
        span.outcome("handled")  # a no-op, without error
    with tracing.sending([], broker):
        pass
