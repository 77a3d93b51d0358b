"""The example of docs/testing.md: an inventory service tested with the kit, under duplicates.

This file is a test the suite runs (`testpaths` in pyproject.toml), so the page cannot rot.
"""

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from tidings import Event
from tidings.context import Context
from tidings.service import Service
from tidings.testing import Faults, Harness

tables = MetaData()
reservations = Table("reservations", tables, Column("id", Integer, primary_key=True), Column("order_id", String(40)))


class OrderCreated(Event, type="example.order.created", version=1):
    order_id: str

    def subject(self) -> str:
        return self.order_id


class StockReserved(Event, type="example.stock.reserved", version=1):
    order_id: str

    def subject(self) -> str:
        return self.order_id


def inventory_service(database: str) -> Service:
    inventory = Service("inventory", database=database, tables=tables)
    inventory.publishes(StockReserved)

    @inventory.on(OrderCreated)
    async def reserve(event: OrderCreated, ctx: Context) -> None:
        await ctx.session.execute(reservations.insert().values(order_id=event.order_id))
        ctx.publish(StockReserved(order_id=event.order_id))

    return inventory


async def test_reserves_once_even_when_every_event_comes_twice(tmp_path: Path) -> None:
    inventory = inventory_service(f"sqlite:///{tmp_path}/inventory.db")
    async with Harness(inventory, faults=Faults(duplicate=True, redeliver_after_success=True)) as harness:
        await harness.send(OrderCreated(order_id="o-1"))
        reserved = (await harness.published(StockReserved, subject="o-1"))[0]
        await harness.settled()
        async with inventory.store.session() as session:
            rows = await session.scalar(select(func.count()).select_from(reservations))
    assert reserved == StockReserved(order_id="o-1")
    assert rows == 1  # the inbox made the duplicate and the redelivery harmless
    assert len(harness.events(StockReserved)) == 2  # the relay's publish was duplicated: consumers dedupe too
