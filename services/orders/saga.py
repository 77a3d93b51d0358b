"""The order saga's event handlers: confirm on payment, cancel on stock or payment failure.

Each handler locks the order row and settles it only if it is still pending (`settle`). An
event for an order that is already settled changes nothing here; compensation for it happens
where the work was done: inventory releases and payments refunds on the `OrderCancelled` that
settled the order, whichever order the events arrive in.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contracts import (
    CancelReason,
    LineItem,
    OrderCancelled,
    OrderConfirmed,
    PaymentCompleted,
    PaymentFailed,
    StockReservationFailed,
)
from services.orders.models import Order, OrderLine, OrderStatus, settle
from tidings.context import Context
from tidings.errors import PermanentError

log = logging.getLogger("services.orders")


async def on_stock_reservation_failed(event: StockReservationFailed, ctx: Context) -> None:
    detail = ", ".join(f"{line.sku} short by {line.quantity}" for line in event.short)
    await cancel(ctx, await _order(ctx.session, event.order_id), CancelReason.OUT_OF_STOCK, detail)


async def on_payment_failed(event: PaymentFailed, ctx: Context) -> None:
    await cancel(ctx, await _order(ctx.session, event.order_id), CancelReason.PAYMENT_FAILED, event.reason)


async def on_payment_completed(event: PaymentCompleted, ctx: Context) -> None:
    session = ctx.session
    order = await _order(session, event.order_id)
    if not settle(order, OrderStatus.CONFIRMED):
        log.info("payment %s for %s order %s: payments refunds it", event.payment_id, order.status, order.order_id)
        return
    rows = await session.scalars(select(OrderLine).where(OrderLine.order_id == order.order_id))
    lines = tuple(LineItem(sku=row.sku, quantity=row.quantity, unit_price=row.unit_price) for row in rows)
    ctx.publish(
        OrderConfirmed(order_id=order.order_id, customer_id=order.customer_id, lines=lines, total=order.total),
        correlationid=order.correlation_id,
    )


async def cancel(ctx: Context, order: Order, reason: CancelReason, detail: str = "") -> bool:
    """Cancel a pending order and announce it so that others compensate; False if already settled."""
    if not settle(order, OrderStatus.CANCELLED, reason=reason, detail=detail):
        return False
    ctx.publish(
        OrderCancelled(order_id=order.order_id, customer_id=order.customer_id, reason=reason, detail=detail),
        correlationid=order.correlation_id,
    )
    return True


async def _order(session: AsyncSession, order_id: str) -> Order:
    order = await session.get(Order, order_id, with_for_update=True)
    if order is None:  # OrderCreated commits with the order row, so this is someone else's event
        raise PermanentError(f"no order {order_id} in the orders database")
    return order
