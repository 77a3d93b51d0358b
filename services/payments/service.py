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

from sqlalchemy import update

from services.contracts import OrderCancelled, PaymentCompleted, PaymentFailed, PaymentRefunded, StockReserved
from services.kit.db import utcnow
from services.kit.service import run_main, shop_service
from services.payments.models import Account, Base, Charge, ChargeStatus, seed_accounts
from services.settings import Settings
from tidings.context import Context
from tidings.ids import uuid7
from tidings.service import Service

log = logging.getLogger("services.payments")


async def on_stock_reserved(event: StockReserved, ctx: Context) -> None:
    session = ctx.session
    if await session.get(Charge, event.order_id, with_for_update=True) is not None:
        return  # charged or declined already, or cancelled before the stock was reserved
    debit = (
        update(Account)
        .where(Account.customer_id == event.customer_id, Account.balance >= event.amount)
        .values(balance=Account.balance - event.amount)
    )
    if (await session.execute(debit)).rowcount == 1:  # type: ignore[attr-defined]
        payment_id = uuid7()
        session.add(_charge(event, ChargeStatus.CAPTURED, payment_id=payment_id))
        ctx.publish(
            PaymentCompleted(
                order_id=event.order_id, payment_id=payment_id, customer_id=event.customer_id, amount=event.amount
            )
        )
        return
    account = await session.get(Account, event.customer_id)
    reason = "no such account" if account is None else "insufficient funds"
    session.add(_charge(event, ChargeStatus.DECLINED, reason=reason))
    ctx.publish(
        PaymentFailed(order_id=event.order_id, customer_id=event.customer_id, amount=event.amount, reason=reason)
    )


async def on_order_cancelled(event: OrderCancelled, ctx: Context) -> None:
    session = ctx.session
    charge = await session.get(Charge, event.order_id, with_for_update=True)
    if charge is None:
        session.add(
            Charge(
                order_id=event.order_id,
                customer_id=event.customer_id,
                amount=Decimal("0.00"),
                status=ChargeStatus.CANCELLED,
                reason=f"order cancelled first: {event.reason}",
            )
        )
        return
    if charge.status != ChargeStatus.CAPTURED:
        return
    credit = update(Account).where(Account.customer_id == charge.customer_id)
    await session.execute(credit.values(balance=Account.balance + charge.amount))
    charge.status, charge.reason, charge.updated_at = ChargeStatus.REFUNDED, str(event.reason), utcnow()
    assert charge.payment_id is not None
    ctx.publish(
        PaymentRefunded(
            order_id=event.order_id, payment_id=charge.payment_id, customer_id=charge.customer_id, amount=charge.amount
        )
    )


def _charge(event: StockReserved, status: ChargeStatus, *, payment_id: str | None = None, reason: str = "") -> Charge:
    return Charge(
        order_id=event.order_id,
        payment_id=payment_id,
        customer_id=event.customer_id,
        amount=event.amount,
        status=status,
        reason=reason,
    )


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
