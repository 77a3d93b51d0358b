"""The order process as a `tidings.saga.Saga`: confirm on payment, cancel on stock or payment
failure, cancel when the deadline passes (docs/sagas.md).

The saga starts on the orders service's own `OrderCreated`, whose correlation id is the order's
business transaction (`Order.correlation_id`): every follow-up event carries it, so each finds
the instance, and what the saga publishes carries it too. Its timeout is the order row's
`deadline`, which the API computed from the shop settings, so the deadline the API shows is the
one that applies; the library's timeout sweeper then calls `timed_out`.

Each step also locks the order row and settles it only if it is still pending (`settle`), so an
event for an order that is already settled changes nothing, and a step ends the saga once the
order is settled (later events are acked without running a step). Compensation happens where
the work was done: inventory releases and payments refunds on the `OrderCancelled` that settled
the order, whichever order the events arrive in. An event that overtakes the `OrderCreated` step
raises `SagaNotStarted`, which the runtime retries.
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
    OrderCreated,
    PaymentCompleted,
    PaymentFailed,
    StockReservationFailed,
)
from services.kit.db import utcnow
from services.orders.models import Order, OrderLine, OrderStatus, settle
from tidings.errors import PermanentError
from tidings.saga import Saga, SagaContext, handles, starts

log = logging.getLogger("services.orders")

CONFIRMED, CANCELLED, TIMED_OUT = "confirmed", "cancelled", "timed-out"
"""How an order saga ends (its status in `tidings_sagas`)."""


class OrderProcess(Saga, name="order"):
    """One order from `OrderCreated` to confirmed or cancelled; the state is the order's id."""

    order_id: str = ""

    @starts(OrderCreated)
    async def created(self, event: OrderCreated, ctx: SagaContext) -> None:
        self.order_id = event.order_id
        order = await _order(ctx.session, event.order_id)
        if order.correlation_id != ctx.correlation:
            log.warning("order %s: saga %s, order row %s", order.order_id, ctx.correlation, order.correlation_id)
        if order.status != OrderStatus.PENDING:
            ctx.finish(order.status)
            return
        ctx.set_timeout((order.deadline - utcnow()).total_seconds())  # past already: times out at once

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
