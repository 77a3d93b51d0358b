"""ADR-001's pika publisher, run byte for byte against the shop on the real RabbitMQ, once while
the shop is down and once while it runs (docs/how-to/legacy-publisher.md).

The sample's code is `tests/integration/adr001_sample_publisher.txt`, a copy of the "Sample
Code" block of `ADR-001-event-driven-architecture.md` (kept in `../shared/` beside the
checkout; `tests/integration/test_rabbitmq_interop.py` compares the two when it is there). It
connects to `localhost` and pika's default vhost: the only thing the bootstrap changes is that
default, pointing it at the test's own vhost, so nothing is shared with other tests.

The documented outcome: order 123 becomes shop order `legacy-123` (250.00, one `SKU-LEGACY`
line, paid by `customer-legacy`), confirmed by the order saga and shipped, visible in the
orders API and as one business transaction in the dashboard; the same message again is the
same order (nothing new happens, the queue is drained, the invariants hold).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

from services.settings import SERVICES, Settings
from services.supervisor import read_ready_file
from tests.system.harness import MANAGEMENT, Shop, check

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

SAMPLE = Path(__file__).resolve().parents[1] / "integration" / "adr001_sample_publisher.txt"
BOOTSTRAP = (
    "import pika, runpy, sys; pika.ConnectionParameters.DEFAULT_VIRTUAL_HOST = sys.argv[1]; "
    "runpy.run_path(sys.argv[2], run_name='__main__')"
)


def run_adr_sample(vhost: str) -> None:
    """The ADR's publisher, unchanged, in a process of its own (as its users run it)."""
    done = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, vhost, str(SAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "✓ Event published successfully" in done.stdout


def wait_for(probe: Any, check: Any, *, within: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {within}s"
        time.sleep(0.2)


def queue(vhost: str, name: str) -> dict[str, Any]:
    with httpx.Client(base_url=MANAGEMENT, auth=("guest", "guest"), timeout=10) as api:
        response = api.get(f"/queues/{quote(vhost, safe='')}/{name}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found


def types_in(node: dict[str, Any]) -> set[str]:
    return {node["type"]}.union(*(types_in(child) for child in node["children"]))


def test_the_adr_publisher_places_an_order_sent_while_the_shop_is_down_and_while_it_runs(
    tmp_path: Path, rabbitmq_vhost: str
) -> None:
    vhost = unquote(urlsplit(rabbitmq_vhost).path[1:])
    settings = Settings(data_dir=tmp_path / "data", api_port=0, dashboard_port=0, broker=rabbitmq_vhost)
    services = [*SERVICES, "dashboard"]
    with Shop(settings, services=services, name="first-run"):
        pass  # deployed once: its queues exist, as they do for a shop that is merely down

    run_adr_sample(vhost)  # while the shop is down
    assert queue(vhost, "order_events")["durable"] is True
    with Shop(settings, services=services) as shop, httpx.Client(base_url=shop.api, timeout=10) as api:
        order = wait_for(
            lambda: api.get("/orders/legacy-123").json(),
            lambda body: body.get("status") == "confirmed",
            what="order legacy-123",
        )
        assert order["customer_id"] == "customer-legacy"
        assert order["total"] == "250.00"
        assert [(line["sku"], line["quantity"], line["unit_price"]) for line in order["lines"]] == [
            ("SKU-LEGACY", 1, "250.00")
        ]

        info = read_ready_file(settings, "dashboard")
        assert info is not None
        with httpx.Client(base_url=info["dashboard"], timeout=10) as dashboard:
            placed = wait_for(
                lambda: [e for e in dashboard.get("/api/events", params={"limit": 500}).json() if e["subject"]],
                lambda events: any(e["type"] == "shop.shipment.created" for e in events),
                what="the dashboard's events",
            )
            (root,) = [event for event in placed if event["type"] == "shop.order.legacy-placed"]
            assert root["source"] == "urn:legacy:order-system"
            tree = dashboard.get(f"/api/transactions/{root['correlation']}").json()
            (top,) = tree["roots"]
            assert top["id"] == root["id"], "the legacy message starts the order's business transaction"
            assert {"shop.order.created", "shop.payment.completed", "shop.order.confirmed"} <= types_in(top)

        acked_before = queue(vhost, "order_events").get("message_stats", {}).get("ack", 0)
        run_adr_sample(vhost)  # while the shop runs: the same bytes, so the same order
        wait_for(
            lambda: queue(vhost, "order_events"),
            lambda q: q.get("messages") == 0 and q.get("message_stats", {}).get("ack", 0) > acked_before,
            what="order_events consumed",
        )
        orders = api.get("/orders", params={"customer": "customer-legacy"}).json()
        assert [row["order_id"] for row in orders["orders"]] == ["legacy-123"]
        result = check(settings)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all invariants hold" in result.stdout
