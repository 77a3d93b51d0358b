"""`shop check` beyond the business invariants, on a real embedded broker and SQLite databases:
an accepted order that is missing, a dead letter, a backlog and an unpublished outbox row are
each one violation line and exit status 1; `--business-only` leaves them out."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from services.check import check
from services.cli import main
from services.contracts import LineItem, OrderConfirmed
from services.inventory import service as inventory
from services.load import ACCEPTED_FILE
from services.notifications import service as notifications
from services.orders import service as orders
from services.payments import service as payments
from services.settings import Settings
from services.shipping import service as shipping
from tidings.envelope import Envelope
from tidings.service import Service
from tidings.store import outbox
from tidings.transport import connect

CONFIRMED = OrderConfirmed(
    order_id="o-1",
    customer_id="customer-001",
    lines=(LineItem(sku="SKU-TEA", quantity=1, unit_price=Decimal("4.50")),),
    total=Decimal("4.50"),
)


@pytest.fixture
async def deployed(tmp_path: Path) -> Settings:
    """A shop whose five services ran once (databases seeded, groups declared), then stopped."""
    settings = Settings(data_dir=tmp_path, broker=f"sqlite:///{tmp_path / 'broker.db'}")
    services: list[Service] = [
        orders.build(settings, serve_http=False),
        *(module.build(settings) for module in (inventory, payments, shipping, notifications)),
    ]
    for service in services:
        await service.start()
    for service in services:
        await service.stop()
    return settings


async def test_a_deployed_idle_shop_passes(deployed: Settings) -> None:
    found, snapshot = await check(deployed, wait=0, say=lambda line: None)
    assert found == []
    assert snapshot.accepted is None  # no load run recorded anything here
    assert set(snapshot.backlog) == {"orders", "inventory", "payments", "shipping", "notifications"}
    assert snapshot.outbox == dict.fromkeys(snapshot.outbox, 0)


async def test_what_delivery_left_behind_is_one_violation_each(
    deployed: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (deployed.data_dir / ACCEPTED_FILE).write_text("ghost-order\n")
    broker = await connect(deployed.broker_url())
    await broker.publish([Envelope.wrap(CONFIRMED, source="orders")])
    subscription = await broker.subscribe("shipping", [OrderConfirmed.event_type])
    delivery = await asyncio.wait_for(anext(aiter(subscription)), timeout=10)
    await delivery.dead_letter("a test gave up on it")
    await subscription.close()
    await broker.close()
    service = orders.build(deployed, serve_http=False)  # its relay publishes only what it wrote itself
    await service.start()
    try:
        async with service.store.session() as session, session.begin():
            await outbox.add(session, [Envelope.wrap(CONFIRMED, source="nobody")])
    finally:
        await service.stop()

    found, _ = await check(deployed, wait=0, say=lambda line: None)
    assert "accepted order ghost-order (a 2xx to the load generator) is not in the orders database" in found
    assert "group shipping holds 1 dead letter(s)" in found
    assert "group inventory has a backlog of 1 message(s)" in found
    assert "group notifications has a backlog of 1 message(s)" in found
    assert "service orders has 1 unpublished outbox row(s)" in found
    assert len(found) == 5, found

    shop_check = ["check", "--data-dir", str(deployed.data_dir), "--wait", "0"]
    assert await asyncio.to_thread(main, shop_check) == 1
    out = capsys.readouterr().out
    assert sum(line.startswith("VIOLATION ") for line in out.splitlines()) == 5
    assert "0 of 1 orders accepted by the load generator found" in out
    assert await asyncio.to_thread(main, [*shop_check, "--business-only"]) == 0
