"""`POST /orders` with an `Idempotency-Key` (IETF httpapi draft semantics): the same key and body
replay the first response and place nothing new; the same key with another body is a 422; a key
whose request is still running is a 409; a key is kept for the retention window, then free."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from services.kit.db import utcnow
from services.orders.api import create_app
from services.orders.idempotency import IdempotencyKeys, purge_expired
from services.orders.models import IdempotencyKey
from services.settings import Settings
from tests.integration.shop.support import written
from tidings.service import Service

GOOD = {"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 2}]}
OTHER = {"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 3}]}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_a_retry_with_the_same_key_and_body_replays_the_first_response(
    client: httpx.AsyncClient, orders: Service
) -> None:
    first = await client.post("/orders", json=GOOD, headers=keyed("order-1"))
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await client.post("/orders", json=GOOD, headers=keyed("order-1"))
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert (await written(orders))[:2] == (1, 1)  # one order, one line (and one OrderCreated with them)


async def test_the_key_outlives_the_process_that_stored_it(
    client: httpx.AsyncClient, orders: Service, settings: Settings
) -> None:
    first = await client.post("/orders", json=GOOD, headers=keyed("survives"))
    assert first.status_code == 201, first.text
    restarted = httpx.ASGITransport(app=create_app(orders, settings))  # a new app: nothing in memory
    async with httpx.AsyncClient(transport=restarted, base_url="http://shop") as other:
        again = await other.post("/orders", json=GOOD, headers=keyed("survives"))
    assert again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]
    assert (await written(orders))[0] == 1


async def test_a_structured_string_key_is_the_same_key(client: httpx.AsyncClient, orders: Service) -> None:
    first = await client.post("/orders", json=GOOD, headers=keyed('"8e03978e-40d5"'))
    again = await client.post("/orders", json=GOOD, headers=keyed("8e03978e-40d5"))
    assert again.json()["order_id"] == first.json()["order_id"]
    assert (await written(orders))[0] == 1


async def test_the_same_key_with_another_body_is_refused(client: httpx.AsyncClient, orders: Service) -> None:
    first = await client.post("/orders", json=GOOD, headers=keyed("order-2"))
    assert first.status_code == 201
    reused = await client.post("/orders", json=OTHER, headers=keyed("order-2"))
    assert reused.status_code == 422
    assert "Idempotency-Key" in reused.json()["detail"]
    assert "different request body" in reused.json()["detail"]
    assert (await written(orders))[:2] == (1, 1)


async def test_the_same_body_with_its_fields_reordered_is_the_same_request(
    client: httpx.AsyncClient, orders: Service
) -> None:
    first = await client.post("/orders", json=GOOD, headers=keyed("order-3"))
    reordered = {"lines": GOOD["lines"], "customer_id": GOOD["customer_id"]}
    again = await client.post("/orders", json=reordered, headers=keyed("order-3"))
    assert again.status_code == 201
    assert again.json()["order_id"] == first.json()["order_id"]


async def test_a_key_whose_request_is_still_running_is_409(
    app: FastAPI, client: httpx.AsyncClient, orders: Service
) -> None:
    keys: IdempotencyKeys = app.state.idempotency_keys
    async with keys.in_progress("busy"):  # as a first request holding the key does
        response = await client.post("/orders", json=GOOD, headers=keyed("busy"))
    assert response.status_code == 409
    assert "still being processed" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"
    assert await written(orders) == (0, 0, 0)
    after = await client.post("/orders", json=GOOD, headers=keyed("busy"))
    assert after.status_code == 201


async def test_concurrent_requests_with_one_key_place_one_order(client: httpx.AsyncClient, orders: Service) -> None:
    responses = await asyncio.gather(*(client.post("/orders", json=GOOD, headers=keyed("race")) for _ in range(10)))
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}, statuses
    assert len({response.json()["order_id"] for response in responses if response.status_code == 201}) == 1
    assert (await written(orders))[:2] == (1, 1)


async def test_without_a_key_every_request_places_an_order(client: httpx.AsyncClient, orders: Service) -> None:
    first = await client.post("/orders", json=GOOD)
    second = await client.post("/orders", json=GOOD)
    assert first.json()["order_id"] != second.json()["order_id"]
    assert (await written(orders))[0] == 2


async def test_a_refused_request_does_not_take_the_key(client: httpx.AsyncClient, orders: Service) -> None:
    unknown = {"customer_id": "customer-001", "lines": [{"sku": "SKU-NOPE", "quantity": 1}]}
    refused = await client.post("/orders", json=unknown, headers=keyed("order-4"))
    assert refused.status_code == 422
    placed = await client.post("/orders", json=GOOD, headers=keyed("order-4"))
    assert placed.status_code == 201


@pytest.mark.parametrize(("key", "message"), [("", "Idempotency-Key"), ("x" * 256, "Idempotency-Key")])
async def test_an_invalid_key_is_refused_with_a_message(
    client: httpx.AsyncClient, orders: Service, key: str, message: str
) -> None:
    response = await client.post("/orders", json=GOOD, headers=keyed(key))
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert await written(orders) == (0, 0, 0)


async def test_an_expired_key_is_free_again_and_purged(client: httpx.AsyncClient, orders: Service) -> None:
    first = await client.post("/orders", json=GOOD, headers=keyed("old"))
    kept = await client.post("/orders", json=GOOD, headers=keyed("kept"))
    async with orders.store.session() as session, session.begin():
        row = await session.get(IdempotencyKey, "old")
        assert row is not None
        assert row.expires_at - row.created_at == timedelta(seconds=Settings().idempotency_retention)
        await session.execute(
            update(IdempotencyKey).where(IdempotencyKey.key == "old").values(expires_at=utcnow() - timedelta(1))
        )
    reused = await client.post("/orders", json=OTHER, headers=keyed("old"))
    assert reused.status_code == 201, reused.text
    assert reused.json()["order_id"] != first.json()["order_id"]
    async with orders.store.session() as session, session.begin():
        await session.execute(
            update(IdempotencyKey).where(IdempotencyKey.key == "old").values(expires_at=utcnow() - timedelta(1))
        )
        assert await purge_expired(session, utcnow()) == 1
        remaining = await session.scalars(select(IdempotencyKey.key))
        assert list(remaining) == ["kept"]
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
    assert kept.status_code == 201
