"""Reading a service's /metrics for the charts: counts, histogram quantiles, outbox and lag."""

from __future__ import annotations

import pytest

from tidings.dashboard.promtext import parse, quantile
from tidings.dashboard.security import Guard, host_name
from tidings.observe.metrics import ServiceMetrics


def test_a_services_metrics_text_is_read() -> None:
    metrics = ServiceMetrics("inventory")
    for seconds in (0.004, 0.02, 0.02, 0.3):
        metrics.record_delivery("shop.order.created", "handled", seconds)
    metrics.record_delivery("shop.order.created", "retried", 0.01)
    metrics.record_delivery("shop.order.created", "dead_lettered")
    scrape = parse(metrics.render(outbox_pending=7, backlog={"inventory": 3}))
    assert (scrape.handled, scrape.retried, scrape.dead_lettered) == (6, 1, 1)
    assert scrape.outbox_pending == 7
    assert scrape.backlog == {"inventory": 3}
    assert scrape.buckets[float("inf")] == 5


def test_quantiles_come_from_the_difference_of_two_scrapes() -> None:
    before = {0.01: 10.0, 0.1: 10.0, 1.0: 10.0, float("inf"): 10.0}
    after = {0.01: 10.0, 0.1: 20.0, 1.0: 30.0, float("inf"): 30.0}  # 10 runs in (0.01, 0.1], 10 in (0.1, 1]
    assert quantile(0.5, before, after) == pytest.approx(0.1)
    assert quantile(0.75, before, after) == pytest.approx(0.55)
    assert quantile(0.5, after, after) is None, "no run between the scrapes"


@pytest.mark.parametrize(
    ("header", "name"), [("127.0.0.1:8080", "127.0.0.1"), ("[::1]:80", "::1"), ("LocalHost", "localhost")]
)
def test_host_names_lose_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_the_guard_refuses_foreign_hosts_and_cross_site_writes() -> None:
    guard = Guard(None, ["127.0.0.1", "localhost"])
    assert guard.refusal("GET", {"host": "127.0.0.1:9"}) is None
    assert guard.refusal("GET", {"host": "evil.example"}) == "host 'evil.example' is not a trusted dashboard host"
    assert guard.refusal("GET", {}) == "host None is not a trusted dashboard host"
    assert guard.refusal("POST", {"host": "localhost", "origin": "http://localhost:3000"}) is None
    assert guard.refusal("POST", {"host": "localhost", "origin": "null"}) == (
        "origin 'null' is not a trusted dashboard origin"
    )
    assert guard.refusal("POST", {"host": "localhost", "sec-fetch-site": "cross-site"}) == (
        "cross-site requests may not change anything"
    )
