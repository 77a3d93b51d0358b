"""The notifications service: tells the customer how their order ended, once per order.

Nothing is e-mailed: the message is a row (the order id is its key, so an order gets one
message even if both outcomes were somehow announced) and a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, bindparam, insert, select

from services.contracts import OrderCancelled, OrderConfirmed
from services.kit.db import utcnow
from services.kit.service import run_main, shop_service
from services.notifications.models import Base, Notification
from services.settings import Settings
from tidings.context import Context
from tidings.service import Service
from tidings.store import Prepared

log = logging.getLogger("services.notifications")


async def on_order_confirmed(event: OrderConfirmed, ctx: Context) -> None:
    message = f"Your order {event.order_id} is confirmed: {event.total} will ship soon."
    await _notify(ctx, event.order_id, event.customer_id, "confirmed", message)


async def on_order_cancelled(event: OrderCancelled, ctx: Context) -> None:
    message = f"Your order {event.order_id} was cancelled ({event.reason}); any charge is refunded."
    await _notify(ctx, event.order_id, event.customer_id, "cancelled", message)


# SQLAlchemy Core on `ctx.connection`, statements built once: one locked read and one insert need
# no ORM identity map or flush (docs/shop.md). `Prepared`: on SQLite they run on the driver (ADR 0036).
NOTIFICATIONS = cast(Table, Notification.__table__)
LOCKED_KIND = Prepared(
    select(NOTIFICATIONS.c.kind).where(NOTIFICATIONS.c.order_id == bindparam("order_id")).with_for_update()
)
ADD_NOTIFICATION = Prepared(insert(NOTIFICATIONS))


async def _notify(ctx: Context, order_id: str, customer_id: str, kind: str, message: str) -> None:
    db = ctx.connection
    existing = await LOCKED_KIND.scalar(db, {"order_id": order_id})
    if existing is not None:
        if existing != kind:
            log.error("order %s was already notified as %s, now %s; keeping one", order_id, existing, kind)
        return
    row = {"order_id": order_id, "customer_id": customer_id, "kind": kind, "message": message, "created_at": utcnow()}
    await ADD_NOTIFICATION.execute(db, row)
    log.info("to %s: %s", customer_id, message)


def build(settings: Settings) -> Service:
    service = shop_service("notifications", settings, tables=Base.metadata)
    service.on(OrderConfirmed)(on_order_confirmed)
    service.on(OrderCancelled)(on_order_cancelled)
    return service


service = build(Settings.from_env())
"""For `tidings run services.notifications.service:service`; configured by `SHOP_*` variables."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
