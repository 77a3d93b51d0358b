"""The load generator sends an `Idempotency-Key` per order and retries with it when the response
is lost (connection error, timeout) or is a 5xx or 409: every order is placed exactly once, and
each accepted order id is recorded in the accepted-orders file that `shop check` reads."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from sqlalchemy import select

from services.load import Reply, post_order, read_accepted, run_load
from services.orders.models import Order
from tidings.service import Service

GOOD = {"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 1}]}
CLIENT_TIMEOUT = 0.5
"""Seconds the tests' client waits for a response; the `timeout` front stalls longer."""


class Flaky:
    """A real HTTP server on loopback in front of the orders app: it lets the app handle each
    POST, then loses the first `failures` responses of each key in the way `how` says (the
    connection dropped, no answer within the client's timeout, a gateway's 503)."""

    def __init__(self, app: FastAPI, how: str, failures: int = 2) -> None:
        self.app = app
        self.how = how
        self.failures = failures
        self.seen: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        failing = False
        if request.method == "POST":
            key = request.headers["idempotency-key"]
            self.seen[key] += 1
            failing = self.seen[key] <= self.failures
        if failing and self.how == "refused":  # cut before the app saw it: nothing was placed
            return _drop(request)
        headers = {name: value for name, value in request.headers.items() if name.lower() in FORWARDED}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://shop") as inner:
            answer = await inner.request(
                request.method, str(request.rel_url), content=await request.read(), headers=headers
            )
        response = web.Response(status=answer.status_code, body=answer.content, headers=_passed(answer.headers))
        if not failing:
            return response
        if self.how == "lost":  # the app placed the order; its response never leaves
            return _drop(request)
        if self.how == "timeout":
            await asyncio.sleep(CLIENT_TIMEOUT * 4)
            return response
        if self.how == "503":
            return web.json_response({"detail": "the gateway lost its upstream"}, status=503)
        return response


FORWARDED = ("content-type", "idempotency-key")


def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering (aiohttp then writes nothing)."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=500)


def _passed(headers: httpx.Headers) -> dict[str, str]:
    return {
        name: value for name, value in headers.items() if name.lower() not in ("content-length", "transfer-encoding")
    }


@asynccontextmanager
async def serving(flaky: Flaky) -> AsyncIterator[str]:
    """Serve `flaky` on a free loopback port; yields its base URL."""
    front = web.Application()
    front.router.add_route("*", "/{path:.*}", flaky.handle)
    runner = web.AppRunner(front, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def session(url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=url, timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)) as client:
        yield client


async def order_ids(orders: Service) -> list[str]:
    async with orders.store.session() as session:
        return list(await session.scalars(select(Order.order_id)))


@pytest.mark.parametrize("how", ["lost", "timeout", "503", "refused"])
async def test_a_lost_response_is_retried_with_the_same_key_and_places_one_order(
    app: FastAPI, orders: Service, how: str
) -> None:
    flaky = Flaky(app, how)
    async with serving(flaky) as url, session(url) as client:
        outcome, attempts = await post_order(client, GOOD, "key-1", retry_for=10)
    assert isinstance(outcome, Reply), outcome
    assert outcome.status == 201
    assert outcome.replayed == (how != "refused")  # answered from the first handled POST's stored response
    assert attempts == 3
    assert await order_ids(orders) == [outcome.json()["order_id"]]


async def test_a_client_error_is_not_retried(app: FastAPI, orders: Service) -> None:
    flaky = Flaky(app, "none")
    bad = {"customer_id": "customer-001", "lines": [{"sku": "SKU-NOPE", "quantity": 1}]}
    async with serving(flaky) as url, session(url) as client:
        outcome, attempts = await post_order(client, bad, "key-2", retry_for=10)
    assert isinstance(outcome, Reply)
    assert (outcome.status, attempts) == (422, 1)
    assert "SKU-NOPE" in outcome.text


async def test_retries_give_up_after_the_retry_window(app: FastAPI, orders: Service) -> None:
    async with serving(Flaky(app, "none")) as url:
        pass  # the port is free again: nobody listens there now
    async with session(url) as client:
        outcome, attempts = await post_order(client, GOOD, "key-3", retry_for=0.5)
    assert isinstance(outcome, str)
    assert "ClientConnectorError" in outcome
    assert attempts > 1
    assert await order_ids(orders) == []


async def test_the_load_records_every_accepted_order_once(app: FastAPI, orders: Service, tmp_path: Path) -> None:
    accepted = tmp_path / "accepted-orders.txt"
    flaky = Flaky(app, "lost", failures=1)
    async with serving(flaky) as url:
        report = await run_load(url, 12, 0, settle_timeout=0.2, show_progress=False, accepted_file=accepted)
    assert (report.placed, report.refused) == (12, 0)
    assert report.retried == 12  # one lost response per order
    assert report.replayed == 12  # each retry was answered from the stored response
    assert report.retry_reasons == {"ServerDisconnectedError": 12}
    assert len(set(flaky.seen)) == 12  # a key per order
    recorded = read_accepted(accepted)
    assert recorded is not None
    assert len(recorded) == 12
    assert sorted(recorded) == sorted(await order_ids(orders))
