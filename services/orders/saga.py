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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.contracts import (
    CancelReason,
    LineItem,
    OrderCancelled,
    OrderConfirmed,
    PaymentCompleted,
    PaymentFailed,
    StockReservationFailed,
)
from services.orders.models import LINES, ORDERS, OrderStatus, settle, settle_returning
from tidings import saga
from tidings.context import Context
from tidings.errors import PermanentError
from tidings.saga import Saga, SagaContext, handles
from tidings.store import Prepared

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
        await cancel(ctx, await _order(ctx.connection, self.order_id), CancelReason.OUT_OF_STOCK, detail)

    @handles(PaymentFailed)
    async def payment_failed(self, event: PaymentFailed, ctx: SagaContext) -> None:
        await cancel(ctx, await _order(ctx.connection, self.order_id), CancelReason.PAYMENT_FAILED, event.reason)

    @handles(PaymentCompleted)
    async def paid(self, event: PaymentCompleted, ctx: SagaContext) -> None:
        db = ctx.connection
        settled = await settle_returning(db, self.order_id, OrderStatus.CONFIRMED)  # locks the row, as `_order` does
        if settled is None:
            order = await _order(db, self.order_id)
            log.info("payment %s for %s order %s: payments refunds it", event.payment_id, order.status, order.order_id)
            ctx.finish(order.status)
            return
        customer_id, total = settled
        rows = await LINES_OF.rows(db, {"order_id": self.order_id})
        lines = tuple(LineItem(sku=sku, quantity=quantity, unit_price=price) for sku, quantity, price in rows)
        ctx.publish(OrderConfirmed(order_id=self.order_id, customer_id=customer_id, lines=lines, total=total))
        ctx.finish(CONFIRMED)

    async def timed_out(self, ctx: SagaContext) -> None:
        """The deadline passed with the order still pending: cancel it, so the others compensate."""
        order = await _order(ctx.connection, self.order_id)
        allowed = (order.deadline - order.created_at).total_seconds()
        detail = f"not settled within {allowed:g}s"
        if await cancel(ctx, order, CancelReason.DEADLINE_EXCEEDED, detail, status=TIMED_OUT):
            log.warning("cancelled order %s: past its deadline", order.order_id)


async def begin_order(ctx: Context, order: dict[str, Any]) -> None:
    """Begin the saga of `order` (its columns, as `add_order` writes them) in the transaction
    that creates it, timing out at its deadline."""
    seconds = (order["deadline"] - order["created_at"]).total_seconds()
    process = OrderProcess(order_id=order["order_id"])
    await saga.begin(ctx, process, correlation=order["correlation_id"], times_out_in=seconds)


async def cancel(
    ctx: SagaContext, order: LockedOrder, reason: CancelReason, detail: str = "", *, status: str = CANCELLED
) -> bool:
    """Cancel a pending order (its row from `_order`) and announce it so that others compensate,
    ending the saga with `status`; False (nothing published, the saga ends as the order did) if
    it was already settled."""
    if not await settle(ctx.connection, order.order_id, OrderStatus.CANCELLED, reason=reason, detail=detail):
        ctx.finish(order.status)
        return False
    ctx.publish(OrderCancelled(order_id=order.order_id, customer_id=order.customer_id, reason=reason, detail=detail))
    ctx.finish(status)
    return True


# The steps' reads, built once with bound parameters (building them per step cost CPU, docs/shop.md).
LOCKED_ORDER = Prepared(
    select(
        ORDERS.c.order_id, ORDERS.c.customer_id, ORDERS.c.status, ORDERS.c.total, ORDERS.c.created_at, ORDERS.c.deadline
    )
    .where(ORDERS.c.order_id == bindparam("order_id"))
    .with_for_update()
)
LINES_OF = Prepared(
    select(LINES.c.sku, LINES.c.quantity, LINES.c.unit_price).where(LINES.c.order_id == bindparam("order_id"))
)


@dataclass(frozen=True, slots=True)
class LockedOrder:
    """What a step reads of its order, whose row it locked."""

    order_id: str
    customer_id: str
    status: str
    total: Decimal
    created_at: datetime
    deadline: datetime


async def _order(db: AsyncConnection, order_id: str) -> LockedOrder:
    """The order, its row locked: the steps run SQLAlchemy Core on `ctx.connection` (no ORM
    objects to load and flush for one conditional update, docs/shop.md)."""
    order = await LOCKED_ORDER.first(db, {"order_id": order_id})
    if order is None:  # OrderCreated commits with the order row, so this is someone else's event
        raise PermanentError(f"no order {order_id} in the orders database")
    return LockedOrder(*order)
