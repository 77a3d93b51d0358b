"""The inventory service: reserves stock for new orders, releases it on cancellation, commits
it on confirmation.

Every handler first locks the order's reservation row (or finds none): that row is the order's
state in this service, so a duplicate, late or reordered event is recognised and does nothing.
A cancellation that arrives before the order leaves a tombstone so the order is never reserved.
Stock rows are locked in sku order, so concurrent reservations cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    ReservedLine,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from services.inventory.domain import Level, shortages
from services.inventory.models import Base, Reservation, ReservationLine, ReservationStatus, Stock, seed_stock
from services.kit.db import utcnow
from services.kit.service import run_main, shop_service
from services.settings import Settings
from tidings.context import Context
from tidings.errors import PermanentError
from tidings.service import Service

log = logging.getLogger("services.inventory")


async def on_order_created(event: OrderCreated, ctx: Context) -> None:
    session = ctx.session
    if await _reservation(session, event.order_id) is not None:
        return  # already decided, or cancelled before it arrived
    lines = [ReservedLine(sku=line.sku, quantity=line.quantity) for line in event.lines]
    stock = await _lock_stock(session, (line.sku for line in lines))
    short = shortages({sku: Level(row.on_hand, row.reserved) for sku, row in stock.items()}, lines)
    if short:
        session.add(Reservation(order_id=event.order_id, status=ReservationStatus.REJECTED))
        ctx.publish(StockReservationFailed(order_id=event.order_id, short=tuple(short)))
        return
    for line in lines:
        stock[line.sku].reserved += line.quantity
    session.add(Reservation(order_id=event.order_id, status=ReservationStatus.RESERVED))
    await session.flush()
    session.add_all(ReservationLine(order_id=event.order_id, sku=line.sku, quantity=line.quantity) for line in lines)
    ctx.publish(
        StockReserved(order_id=event.order_id, customer_id=event.customer_id, amount=event.total, lines=tuple(lines))
    )


async def on_order_cancelled(event: OrderCancelled, ctx: Context) -> None:
    session = ctx.session
    reservation = await _reservation(session, event.order_id)
    if reservation is None:
        session.add(Reservation(order_id=event.order_id, status=ReservationStatus.CANCELLED))
        return
    if reservation.status != ReservationStatus.RESERVED:
        if reservation.status == ReservationStatus.COMMITTED:
            log.error("order %s was cancelled after its stock was committed; keeping it", event.order_id)
        return
    lines = await _lines(session, event.order_id)
    stock = await _lock_stock(session, (line.sku for line in lines))
    for line in lines:
        stock[line.sku].reserved -= line.quantity
    reservation.status, reservation.updated_at = ReservationStatus.RELEASED, utcnow()
    ctx.publish(StockReleased(order_id=event.order_id, lines=tuple(lines)))


async def on_order_confirmed(event: OrderConfirmed, ctx: Context) -> None:
    session = ctx.session
    reservation = await _reservation(session, event.order_id)
    if reservation is not None and reservation.status == ReservationStatus.COMMITTED:
        return
    if reservation is None or reservation.status != ReservationStatus.RESERVED:
        status = reservation.status if reservation else "missing"
        raise PermanentError(f"order {event.order_id} confirmed but its reservation is {status}")
    lines = await _lines(session, event.order_id)
    stock = await _lock_stock(session, (line.sku for line in lines))
    for line in lines:
        stock[line.sku].reserved -= line.quantity
        stock[line.sku].on_hand -= line.quantity
    reservation.status, reservation.updated_at = ReservationStatus.COMMITTED, utcnow()


async def _reservation(session: AsyncSession, order_id: str) -> Reservation | None:
    return await session.get(Reservation, order_id, with_for_update=True)


async def _lines(session: AsyncSession, order_id: str) -> Sequence[ReservedLine]:
    rows = await session.scalars(select(ReservationLine).where(ReservationLine.order_id == order_id))
    return [ReservedLine(sku=row.sku, quantity=row.quantity) for row in rows]


async def _lock_stock(session: AsyncSession, skus: Iterable[str]) -> dict[str, Stock]:
    """The stock rows of `skus`, locked in sku order (a fixed order: no deadlocks)."""
    query = select(Stock).where(Stock.sku.in_(sorted(set(skus)))).order_by(Stock.sku).with_for_update()
    return {row.sku: row for row in await session.scalars(query)}


def build(settings: Settings) -> Service:
    service = shop_service("inventory", settings, tables=Base.metadata, seeders=[seed_stock])
    service.on(OrderCreated)(on_order_created)
    service.on(OrderCancelled)(on_order_cancelled)
    service.on(OrderConfirmed)(on_order_confirmed)
    service.publishes(StockReserved, StockReservationFailed, StockReleased)
    return service


service = build(Settings.from_env())
"""For `tidings run services.inventory.service:service`; configured by `SHOP_*` variables."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
