"""The shop with every signal switched on by its flags (`shop up --otlp-endpoint URL --log-format
json --metrics-port 0`) on RabbitMQ: the spans reach an OTLP/HTTP receiver (decoded with
`opentelemetry-proto`), one order is one trace across the five services even when the deadline
sweep cancels it, every messaging span carries the conventions' attributes, `promtool check
metrics` passes on every service's `/metrics`, and one correlation id can be followed through the
JSON logs of all five services."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.settings import SERVICES, Settings
from services.supervisor import read_ready_file
from tests.system.harness import Shop
from tests.system.otlp_receiver import OtlpReceiver, Received
from tidings.observe.conventions import REQUIRED

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def until(condition: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        time.sleep(0.1)


def place(api: str, customer: str) -> str:
    response = httpx.post(f"{api}/orders", json={"customer_id": customer, "lines": [{"sku": "SKU-TEA", "quantity": 1}]})
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def status(api: str, order_id: str) -> str:
    return str(httpx.get(f"{api}/orders/{order_id}").json()["status"])


def promtool(text: str, where: str) -> None:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is missing: apt-get install prometheus (scripts/promtool.sh)"
    result = subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"promtool check metrics on {where}:\n{result.stdout}{result.stderr}"


def has_span(spans: list[Received], name: str, service: str) -> bool:
    return any(span.name == name and span.service == service for span in spans)


def test_traces_metrics_and_logs_of_the_shop_follow_one_order(
    tmp_path: Path, rabbitmq_vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")  # export every 0.2 s instead of 5 s
    settings = Settings(data_dir=tmp_path / "data", broker=rabbitmq_vhost, api_port=0, deadline=4.0, metrics_port=0)
    with OtlpReceiver() as receiver:
        shop = Shop(settings)
        shop.args += ["--otlp-endpoint", receiver.endpoint, "--log-format", "json"]
        with shop:
            api = shop.api
            assert "metrics: orders http://127.0.0.1:" in shop.output.read_text()
            paid = place(api, "customer-001")
            until(lambda: status(api, paid) == "confirmed", 30, "the order is confirmed")
            for name in SERVICES:
                info = read_ready_file(settings, name)
                assert info is not None
                promtool(httpx.get(f"{info['metrics']}/metrics").text, name)
                ready = httpx.get(f"{info['metrics']}/health/ready")
                assert ready.status_code == 200, ready.text
            orders_metrics = httpx.get(f"{api}/metrics")
            assert orders_metrics.status_code == 200
            assert 'tidings_messages_handled_total{service="orders"' in orders_metrics.text
            promtool(orders_metrics.text, "the orders API")
            assert httpx.get(f"{api}/health/ready").json()["status"] == "ready"

            payments = shop.pid("payments")
            os.kill(payments, signal.SIGSTOP)  # payments hangs: the order can only time out
            try:
                late = place(api, "customer-002")
                until(lambda: status(api, late) == "cancelled", 30, "the deadline sweep cancels the order")
            finally:
                os.kill(payments, signal.SIGCONT)
            until(
                lambda: (
                    has_span(receiver.spans, "process shop.order.cancelled", "payments")
                    and has_span(receiver.spans, "process shop.order.confirmed", "shipping")
                ),
                30,
                "payments saw the cancellation and shipping the confirmation",
            )
    spans = list(receiver.spans)
    logs = [
        json.loads(line)
        for path in settings.log_dir.glob("*.log")
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert_one_trace_per_order(spans)
    assert_conventions(spans)
    assert_logs_follow_one_order(spans, logs)


def conversations(spans: list[Received]) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = defaultdict(list)
    for span in spans:
        conversation = span.attributes.get("messaging.message.conversation_id")
        if conversation is not None:
            found[conversation].append(span)
    return found


def assert_one_trace_per_order(spans: list[Received]) -> None:
    by_id = {span.span_id: span for span in spans}
    orders = conversations(spans)
    for conversation, members in orders.items():
        assert len({span.trace_id for span in members}) == 1, f"order {conversation} is in several traces"
    confirmed = [m for m in orders.values() if any(s.name == "create shop.order.confirmed" for s in m)]
    assert len(confirmed) == 1
    assert {span.service for span in confirmed[0]} == set(SERVICES)
    [timeout] = [span for span in spans if span.name == "timeout order"]
    created = [span for span in spans if span.name == "create shop.order.created" and span.trace_id == timeout.trace_id]
    assert len(created) == 1, "the timeout continues the trace of the order's creation"
    assert timeout.parent_id in by_id, "the timeout's parent is a span of that trace (the request's or the create span)"
    [cancelled] = [span for span in spans if span.name == "create shop.order.cancelled"]
    assert cancelled.parent_id == timeout.span_id
    in_trace = [span for span in spans if span.trace_id == timeout.trace_id]
    assert {"orders", "inventory", "payments", "notifications"} <= {span.service for span in in_trace}
    assert any(span.name == "process shop.order.cancelled" and span.service == "payments" for span in in_trace)


def assert_conventions(spans: list[Received]) -> None:
    messaging = [span for span in spans if span.kind in ("producer", "consumer", "client")]
    assert messaging
    creates = {span.span_id for span in messaging if span.kind == "producer"}
    sent = {link[1] for span in messaging if span.kind == "client" for link in span.links}
    for span in messaging:
        attributes = span.attributes
        missing = [name for name in REQUIRED if name not in attributes]
        assert not missing, f"{span.name} ({span.service}) lacks {missing}"
        assert attributes["messaging.system"] == "rabbitmq"
        assert attributes["messaging.destination.name"] == "tidings.events"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == 5672
        assert not any(name.startswith("messaging.message.delivery") for name in attributes), span.name
        if span.kind == "consumer":
            assert attributes["messaging.operation.type"] == "process"
            assert attributes["messaging.consumer.group.name"] == span.service
            assert attributes["messaging.rabbitmq.destination.routing_key"] == span.name.removeprefix("process ")
            assert len(span.links) == 1, f"{span.name} is not linked to its creation context"
            assert span.links[0][1] == span.parent_id
            assert span.parent_id in creates, f"{span.name} links to no create span"
    assert creates <= sent, "a create span whose message was never sent (a rolled-back attempt's)"


def assert_logs_follow_one_order(spans: list[Received], logs: list[dict[str, Any]]) -> None:
    [confirmed] = [span for span in spans if span.name == "create shop.order.confirmed"]
    correlation = confirmed.attributes["messaging.message.conversation_id"]
    lines = [
        line for line in logs if line.get("logger") == "tidings.events" and line.get("correlation_id") == correlation
    ]
    assert {line["service"] for line in lines} == set(SERVICES), lines
    for line in lines:
        assert line["outcome"] == "handled"
        assert line["attempt"] >= 1
        assert line["duration_ms"] >= 0
        assert line["event_id"]
        assert line["event_type"].startswith("shop.")
        assert line["trace_id"] == confirmed.trace_id
