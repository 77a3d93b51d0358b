"""The first service of docs/getting-started.md, and a producer sending it an event; the suite runs
`main()` (tests/integration/test_docs_snippets.py), so the page cannot rot."""

import asyncio
from pathlib import Path

# --8<-- [start:service]
from tidings import Event
from tidings.context import Context
from tidings.service import Service


class OrderCreated(Event, type="shop.order.created", version=1):
    order_id: str

    def subject(self) -> str:
        return self.order_id


class StockReserved(Event, type="shop.stock.reserved", version=1):
    order_id: str


inventory = Service("inventory", broker="sqlite:///data/broker.db", database="sqlite:///data/inventory.db")


@inventory.on(OrderCreated)
async def reserve(event: OrderCreated, ctx: Context) -> None:
    # ctx.session is this service's own database transaction; the follow-up event is written to
    # the outbox in the same transaction and published by the relay after commit.
    ctx.publish(StockReserved(order_id=event.order_id))


# --8<-- [end:service]


# --8<-- [start:producer]
orders = Service("orders", broker="sqlite:///data/broker.db", database="sqlite:///data/orders.db")


async def place_order(order_id: str) -> None:
    # `async with orders` starts the service (its broker, database and relay) and stops it after
    async with orders, orders.transaction() as ctx:
        ctx.publish(OrderCreated(order_id=order_id))


# --8<-- [end:producer]


async def main(folder: Path) -> int:
    """Run both in `folder`: the inventory service reserves stock for an order the producer sends."""
    (folder / "data").mkdir(exist_ok=True)
    for service in (inventory, orders):
        service.broker_url = f"sqlite:///{folder}/data/broker.db"
        service.database_url = f"sqlite:///{folder}/data/{service.name}.db"
    async with inventory:
        await place_order("o-1")
        for _ in range(500):
            if inventory.stats["handled"] == 1:
                return 0
            await asyncio.sleep(0.01)
    return 1
