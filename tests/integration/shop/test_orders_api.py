"""The orders HTTP API in-process (ASGI transport, memory broker, a SQLite file): bad input gets a
4xx with a message and writes nothing; a good order is stored with its `OrderCreated` event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from services.orders.api import MAX_BODY
from tests.integration.shop.support import written
from tidings.service import Service
from tidings.transport import connect

GOOD = {"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 2}, {"sku": "SKU-MUG", "quantity": 1}]}


async def test_a_good_order_is_pending_priced_from_the_catalog_and_readable(
    client: httpx.AsyncClient, orders: Service, broker: str
) -> None:
    probe = await connect(broker)
    subscription = await probe.subscribe("probe", ["shop.order.created"])
    response = await client.post("/orders", json=GOOD)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending"
    assert order["total"] == "17.00"  # 2 x 4.50 + 8.00
    assert response.headers["location"] == f"/orders/{order['order_id']}"
    fetched = (await client.get(f"/orders/{order['order_id']}")).json()
    assert fetched == order
    assert order["lines"] == [
        {"sku": "SKU-MUG", "quantity": 1, "unit_price": "8.00"},
        {"sku": "SKU-TEA", "quantity": 2, "unit_price": "4.50"},
    ]
    listed = (await client.get("/orders", params={"status": "pending", "customer": "customer-001"})).json()
    assert [view["order_id"] for view in listed["orders"]] == [order["order_id"]]
    assert (await client.get("/orders", params={"status": "confirmed"})).json()["count"] == 0
    by_id = (await client.get("/orders", params={"id": [order["order_id"], "nope"]})).json()
    assert by_id["count"] == 1
    assert (await written(orders))[:2] == (1, 2)
    delivery = await asyncio.wait_for(anext(aiter(subscription)), timeout=5)
    envelope = delivery.envelope()
    assert (envelope.type, envelope.subject, envelope.source) == (
        "shop.order.created",
        order["order_id"],
        "urn:tidings:orders",
    )
    await delivery.ack()
    await subscription.close()
    await probe.close()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"customer_id": "c", "lines": [{"sku": "SKU-NOPE", "quantity": 1}]}, 422, "unknown sku(s): SKU-NOPE"),
        ({"customer_id": "c", "lines": [{"sku": "SKU-TEA", "quantity": 0}]}, 422, "greater than 0"),
        ({"customer_id": "c", "lines": [{"sku": "SKU-TEA", "quantity": -3}]}, 422, "greater than 0"),
        ({"customer_id": "c", "lines": [{"sku": "SKU-TEA", "quantity": 1.5}]}, 422, "quantity"),
        ({"customer_id": "c", "lines": []}, 422, "at least 1 item"),
        ({"customer_id": "", "lines": [{"sku": "SKU-TEA", "quantity": 1}]}, 422, "customer_id"),
        ({"lines": [{"sku": "SKU-TEA", "quantity": 1}]}, 422, "customer_id: Field required"),
        ({"customer_id": "c", "lines": [{"sku": "SKU-TEA", "quantity": 1, "price": "0.01"}]}, 422, "price"),
        (
            {"customer_id": "c", "lines": [{"sku": "SKU-TEA", "quantity": 1}, {"sku": "SKU-TEA", "quantity": 1}]},
            422,
            "one line only",
        ),
    ],
)
async def test_invalid_orders_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, orders: Service, body: object, status: int, message: str
) -> None:
    response = await client.post("/orders", json=body)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert await written(orders) == (0, 0, 0)


async def test_malformed_json_is_refused(client: httpx.AsyncClient, orders: Service) -> None:
    response = await client.post("/orders", content=b'{"customer_id": "c", "lines": [', headers=_json())
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]
    assert await written(orders) == (0, 0, 0)


@pytest.mark.parametrize("declare_length", [True, False])
async def test_oversize_body_is_refused_with_413(
    client: httpx.AsyncClient, orders: Service, declare_length: bool
) -> None:
    big = b'{"customer_id": "' + b"x" * (MAX_BODY + 1) + b'", "lines": []}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    content: bytes | AsyncIterator[bytes] = big if declare_length else chunks()
    response = await client.post("/orders", content=content, headers=_json())
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert await written(orders) == (0, 0, 0)


async def test_unknown_order_is_404_and_bad_filters_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/orders/does-not-exist")
    assert response.status_code == 404
    assert "no order" in response.json()["detail"]
    assert (await client.get("/orders", params={"status": "lost"})).status_code == 422
    assert (await client.get("/orders", params={"limit": 0})).status_code == 422


async def test_catalog_and_health(client: httpx.AsyncClient) -> None:
    catalog = (await client.get("/catalog")).json()
    assert {"sku": "SKU-TEA", "unit_price": "4.50"} in catalog
    assert (await client.get("/health")).json()["status"] == "ok"
    assert (await client.get("/openapi.json")).json()["paths"]["/orders"]["post"]


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


async def test_a_wrong_method_is_405_naming_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.delete("/orders")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert (await client.post("/catalog")).headers["allow"] == "GET"


async def test_a_body_that_is_not_utf8_is_malformed_json(client: httpx.AsyncClient, orders: Service) -> None:
    response = await client.post("/orders", content=b'{"customer_id": "\xff\xfe"}', headers=_json())
    assert response.status_code == 422
    assert "not UTF-8" in response.json()["detail"]
    assert await written(orders) == (0, 0, 0)
