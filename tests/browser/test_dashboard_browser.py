"""The dashboard in real headless Chromium against the running shop: find orders by id and read
their journeys, replay a dead letter from the page, watch the charts move under load, filter the
sagas; each view passes axe-core and fits 1280 px and a phone's width."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from services.contracts import LineItem, OrderConfirmed
from tests.browser.conftest import PHONE, TOKEN, Running, axe, fits, shot
from tests.system.harness import ROOT, shop_env
from tidings.envelope import Envelope
from tidings.transport import connect

CONFIRMED = ["shop.order.created", "shop.stock.reserved", "shop.payment.completed", "shop.order.confirmed"]
CANCELLED = ["shop.order.created", "shop.stock.reserved", "shop.payment.failed", "shop.order.cancelled"]


def steps(page: Any) -> list[tuple[str, str]]:
    return [
        (item.get_attribute("data-type"), item.get_attribute("data-source"))
        for item in page.locator("li[data-step]").all()
    ]


def find(page: Any, term: str) -> None:
    page.fill("#q", term)
    page.click("#search button")


def until_journey_has(page: Any, event_type: str) -> None:
    page.locator(f'li[data-step][data-type="{event_type}"]').first.wait_for(timeout=30_000)


def test_orders_are_found_by_their_id_and_show_their_journey(page: Any, shop: Running) -> None:
    confirmed = shop.place("customer-001", "SKU-TEA", 2)
    broke = shop.place("customer-broke-1", "SKU-KETTLE")
    assert shop.settled(confirmed) == "confirmed"
    assert shop.settled(broke) == "cancelled"

    page.goto("/")
    find(page, confirmed)
    page.wait_for_url(f"**/orders/{confirmed}")
    until_journey_has(page, "shop.order.confirmed")
    until_journey_has(page, "shop.shipment.created")  # shipping reacted to the confirmation
    seen = steps(page)
    order = [kind for kind, _ in seen if kind in CONFIRMED]
    assert order == CONFIRMED, seen
    sources = dict(seen)
    assert (sources["shop.order.created"], sources["shop.stock.reserved"]) == ("orders", "inventory")
    assert (sources["shop.payment.completed"], sources["shop.order.confirmed"]) == ("payments", "orders")
    lanes = page.locator(".lanes").get_attribute("data-lanes").split(",")
    assert lanes[:3] == ["orders", "inventory", "payments"], lanes
    reserved = page.locator('li[data-step][data-type="shop.stock.reserved"]')
    assert reserved.get_attribute("data-hop") not in ("", None), "a hop time for each step after the first"
    assert re.search(r"\d+ ms after shop\.order\.created", reserved.locator("dd.hop").inner_text())
    assert "payments (group payments)" in reserved.inner_text(), "who handled the step"
    assert re.search(r"\d+ ms end to end", page.locator("[data-end-to-end]").inner_text())
    assert page.locator('[data-saga="order"] [data-saga-status="confirmed"]').count() == 1
    fits(page)
    axe(page, "journey (confirmed)")
    shot(page, "journey-confirmed")

    find(page, broke)
    page.wait_for_url(f"**/orders/{broke}")
    until_journey_has(page, "shop.order.cancelled")
    until_journey_has(page, "shop.stock.released")  # inventory compensated
    seen = steps(page)
    assert [kind for kind, _ in seen if kind in CANCELLED] == CANCELLED, seen
    failed = page.locator('li[data-step][data-type="shop.payment.failed"]')
    assert "insufficient funds" in failed.inner_text()
    assert page.locator('[data-saga="order"] [data-saga-status="cancelled"]').count() == 1
    axe(page, "journey (cancelled)")
    shot(page, "journey-cancelled")

    journey = shop.dashboard_api(f"/api/orders/{broke}")
    first = journey["steps"][0]
    page.goto(f"/transactions/{journey['correlation']}")  # every view has a URL of its own
    until_journey_has(page, "shop.order.cancelled")
    assert journey["correlation"] in page.locator(".summary").inner_text()
    page.goto(f"/events/{first['id']}")
    until_journey_has(page, "shop.order.cancelled")
    assert page.locator("li.step.focus").get_attribute("data-type") == "shop.order.created"
    page.set_viewport_size(PHONE)
    fits(page)
    shot(page, "journey-phone")


def test_a_dead_letter_is_replayed_from_the_page_and_handled(page: Any, shop: Running) -> None:
    # OrderConfirmed reaching inventory before its reservation exists is refused for good...
    order_id = f"late-{time.monotonic_ns()}"
    event = OrderConfirmed(
        order_id=order_id,
        customer_id="customer-002",
        lines=(LineItem(sku="SKU-MUG", quantity=1, unit_price=Decimal("8.00")),),
        total=Decimal("8.00"),
    )
    envelope = Envelope.wrap(event, source="orders")
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        thread.submit(asyncio.run, _publish(shop.settings.broker_url(), envelope)).result()
    letter = _wait(
        lambda: next(
            (x for x in shop.dashboard_api("/api/dead-letters/inventory") if x["event_id"] == envelope.id), None
        )
    )
    assert "reservation is missing" in letter["reason"]

    page.goto("/groups/inventory")
    row = page.locator(f'tr[data-letter="{envelope.id}"]')
    row.wait_for()
    assert "reservation is missing" in row.inner_text()
    row.locator("summary").click()
    assert order_id in row.locator("pre").last.inner_text(), "the body is shown"
    axe(page, "dead letters")
    shot(page, "dead-letters")
    row.locator("button[data-replay-one]").click()
    page.locator("p.status", has_text="admin token").wait_for()  # 401 without the token: nothing replayed
    assert row.count() == 1

    # ...until an operator puts the missing reservation in place; then the replay is handled
    _reserve(shop, order_id, "SKU-MUG", 1)
    page.fill("#admin-token", TOKEN)
    page.click("#token button")
    page.locator("#mode", has_text="admin token set").wait_for()
    row.locator("button[data-replay-one]").click()
    page.locator("p.status", has_text="Replayed 1 dead letter").wait_for()
    assert _wait(lambda: _reservation(shop, order_id) == "committed" or None), "inventory handled the replayed event"
    page.locator(f'tr[data-letter="{envelope.id}"]').wait_for(state="detached")

    page.goto(f"/events/{envelope.id}")
    page.locator('dd[data-replay="inventory"]').wait_for()
    assert page.locator("dd[data-dead-letter]").count() == 0, "no dead letter left on the way"
    assert "shipping (group shipping)" in page.locator("li.step.focus").inner_text()
    shot(page, "journey-replayed")


def test_the_charts_move_while_load_runs(page: Any, shop: Running) -> None:
    page.goto("/charts")
    page.locator('figure[data-chart="rates-type"]').wait_for()
    for service in ("orders", "inventory", "payments", "shipping", "notifications"):
        page.locator(f'.card[data-service="{service}"] .badge', has_text="up").wait_for()
    before = _samples(page, "lag")
    load = subprocess.Popen(
        [sys.executable, "-m", "services", "load", "--api", shop.api, "--orders", "60", "--rate", "15"],
        cwd=ROOT,
        env=shop_env(shop.settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: float(page.locator('figure[data-chart="rates-type"]').get_attribute("data-total")) > 0 or None)
        _wait(lambda: float(page.locator('figure[data-chart="rates-source"]').get_attribute("data-total")) > 0 or None)
        _wait(lambda: float(page.locator('figure[data-chart="latency"]').get_attribute("data-total")) > 0 or None)
        assert _wait(lambda: _samples(page, "lag") >= before + 3 or None), "the lag chart takes new samples"
        assert page.locator('figure[data-chart="rates-type"] canvas').count() >= 1, "uPlot drew it"
        assert "events/s" in page.locator('[data-latest="rates-type"]').inner_text()
        axe(page, "charts")
        shot(page, "charts")
    finally:
        assert load.wait(timeout=120) == 0


def test_overview_stream_and_sagas_fit_and_pass_axe(page: Any, shop: Running) -> None:
    broke = shop.place("customer-broke-2", "SKU-GRINDER")
    assert shop.settled(broke) == "cancelled"
    ok = shop.place("customer-003", "SKU-SPOON")
    assert shop.settled(ok) == "confirmed"

    page.goto("/sagas")
    page.locator('table[data-table="sagas"] tbody tr[data-saga-phase]').first.wait_for()
    page.click('button[data-phase="compensating"]')
    page.locator('button[data-phase="compensating"][aria-pressed="true"]').wait_for()
    _wait(lambda: page.locator('tr[data-saga-phase="compensating"]').count() > 0 or None)
    phases = {row.get_attribute("data-saga-phase") for row in page.locator("tr[data-saga-phase]").all()}
    assert phases == {"compensating"}, phases
    assert (
        "shop.order.cancelled" in page.locator('table[data-table="sagas"]').inner_text()
        or "shop.stock.released" in page.locator('table[data-table="sagas"]').inner_text()
    )
    page.click('button[data-phase="ended"]')
    _wait(
        lambda: (
            {r.get_attribute("data-saga-phase") for r in page.locator("tr[data-saga-phase]").all()} == {"ended"} or None
        )
    )
    axe(page, "sagas")
    shot(page, "sagas")

    for path, name, ready in (
        ("/", "overview", "section[aria-labelledby=recent-h] tbody a"),
        ("/stream", "stream", 'table[data-table="stream"] tbody a'),
        ("/groups", "groups", 'table[data-table="groups"] tbody a'),
    ):
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(path)
        page.locator(ready).first.wait_for()
        fits(page)
        axe(page, name)
        shot(page, name)
        page.set_viewport_size(PHONE)
        fits(page)
        shot(page, f"{name}-phone")
    page.goto("/stream")
    page.select_option("#f-source", "payments")
    _wait(
        lambda: (
            set(
                page.eval_on_selector_all(
                    'table[data-table="stream"] td[data-label="Published by"]', "cells => cells.map(c => c.textContent)"
                )
            )
            == {"payments"}
            or None
        )
    )


async def _publish(broker: str, envelope: Envelope) -> None:
    transport = await connect(broker)
    try:
        await transport.publish([envelope])
    finally:
        await transport.close()


def _wait(probe: Any, within: float = 45) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def _samples(page: Any, chart: str) -> int:
    return int(page.locator(f'figure[data-chart="{chart}"]').get_attribute("data-samples"))


def _inventory(shop: Running) -> sqlite3.Connection:
    return sqlite3.connect(shop.settings.data_dir / "inventory.db", timeout=30)


def _reserve(shop: Running, order_id: str, sku: str, quantity: int) -> None:
    """What an operator would repair by hand: the reservation the confirmation expected."""
    with _inventory(shop) as db:
        db.execute(
            "INSERT INTO reservations (order_id, status, updated_at) VALUES (?, 'reserved', datetime('now'))",
            (order_id,),
        )
        db.execute(
            "INSERT INTO reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)", (order_id, sku, quantity)
        )
        db.execute("UPDATE stock SET reserved = reserved + ? WHERE sku = ?", (quantity, sku))


def _reservation(shop: Running, order_id: str) -> str | None:
    with _inventory(shop) as db:
        row = db.execute("SELECT status FROM reservations WHERE order_id = ?", (order_id,)).fetchone()
    return None if row is None else str(row[0])
