"""The shipping service: creates a shipment for each confirmed order, once.

The inbox already drops redelivered events; the shipment's primary key (the order id) also
makes a second `OrderConfirmed` for one order, with a different event id, a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, bindparam, insert, select

from services.contracts import OrderConfirmed, ReservedLine, ShipmentCreated
from services.kit.db import utcnow
from services.kit.service import run_main, shop_service
from services.settings import Settings
from services.shipping.models import Base, Shipment
from tidings.context import Context
from tidings.ids import uuid7
from tidings.service import Service
from tidings.store import Prepared

# SQLAlchemy Core on `ctx.connection`, statements built once: one locked read and one insert need
# no ORM identity map or flush (docs/shop.md). `Prepared`: on SQLite they run on the driver (ADR 0036).
SHIPMENTS = cast(Table, Shipment.__table__)
LOCKED_SHIPMENT = Prepared(
    select(SHIPMENTS.c.order_id).where(SHIPMENTS.c.order_id == bindparam("order_id")).with_for_update()
)
ADD_SHIPMENT = Prepared(insert(SHIPMENTS))


async def on_order_confirmed(event: OrderConfirmed, ctx: Context) -> None:
    db = ctx.connection
    if await LOCKED_SHIPMENT.scalar(db, {"order_id": event.order_id}) is not None:
        return
    shipment_id = uuid7()
    lines = tuple(ReservedLine(sku=line.sku, quantity=line.quantity) for line in event.lines)
    shipment = {
        "order_id": event.order_id,
        "shipment_id": shipment_id,
        "customer_id": event.customer_id,
        "units": sum(line.quantity for line in lines),
        "created_at": utcnow(),
    }
    await ADD_SHIPMENT.execute(db, shipment)
    ctx.publish(
        ShipmentCreated(order_id=event.order_id, shipment_id=shipment_id, customer_id=event.customer_id, lines=lines)
    )


def build(settings: Settings) -> Service:
    service = shop_service("shipping", settings, tables=Base.metadata)
    service.on(OrderConfirmed)(on_order_confirmed)
    service.publishes(ShipmentCreated)
    return service


service = build(Settings.from_env())
"""For `tidings run services.shipping.service:service`; configured by `SHOP_*` variables."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
