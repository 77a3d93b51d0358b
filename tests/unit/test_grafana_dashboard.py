"""The Grafana dashboard in docs/ asks only for metrics that services expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tidings.observe.metrics import Gauges, ServiceMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "tidings-dashboard.json"


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    metrics = ServiceMetrics("svc")
    metrics.declare(["t"])
    metrics.record_delivery("t", "handled", 0.01)
    metrics.record_published(["t"])
    gauges = Gauges(0, 0, 0.0, {"g": 0}, {"g": 0}, {"relay": "running"}, {"relay": 0})
    exposed = {
        line.split("{")[0].split(" ")[0] for line in metrics.render(gauges=gauges).splitlines() if line[:1] != "#"
    }
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"tidings_[a-z_]+", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried <= exposed, f"the dashboard queries metrics no service exposes: {queried - exposed}"
