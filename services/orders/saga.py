"""The order process as a `tidings.saga.Saga`: confirm on payment, cancel on stock or payment
failure, cancel when the deadline passes (docs/sagas.md).

The API begins the saga (`tidings.saga.begin`) in the transaction that creates the order and
publishes `OrderCreated`, under the order's business transaction (`Order.correlation_id`): every
follow-up event carries it, so each finds the instance, and what the saga publishes carries it
too. It exists exactly when the order does, so no reply can overtake it, and the orders service
does not consume its own `OrderCreated`. Its timeout is the order's deadline, which the API
shows; the library's timeout sweeper then calls `timed_out`.

Each step also locks the order row and settles it only if it is still pending (`settle`), so an
event for an order that is already settled changes nothing, and a step ends the saga once the
order is settled (later events are acked without running a step). Compensation happens where
the work was done: inventory releases and payments refunds on the `OrderCancelled` that settled
the order, whichever order the events arrive in.
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
from tidings import saga
from tidings.context import Context
from tidings.errors import PermanentError
from tidings.saga import Saga, SagaContext, handles

log = logging.getLogger("services.orders")

CONFIRMED, CANCELLED, TIMED_OUT = "confirmed", "cancelled", "timed-out"
"""How an order saga ends (its status in `tidings_sagas`)."""


class OrderProcess(Saga, name="order", begun=True):
    """One order from its creation to confirmed or cancelled; the state is the order's id. The API
    begins it in the transaction that creates the order (`begin_order`)."""

    order_id: str = ""

    @handles(StockReservationFailed)
    async def out_of_stock(self, event: StockReservationFailed, ctx: SagaContext) -> None:
        detail = ", ".join(f"{line.sku} short by {line.quantity}" for line in event.short)
        await cancel(ctx, await _order(ctx.session, self.order_id), CancelReason.OUT_OF_STOCK, detail)

    @handles(PaymentFailed)
    async def payment_failed(self, event: PaymentFailed, ctx: SagaContext) -> None:
        await cancel(ctx, await _order(ctx.session, self.order_id), CancelReason.PAYMENT_FAILED, event.reason)

    @handles(PaymentCompleted)
    async def paid(self, event: PaymentCompleted, ctx: SagaContext) -> None:
        session = ctx.session
        order = await _order(session, self.order_id)
        if not settle(order, OrderStatus.CONFIRMED):
            log.info("payment %s for %s order %s: payments refunds it", event.payment_id, order.status, order.order_id)
            ctx.finish(order.status)
            return
        rows = await session.scalars(select(OrderLine).where(OrderLine.order_id == order.order_id))
        lines = tuple(LineItem(sku=row.sku, quantity=row.quantity, unit_price=row.unit_price) for row in rows)
        ctx.publish(
            OrderConfirmed(order_id=order.order_id, customer_id=order.customer_id, lines=lines, total=order.total)
        )
        ctx.finish(CONFIRMED)

    async def timed_out(self, ctx: SagaContext) -> None:
        """The deadline passed with the order still pending: cancel it, so the others compensate."""
        order = await _order(ctx.session, self.order_id)
        allowed = (order.deadline - order.created_at).total_seconds()
        detail = f"not settled within {allowed:g}s"
        if await cancel(ctx, order, CancelReason.DEADLINE_EXCEEDED, detail, status=TIMED_OUT):
            log.warning("cancelled order %s: past its deadline", order.order_id)


async def begin_order(ctx: Context, order: Order) -> None:
    """Begin the order's saga in the transaction that creates `order`, timing out at its deadline."""
    seconds = (order.deadline - order.created_at).total_seconds()
    await saga.begin(ctx, OrderProcess(order_id=order.order_id), correlation=order.correlation_id, times_out_in=seconds)


async def cancel(
    ctx: SagaContext, order: Order, reason: CancelReason, detail: str = "", *, status: str = CANCELLED
) -> bool:
    """Cancel a pending order and announce it so that others compensate, ending the saga with
    `status`; False (nothing published, the saga ends as the order did) if it was already settled."""
    if not settle(order, OrderStatus.CANCELLED, reason=reason, detail=detail):
        ctx.finish(order.status)
        return False
    ctx.publish(OrderCancelled(order_id=order.order_id, customer_id=order.customer_id, reason=reason, detail=detail))
    ctx.finish(status)
    return True


async def _order(session: AsyncSession, order_id: str) -> Order:
    order = await session.get(Order, order_id, with_for_update=True)
    if order is None:  # OrderCreated commits with the order row, so this is someone else's event
        raise PermanentError(f"no order {order_id} in the orders database")
    return order
