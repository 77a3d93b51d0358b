"""The deadline path: with payments down, orders are cancelled when their deadline passes and
their stock is released; when payments comes back and works through the stale events, no
cancelled order stays charged (it is never charged, or charged and refunded), and every
invariant holds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from services.check import read_snapshot
from services.invariants import Snapshot
from services.settings import Settings
from tests.system.harness import Shop, check, load

pytestmark = pytest.mark.slow

WITHOUT_PAYMENTS = ("orders", "inventory", "shipping", "notifications")


def snapshot(settings: Settings, *services: str) -> Snapshot:
    return asyncio.run(read_snapshot(settings, services or WITHOUT_PAYMENTS))


def test_orders_past_their_deadline_are_cancelled_and_compensated(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_port=0, deadline=3.0)
    with Shop(settings, name="first"):
        pass  # a deployed shop: every service ran once, so every consumer group exists on the broker
    with Shop(settings, services=WITHOUT_PAYMENTS) as shop:
        figures = load(settings, shop.api, 40, rate=20, timeout=30)
        assert figures["unsettled"] == 0, figures
        assert set(figures["outcomes"]) == {"cancelled:deadline-exceeded", "cancelled:out-of-stock"}, figures
        latency = figures["latency_ms"]
        assert latency["max"] >= 3000, "a deadline cancellation came early"

        reservations = snapshot(settings, "inventory").reservations
        assert {r.status for r in reservations.values()} <= {"released", "rejected"}, reservations
        assert any(r.status == "released" for r in reservations.values())
        stock = snapshot(settings, "inventory").stock
        assert all(reserved == 0 for _, _, reserved in stock.values()), stock

        with Shop(settings, services=["payments"], name="payments"):
            deadline = time.monotonic() + 60
            while len(snapshot(settings, "payments").charges) < 40:  # one row per order: every cancellation seen
                assert time.monotonic() < deadline, "payments did not catch up with its backlog"
                time.sleep(0.2)
            # only payments runs, so what it publishes waits for orders: a backlog the strict check would report
            result = check(settings, business_only=True)
            assert result.returncode == 0, result.stdout + result.stderr
            charges = snapshot(settings, "payments").charges
            assert {c.status for c in charges.values()} <= {"refunded", "cancelled", "declined"}, charges
            assert any(c.status == "refunded" for c in charges.values()), "the stale reservations were not charged"

        confirmed = httpx.get(f"{shop.api}/orders", params={"status": "confirmed"}).json()
        assert confirmed["count"] == 0, "a cancelled order was confirmed by a late payment"
