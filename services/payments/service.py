"""The payments service: charges an order once its stock is reserved, refunds it if cancelled.

The deadline race: orders may cancel an order while inventory is still reserving it, so
`OrderCancelled` can reach payments before `StockReserved`. The cancellation is recorded
either way (a tombstone charge row), and a later `StockReserved` finds it and charges nothing.
The debit is one conditional UPDATE, so concurrent charges of one account never overdraw it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update

from services.contracts import OrderCancelled, PaymentCompleted, PaymentFailed, PaymentRefunded, StockReserved
from services.kit.db import utcnow
from services.kit.service import run_main, shop_service
from services.payments.models import Account, Base, Charge, ChargeStatus, seed_accounts
from services.settings import Settings
from tidings.context import Context
from tidings.ids import uuid7
from tidings.service import Service
from tidings.store import Prepared

log = logging.getLogger("services.payments")


# The handlers use SQLAlchemy Core on `ctx.connection`, not the ORM: a few statements on rows
# they lock, where the ORM's identity map and flush cost more CPU than the statements (docs/shop.md).
# Each is `Prepared`: compiled once and, on SQLite, run on the driver (ADR 0036).
ACCOUNTS = cast(Table, Account.__table__)
CHARGES = cast(Table, Charge.__table__)

# Built once, with bound parameters (names that are no column's: UPDATE reserves those): building
# a statement per call cost more CPU than executing it from SQLAlchemy's compiled cache.
ADD_CHARGE = Prepared(insert(CHARGES))
LOCKED_CHARGE = Prepared(
    select(CHARGES.c.status, CHARGES.c.customer_id, CHARGES.c.amount, CHARGES.c.payment_id)
    .where(CHARGES.c.order_id == bindparam("of_order"))
    .with_for_update()
)
DEBIT = Prepared(
    update(ACCOUNTS)
    .where(ACCOUNTS.c.customer_id == bindparam("of_customer"), ACCOUNTS.c.balance >= bindparam("by"))
    .values(balance=ACCOUNTS.c.balance - bindparam("by"))
)
CREDIT = Prepared(
    update(ACCOUNTS)
    .where(ACCOUNTS.c.customer_id == bindparam("of_customer"))
    .values(balance=ACCOUNTS.c.balance + bindparam("by"))
)
ACCOUNT = Prepared(select(ACCOUNTS.c.customer_id).where(ACCOUNTS.c.customer_id == bindparam("of_customer")))
REFUND = Prepared(
    update(CHARGES)
    .where(CHARGES.c.order_id == bindparam("of_order"))
    .values(status=ChargeStatus.REFUNDED, reason=bindparam("why"), updated_at=bindparam("now"))
)


async def on_stock_reserved(event: StockReserved, ctx: Context) -> None:
    db = ctx.connection
    if await LOCKED_CHARGE.first(db, {"of_order": event.order_id}) is not None:
        return  # charged or declined already, or cancelled before the stock was reserved
    debit = {"of_customer": event.customer_id, "by": event.amount}
    if await DEBIT.execute(db, debit) == 1:
        payment_id = uuid7()
        await ADD_CHARGE.execute(db, _charge(event, ChargeStatus.CAPTURED, payment_id=payment_id))
        ctx.publish(
            PaymentCompleted(
                order_id=event.order_id, payment_id=payment_id, customer_id=event.customer_id, amount=event.amount
            )
        )
        return
    account = await ACCOUNT.scalar(db, {"of_customer": event.customer_id})
    reason = "no such account" if account is None else "insufficient funds"
    await ADD_CHARGE.execute(db, _charge(event, ChargeStatus.DECLINED, reason=reason))
    ctx.publish(
        PaymentFailed(order_id=event.order_id, customer_id=event.customer_id, amount=event.amount, reason=reason)
    )


async def on_order_cancelled(event: OrderCancelled, ctx: Context) -> None:
    db = ctx.connection
    charge = await LOCKED_CHARGE.first(db, {"of_order": event.order_id})
    if charge is None:
        tombstone = {
            "order_id": event.order_id,
            "customer_id": event.customer_id,
            "amount": Decimal("0.00"),
            "status": ChargeStatus.CANCELLED,
            "reason": f"order cancelled first: {event.reason}",
            "updated_at": utcnow(),
        }
        await ADD_CHARGE.execute(db, tombstone)
        return
    if charge.status != ChargeStatus.CAPTURED:
        return
    await CREDIT.execute(db, {"of_customer": charge.customer_id, "by": charge.amount})
    await REFUND.execute(db, {"of_order": event.order_id, "why": str(event.reason), "now": utcnow()})
    assert charge.payment_id is not None
    ctx.publish(
        PaymentRefunded(
            order_id=event.order_id, payment_id=charge.payment_id, customer_id=charge.customer_id, amount=charge.amount
        )
    )


def _charge(
    event: StockReserved, status: ChargeStatus, *, payment_id: str | None = None, reason: str = ""
) -> dict[str, object]:
    return {
        "order_id": event.order_id,
        "payment_id": payment_id,
        "customer_id": event.customer_id,
        "amount": event.amount,
        "status": status,
        "reason": reason,
        "updated_at": utcnow(),
    }


def build(settings: Settings) -> Service:
    service = shop_service("payments", settings, tables=Base.metadata, seeders=[seed_accounts])
    service.on(StockReserved)(on_stock_reserved)
    service.on(OrderCancelled)(on_order_cancelled)
    service.publishes(PaymentCompleted, PaymentFailed, PaymentRefunded)
    return service


service = build(Settings.from_env())
"""For `tidings run services.payments.service:service`; configured by `SHOP_*` variables."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
