"""Orders from the legacy order system: ADR-001's pika publisher, unchanged.

It publishes `{"event_type": "OrderCreated", "order_id": 123, "amount": 250}` to the durable
queue `order_events` through the default exchange. `ORDER_EVENTS`, the orders service's legacy
source (on RabbitMQ), translates such a document into `LegacyOrderPlaced` (order
`legacy-123`, 250.00), which the orders service takes like an order placed through the API: it
records the order (one `SKU-LEGACY` line at the legacy amount, paid by `customer-legacy`),
begins the order saga and publishes `OrderCreated`; inventory, payments, shipping and
notifications then do what they do for every order. Any other `event_type`, or a document that
does not fit, is refused: a dead letter of the orders group whose reason says why, which replay
returns to `order_events`. See docs/how-to/legacy-publisher.md.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, select

from services.contracts import LegacyOrderPlaced, LineItem, OrderCreated
from services.contracts.events import Money
from services.kit.db import utcnow
from services.orders.models import ORDERS, add_order, new_order
from services.orders.saga import begin_order
from services.seed import LEGACY_CUSTOMER, LEGACY_SKU
from services.settings import Settings
from tidings.context import Context
from tidings.legacy import LegacySource, Refuse, Translation
from tidings.service import Service
from tidings.store import Prepared

log = logging.getLogger("services.orders")

QUEUE = "order_events"


class LegacyOrder(BaseModel):
    """The document the legacy system publishes; other fields are allowed and ignored."""

    model_config = ConfigDict(extra="ignore")

    event_type: Literal["OrderCreated"]
    order_id: int | str = Field(union_mode="left_to_right")
    amount: Money


def translate(document: Any) -> Translation:
    """A legacy `OrderCreated` becomes `LegacyOrderPlaced`; anything else is refused."""
    if not isinstance(document, dict):
        return Refuse("not a JSON object")
    if document.get("event_type") != "OrderCreated":
        return Refuse(f"event_type {document.get('event_type')!r} is not one the shop takes (only 'OrderCreated')")
    order = LegacyOrder.model_validate(document)  # a ValidationError is a refusal with its text
    legacy_id = str(order.order_id)
    return LegacyOrderPlaced(order_id=f"legacy-{legacy_id}", legacy_order_id=legacy_id, amount=order.amount)


ORDER_EVENTS = LegacySource(QUEUE, translate=translate, group="orders", source="urn:legacy:order-system")


KNOWN_ORDER = Prepared(select(ORDERS.c.order_id).where(ORDERS.c.order_id == bindparam("order_id")))


def take_legacy_orders(service: Service, settings: Settings) -> None:
    """Register the orders service's handler of `LegacyOrderPlaced`."""
    deadline = timedelta(seconds=settings.deadline)

    @service.on(LegacyOrderPlaced)
    async def place(event: LegacyOrderPlaced, ctx: Context) -> None:
        """Record the legacy order and start it, unless an order with its id exists already."""
        db = ctx.connection
        if await KNOWN_ORDER.scalar(db, {"order_id": event.order_id}) is not None:
            log.info("legacy order %s is known already; nothing to do", event.legacy_order_id)
            return
        line = LineItem(sku=LEGACY_SKU, quantity=1, unit_price=event.amount)
        created = ctx.publish(
            OrderCreated(order_id=event.order_id, customer_id=LEGACY_CUSTOMER, lines=(line,), total=event.amount)
        )
        now = utcnow()
        correlation = created.correlationid or created.id
        order = new_order(event.order_id, LEGACY_CUSTOMER, event.amount, correlation, now, now + deadline)
        row = {"order_id": event.order_id, "sku": LEGACY_SKU, "quantity": 1, "unit_price": event.amount}
        await add_order(db, order, [row])
        await begin_order(ctx, order)
        log.info("legacy order %s recorded as %s", event.legacy_order_id, event.order_id)
