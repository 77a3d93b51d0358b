"""The dashboard against a real embedded broker and SQLite databases: the recorder, its API and
the `tidings dashboard` process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration import dashboard_events
from tests.integration.dashboard_events import OrderPlaced, StockReserved
from tests.integration.processes import free_port, terminate, tidings_command
from tidings.context import Context
from tidings.dashboard import GROUP, Recorder
from tidings.dashboard.app import create_app
from tidings.dashboard.config import DashboardConfig
from tidings.envelope import Envelope
from tidings.errors import PermanentError
from tidings.service import Service
from tidings.transport import Transport, connect

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def until(condition: object, within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@dataclass
class Shop:
    orders: Service
    inventory: Service
    recorder: Recorder
    transport: Transport
    api: httpx.AsyncClient


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    recorder = Recorder(broker=broker, database=f"sqlite:///{tmp_path / 'dashboard.db'}", events=dashboard_events)
    orders = Service("orders", broker=broker, database=f"sqlite:///{tmp_path / 'orders.db'}")
    inventory = Service("inventory", broker=broker, database=f"sqlite:///{tmp_path / 'inventory.db'}")

    @inventory.on(OrderPlaced)
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        if event.doomed:
            raise PermanentError(f"order {event.order_id} has no stock")
        ctx.publish(StockReserved(order_id=event.order_id))

    async with recorder, orders, inventory:
        transport = await connect(broker)
        app = create_app(recorder.store, recorder.transport, DashboardConfig(token=TOKEN))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            yield Shop(orders, inventory, recorder, transport, api)
        await transport.close()


async def recorded(shop: Shop, count: int) -> None:
    async def enough() -> bool:
        return len((await shop.api.get("/api/events?limit=1000")).json()) >= count

    await until(enough)


async def test_a_business_transaction_is_recorded_as_a_causal_tree(shop: Shop) -> None:
    async with shop.orders.transaction() as ctx:
        placed = ctx.publish(OrderPlaced(order_id="o-1"))
    await recorded(shop, 2)

    stream = (await shop.api.get("/api/events")).json()
    assert [event["type"] for event in stream] == [StockReserved.event_type, OrderPlaced.event_type]  # newest first
    assert stream[1]["id"] == placed.id
    assert stream[1]["data"] == {"order_id": "o-1", "doomed": False}
    assert stream[1]["source"] == "urn:tidings:orders"
    assert (await shop.api.get(f"/api/events?after={stream[0]['seq']}")).json() == []

    tree = (await shop.api.get(f"/api/transactions/{placed.correlationid}")).json()
    [root] = tree["roots"]
    assert (root["type"], root["subject"]) == (OrderPlaced.event_type, "o-1")
    [child] = root["children"]
    assert (child["type"], child["source"], child["causation"]) == (
        StockReserved.event_type,
        "urn:tidings:inventory",
        placed.id,
    )
    assert child["children"] == []

    flow = (await shop.api.get("/api/flow")).json()
    assert flow == [
        {"source": "urn:tidings:inventory", "type": StockReserved.event_type, "count": 1},
        {"source": "urn:tidings:orders", "type": OrderPlaced.event_type, "count": 1},
    ]


async def test_redeliveries_are_recorded_once_and_a_missing_cause_makes_a_root(shop: Shop) -> None:
    orphan = Envelope.wrap(StockReserved(order_id="o-2"), source="legacy").with_changes(
        causationid="never-recorded", correlationid="corr-2"
    )
    await shop.transport.publish([orphan])
    await shop.transport.publish([orphan])  # the broker delivers it twice
    await recorded(shop, 1)

    async def both_copies_settled() -> bool:
        return (await shop.transport.backlog()).get("tidings-dashboard") == 0

    await until(both_copies_settled)  # the recorder has had the duplicate too
    assert len((await shop.api.get("/api/events")).json()) == 1
    tree = (await shop.api.get("/api/transactions/corr-2")).json()
    assert [root["id"] for root in tree["roots"]] == [orphan.id]


async def test_dead_letters_are_listed_and_replayed(shop: Shop) -> None:
    async with shop.orders.transaction() as ctx:
        ctx.publish(OrderPlaced(order_id="o-3", doomed=True))

    async def dead_lettered() -> bool:
        return len((await shop.api.get("/api/dead-letters/inventory")).json()) == 1

    await until(dead_lettered)
    [letter] = (await shop.api.get("/api/dead-letters/inventory")).json()
    assert letter["reason"] == "PermanentError: order o-3 has no stock"
    assert letter["type"] == OrderPlaced.event_type
    assert letter["attempts"] == 1

    replayed = await shop.api.post("/api/dead-letters/inventory/replay", json={"ids": [letter["id"]]}, headers=ADMIN)
    assert replayed.json() == {"replayed": 1}

    async def refused_again() -> bool:  # the dead-letter row commits before the counter moves
        return shop.inventory.stats["dead_lettered"] == 2 and await dead_lettered()

    await until(refused_again)
    [again] = (await shop.api.get("/api/dead-letters/inventory")).json()
    assert again["reason"] == letter["reason"]

    groups = {row["group"]: row["backlog"] for row in (await shop.api.get("/api/groups")).json()}
    assert {"inventory", GROUP} <= groups.keys()


async def test_bad_requests_get_4xx_with_a_reason(shop: Shop) -> None:
    unknown = await shop.api.get("/api/transactions/nope")
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["detail"]
    too_many = await shop.api.get("/api/events?limit=100000")
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    bad_body = await shop.api.post("/api/dead-letters/inventory/replay", json={"ids": "all"}, headers=ADMIN)
    assert bad_body.status_code == 422
    no_body = await shop.api.post(
        "/api/dead-letters/inventory/replay", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert no_body.status_code == 422, "replaying everything must be said: {'all': true}"
    both = await shop.api.post("/api/dead-letters/inventory/replay", json={"ids": ["x"], "all": True}, headers=ADMIN)
    assert both.status_code == 422
    assert "either" in both.text
    page = await shop.api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Tidings dashboard" in page.text


async def test_the_dashboard_command_records_and_serves_until_sigterm(tmp_path: Path) -> None:
    broker, port = f"sqlite:///{tmp_path / 'broker.db'}", free_port()
    command = ["dashboard", "--broker", broker, "--database", f"sqlite:///{tmp_path / 'dashboard.db'}"]
    command += ["--events", "tests.integration.dashboard_events", "--port", str(port)]
    transport = await connect(broker)
    try:
        async with tidings_command(*command) as child, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def serving() -> bool:
                try:
                    return GROUP in {row["group"] for row in (await client.get("/api/groups")).json()}
                except httpx.TransportError:
                    return False

            await until(serving, within=30)
            envelope = Envelope.wrap(OrderPlaced(order_id="o-4"), source="test")
            await transport.publish([envelope])

            async def stored() -> bool:
                return [event["id"] for event in (await client.get("/api/events")).json()] == [envelope.id]

            await until(stored)
            assert await terminate(child) == 0
    finally:
        await transport.close()
