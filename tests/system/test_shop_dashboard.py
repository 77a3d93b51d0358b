"""The shop with its dashboard process: every order's events are recorded and each order reads
back as one causal tree, while the invariants still hold."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.settings import SERVICES, Settings
from services.supervisor import read_ready_file
from tests.system.harness import Shop, check, load

pytestmark = pytest.mark.slow


def types_in(node: dict[str, Any]) -> set[str]:
    return {node["type"]}.union(*(types_in(child) for child in node["children"]))


def test_the_dashboard_records_each_order_as_one_causal_tree(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_port=0, dashboard_port=0)
    with Shop(settings, services=[*SERVICES, "dashboard"]) as shop:
        assert "dashboard http://" in shop.output.read_text()
        figures = load(settings, shop.api, 40, rate=40)
        assert figures["settled"] == 40
        info = read_ready_file(settings, "dashboard")
        assert info is not None
        with httpx.Client(base_url=info["dashboard"], timeout=10) as dashboard:
            deadline = time.monotonic() + 30
            while True:  # the dashboard consumes like any service: it may trail the load a little
                flow = {(edge["source"], edge["type"]): edge["count"] for edge in dashboard.get("/api/flow").json()}
                if (
                    flow.get(("urn:tidings:orders", "shop.order.created")) == 40
                    and sum(
                        count
                        for (source, kind), count in flow.items()
                        if kind in {"shop.order.confirmed", "shop.order.cancelled"}
                    )
                    == 40
                ):
                    break
                assert time.monotonic() < deadline, f"the dashboard recorded {flow}"
                time.sleep(0.2)
            events = dashboard.get("/api/events", params={"limit": 1000}).json()
            created = [event for event in events if event["type"] == "shop.order.created"]
            assert len(created) == 40
            for event in created[:5]:
                tree = dashboard.get(f"/api/transactions/{event['correlation']}").json()
                [root] = tree["roots"]
                assert root["id"] == event["id"], "the order's first event is the root of its transaction"
                reached = types_in(root)
                assert reached & {"shop.stock.reserved", "shop.stock.reservation-failed"}, reached
                assert reached & {"shop.order.confirmed", "shop.order.cancelled"}, reached
            groups = {row["group"]: row["backlog"] for row in dashboard.get("/api/groups").json()}
            assert {*SERVICES, "dashboard"} <= groups.keys()
        result = check(settings)
        assert result.returncode == 0, result.stdout + result.stderr
