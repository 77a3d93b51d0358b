"""Follow which orders have settled, through the orders API, without loading it much."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import aiohttp

CHUNK = 100


class SettledFeed:
    """Follows `GET /orders?settled_after=...`: the orders settled since `since`, each kept once.

    Polling one order at a time, or all pending orders, would load the API in proportion to the
    backlog and distort what is measured; the feed costs one small query per poll. `settled_at`
    is stamped before its transaction commits, so on PostgreSQL an order can become visible with
    a time just behind one already seen: each poll re-reads an `OVERLAP`, and `fill` fetches by
    id whatever the feed still missed.
    """

    OVERLAP = timedelta(seconds=1)

    def __init__(self, client: aiohttp.ClientSession, *, since: datetime) -> None:
        self.client = client
        self.since = since
        self.newest = since
        self.views: dict[str, dict[str, Any]] = {}

    async def poll(self) -> None:
        """Fetch the orders settled since shortly before the newest one seen (several pages if needed)."""
        cursor = max(self.since, self.newest - self.OVERLAP).isoformat()
        while True:
            try:
                page = await _orders(self.client, [("settled_after", cursor), ("limit", "1000")])
            except (aiohttp.ClientError, TimeoutError):
                return  # the API is restarting; the next poll covers this one's orders too
            self._keep(page)
            if len(page) < 1000:
                return
            cursor = page[-1]["settled_at"]

    async def fill(self, ids: list[str]) -> None:
        """Fetch `ids` directly and keep the settled ones."""
        self._keep(await fetch(self.client, ids))

    def _keep(self, views: list[dict[str, Any]]) -> None:
        for view in views:
            if view["settled_at"] is not None:
                self.views[view["order_id"]] = view
                self.newest = max(self.newest, datetime.fromisoformat(view["settled_at"]))

    def count(self, ids: list[str]) -> int:
        return sum(1 for order_id in ids if order_id in self.views)


async def fetch(client: aiohttp.ClientSession, ids: list[str]) -> list[dict[str, Any]]:
    """The views of `ids`, a hundred per request; retried while the API restarts."""
    views: list[dict[str, Any]] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for attempt in range(30):
            try:
                views.extend(
                    await _orders(client, [*(("id", order_id) for order_id in chunk), ("limit", str(len(chunk)))])
                )
                break
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(min(1.0, 0.1 * (attempt + 1)))
    return views


async def _orders(client: aiohttp.ClientSession, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """`GET /orders?<query>`'s orders; `aiohttp.ClientResponseError` on a status of 400 or more."""
    async with client.get("/orders", params=query, raise_for_status=True) as response:
        orders: list[dict[str, Any]] = (await response.json())["orders"]
        return orders
