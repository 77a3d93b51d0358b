"""What the orders API reads without taking the service's writing connection.

On SQLite a process has one connection (`tidings.store.sqlite`), which the API's writes, the
consumer's batches and the relay share, and every transaction on it holds the write lock: a
`GET /orders` there queues behind every write and delays the next one. `Reads` opens a second,
read-only store on the same file for the API's GET endpoints: its transactions begin deferred, so
in WAL mode they read the last committed snapshot while the writer goes on. On PostgreSQL the
service's own pool already reads concurrently, and `Reads` uses it.

The GET endpoints read with SQLAlchemy Core (`connection()`, rows rather than ORM objects, and
statements built once): the settled-orders feed polls `GET /orders` all the time under load, and
loading ORM instances was most of its cost in the orders process (docs/shop.md).

`Prices` keeps the catalog in memory: a `POST /orders` needs the price of each line's sku, and
the catalog only grows (seeding adds the skus that are missing and never changes a price), so a
sku the cache does not know is read again once, and a known price is never stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.orders.models import LINES, ORDERS, CatalogItem
from tidings.service import Service
from tidings.store import Store

ORDER_BY_ID = select(ORDERS).where(ORDERS.c.order_id == bindparam("order_id"))
LINES_OF_ORDERS = select(LINES).where(LINES.c.order_id.in_(bindparam("ids", expanding=True))).order_by(LINES.c.sku)


class Reads:
    """Sessions for read-only requests: `open()` after the service started, `close()` before it stops."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._store: Store | None = None

    async def open(self) -> None:
        """On SQLite, open the read-only store (no migrations: the service ran them)."""
        if self._store is None and not self.service.store.dialect.concurrent_writers:
            self._store = await Store.open(self.service.store.engine.url, migrate=False, read_only=True)

    def session(self) -> AsyncSession:
        """A session that must only read; not opened (tests mounting the app): the service's own."""
        return (self._store or self.service.store).session()

    def connection(self) -> AsyncConnection:
        """A Core connection that must only read (its transaction rolls back when it closes);
        not opened: one of the service's own."""
        return (self._store or self.service.store).engine.connect()

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()


class Prices:
    """The catalog's unit prices, read once and again only for a sku not seen yet."""

    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}

    async def of(self, db: AsyncConnection, skus: Iterable[str]) -> dict[str, Decimal]:
        """The price of each of `skus` that the catalog has (an unknown sku is left out)."""
        wanted = set(skus)
        if not wanted <= self._prices.keys():
            catalog = CatalogItem.__table__.c
            self._prices.update(
                (sku, price) for sku, price in await db.execute(select(catalog.sku, catalog.unit_price))
            )
        return {sku: self._prices[sku] for sku in wanted if sku in self._prices}
