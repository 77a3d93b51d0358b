"""The shipping service: creates a shipment for each confirmed order, once.

The inbox already drops redelivered events; the shipment's primary key (the order id) also
makes a second `OrderConfirmed` for one order, with a different event id, a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.contracts import OrderConfirmed, ReservedLine, ShipmentCreated
from services.kit.service import run_main, shop_service
from services.settings import Settings
from services.shipping.models import Base, Shipment
from tidings.context import Context
from tidings.ids import uuid7
from tidings.service import Service


async def on_order_confirmed(event: OrderConfirmed, ctx: Context) -> None:
    session = ctx.session
    if await session.get(Shipment, event.order_id, with_for_update=True) is not None:
        return
    shipment_id = uuid7()
    lines = tuple(ReservedLine(sku=line.sku, quantity=line.quantity) for line in event.lines)
    session.add(
        Shipment(
            order_id=event.order_id,
            shipment_id=shipment_id,
            customer_id=event.customer_id,
            units=sum(line.quantity for line in lines),
        )
    )
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
