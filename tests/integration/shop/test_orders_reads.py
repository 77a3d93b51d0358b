"""The orders API's reads on SQLite go through a read-only store of their own, so a `GET` does not
queue behind the service's writing connection; the catalog's prices are cached and a new sku is
found once it is seeded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import insert

from services.orders.api import create_app
from services.orders.models import CatalogItem
from services.orders.reads import Reads
from services.settings import Settings
from tidings.service import Service

GOOD = {"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 2}]}


@pytest.fixture
async def reads(orders: Service) -> AsyncIterator[Reads]:
    reads = Reads(orders)
    await reads.open()
    try:
        yield reads
    finally:
        await reads.close()


@pytest.fixture
async def reading_client(orders: Service, settings: Settings, reads: Reads) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(orders, settings, reads))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        yield client


async def test_a_get_answers_while_the_writing_connection_is_held(
    reading_client: httpx.AsyncClient, orders: Service
) -> None:
    placed = (await reading_client.post("/orders", json=GOOD)).json()
    async with orders.store.session() as session, session.begin():  # the only writing connection, held
        await session.execute(insert(CatalogItem), {"sku": "SKU-HELD", "unit_price": Decimal("1.00")})
        fetched = await asyncio.wait_for(reading_client.get(f"/orders/{placed['order_id']}"), 5)
        listed = await asyncio.wait_for(reading_client.get("/orders", params={"id": [placed["order_id"]]}), 5)
        catalog = await asyncio.wait_for(reading_client.get("/catalog"), 5)
    assert fetched.json() == placed
    assert [view["order_id"] for view in listed.json()["orders"]] == [placed["order_id"]]
    assert "SKU-HELD" not in {entry["sku"] for entry in catalog.json()}  # the snapshot is of committed rows


async def test_a_sku_added_to_the_catalog_after_the_first_order_is_priced(
    reading_client: httpx.AsyncClient, orders: Service
) -> None:
    assert (await reading_client.post("/orders", json=GOOD)).status_code == 201  # the prices are cached now
    new = {"customer_id": "customer-001", "lines": [{"sku": "SKU-NEW", "quantity": 3}]}
    assert (await reading_client.post("/orders", json=new)).status_code == 422
    async with orders.store.session() as session, session.begin():
        await session.execute(insert(CatalogItem), {"sku": "SKU-NEW", "unit_price": Decimal("2.50")})
    response = await reading_client.post("/orders", json=new)
    assert response.status_code == 201, response.text
    assert response.json()["total"] == "7.50"
