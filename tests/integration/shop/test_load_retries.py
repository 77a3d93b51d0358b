"""The load generator sends an `Idempotency-Key` per order and retries with it when the response
is lost (connection error, timeout) or is a 5xx or 409: every order is placed exactly once, and
each accepted order id is recorded in the accepted-orders file that `shop check` reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.load import post_order, read_accepted, run_load
from services.orders.models import Order
from tidings.service import Service

GOOD = {"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 1}]}


class Flaky(httpx.AsyncBaseTransport):
    """Lets the app handle each POST, then loses its first `failures` responses per key in `how`."""

    def __init__(self, app: FastAPI, how: str, failures: int = 2) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.how = how
        self.failures = failures
        self.seen: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return await self.inner.handle_async_request(request)
        key = request.headers["idempotency-key"]
        self.seen[key] += 1
        if self.how == "refused" and self.seen[key] <= self.failures:
            raise httpx.ConnectError("connection refused", request=request)  # never reached the app
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if self.seen[key] > self.failures:
            return response
        if self.how == "lost":
            raise httpx.RemoteProtocolError("server disconnected without a response", request=request)
        if self.how == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if self.how == "503":
            return httpx.Response(503, json={"detail": "the gateway lost its upstream"}, request=request)
        return response


async def order_ids(orders: Service) -> list[str]:
    async with orders.store.session() as session:
        return list(await session.scalars(select(Order.order_id)))


@pytest.mark.parametrize("how", ["lost", "timeout", "503", "refused"])
async def test_a_lost_response_is_retried_with_the_same_key_and_places_one_order(
    app: FastAPI, orders: Service, how: str
) -> None:
    flaky = Flaky(app, how)
    async with httpx.AsyncClient(transport=flaky, base_url="http://shop") as client:
        outcome, attempts = await post_order(client, GOOD, "key-1", retry_for=10)
    assert isinstance(outcome, httpx.Response), outcome
    assert outcome.status_code == 201
    assert attempts == 3
    assert await order_ids(orders) == [outcome.json()["order_id"]]


async def test_a_client_error_is_not_retried(app: FastAPI, orders: Service) -> None:
    flaky = Flaky(app, "none")
    bad = {"customer_id": "customer-001", "lines": [{"sku": "SKU-NOPE", "quantity": 1}]}
    async with httpx.AsyncClient(transport=flaky, base_url="http://shop") as client:
        outcome, attempts = await post_order(client, bad, "key-2", retry_for=10)
    assert isinstance(outcome, httpx.Response)
    assert (outcome.status_code, attempts) == (422, 1)


async def test_retries_give_up_after_the_retry_window(app: FastAPI, orders: Service) -> None:
    flaky = Flaky(app, "refused", failures=10**6)
    async with httpx.AsyncClient(transport=flaky, base_url="http://shop") as client:
        outcome, attempts = await post_order(client, GOOD, "key-3", retry_for=0.5)
    assert isinstance(outcome, str)
    assert "ConnectError" in outcome
    assert attempts > 1
    assert await order_ids(orders) == []


async def test_the_load_records_every_accepted_order_once(app: FastAPI, orders: Service, tmp_path: Path) -> None:
    accepted = tmp_path / "accepted-orders.txt"
    flaky = Flaky(app, "lost", failures=1)
    report = await run_load(
        "http://shop", 12, 0, settle_timeout=0.2, show_progress=False, transport=flaky, accepted_file=accepted
    )
    assert (report.placed, report.refused) == (12, 0)
    assert report.retried == 12  # one lost response per order
    assert report.replayed == 12  # each retry was answered from the stored response
    assert report.retry_reasons == {"RemoteProtocolError": 12}
    assert len(set(flaky.seen)) == 12  # a key per order
    recorded = read_accepted(accepted)
    assert recorded is not None
    assert len(recorded) == 12
    assert sorted(recorded) == sorted(await order_ids(orders))
