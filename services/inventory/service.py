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
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

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
from tidings.store import Prepared

log = logging.getLogger("services.inventory")

# The handlers use SQLAlchemy Core on `ctx.connection`, not the ORM: each is a few statements on
# rows it locks, and the ORM's identity map and flush cost more CPU than the statements do (the
# shop's services spent 60 % of their time in SQLAlchemy, docs/shop.md).
STOCK = cast(Table, Stock.__table__)
RESERVATIONS = cast(Table, Reservation.__table__)
LINES = cast(Table, ReservationLine.__table__)

# Built once, with bound parameters: building a statement per call (its operators, its cache key)
# cost more CPU than executing it from SQLAlchemy's compiled cache (docs/shop.md). Each but the
# stock lock (an IN list) is `Prepared`: compiled once and, on SQLite, run on the driver (ADR 0036).
ADD_RESERVATION = Prepared(insert(RESERVATIONS))
ADD_LINES = Prepared(insert(LINES))
LOCKED_STATUS = Prepared(
    select(RESERVATIONS.c.status).where(RESERVATIONS.c.order_id == bindparam("order_id")).with_for_update()
)
SET_STATUS = Prepared(
    update(RESERVATIONS)
    .where(RESERVATIONS.c.order_id == bindparam("of_order"))  # not a column's name: UPDATE reserves those
    .values(status=bindparam("new_status"), updated_at=bindparam("now"))
)
LINES_OF = Prepared(select(LINES.c.sku, LINES.c.quantity).where(LINES.c.order_id == bindparam("order_id")))
LOCKED_STOCK = (
    select(STOCK.c.sku, STOCK.c.on_hand, STOCK.c.reserved)
    .where(STOCK.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(STOCK.c.sku)
    .with_for_update()
)
MOVE_STOCK = Prepared(
    update(STOCK)
    .where(STOCK.c.sku == bindparam("line_sku"))
    .values(reserved=STOCK.c.reserved + bindparam("reserved_by"), on_hand=STOCK.c.on_hand + bindparam("on_hand_by"))
)


async def on_order_created(event: OrderCreated, ctx: Context) -> None:
    db = ctx.connection
    if await _status(db, event.order_id) is not None:
        return  # already decided, or cancelled before it arrived
    lines = [ReservedLine(sku=line.sku, quantity=line.quantity) for line in event.lines]
    short = shortages(await _lock_stock(db, (line.sku for line in lines)), lines)
    if short:
        await ADD_RESERVATION.execute(db, _reservation(event.order_id, ReservationStatus.REJECTED))
        ctx.publish(StockReservationFailed(order_id=event.order_id, short=tuple(short)))
        return
    await _move(db, lines, reserved=1)
    await ADD_RESERVATION.execute(db, _reservation(event.order_id, ReservationStatus.RESERVED))
    rows = [{"order_id": event.order_id, "sku": line.sku, "quantity": line.quantity} for line in lines]
    await ADD_LINES.executemany(db, rows)
    ctx.publish(
        StockReserved(order_id=event.order_id, customer_id=event.customer_id, amount=event.total, lines=tuple(lines))
    )


async def on_order_cancelled(event: OrderCancelled, ctx: Context) -> None:
    db = ctx.connection
    status = await _status(db, event.order_id)
    if status is None:
        await ADD_RESERVATION.execute(db, _reservation(event.order_id, ReservationStatus.CANCELLED))
        return
    if status != ReservationStatus.RESERVED:
        if status == ReservationStatus.COMMITTED:
            log.error("order %s was cancelled after its stock was committed; keeping it", event.order_id)
        return
    lines = await _lines(db, event.order_id)
    await _move(db, lines, reserved=-1)
    await _set_status(db, event.order_id, ReservationStatus.RELEASED)
    ctx.publish(StockReleased(order_id=event.order_id, lines=tuple(lines)))


async def on_order_confirmed(event: OrderConfirmed, ctx: Context) -> None:
    db = ctx.connection
    status = await _status(db, event.order_id)
    if status == ReservationStatus.COMMITTED:
        return
    if status != ReservationStatus.RESERVED:
        raise PermanentError(f"order {event.order_id} confirmed but its reservation is {status or 'missing'}")
    await _move(db, await _lines(db, event.order_id), reserved=-1, on_hand=-1)
    await _set_status(db, event.order_id, ReservationStatus.COMMITTED)


async def _status(db: AsyncConnection, order_id: str) -> str | None:
    """The order's reservation status (its row locked), or None if there is none."""
    status: str | None = await LOCKED_STATUS.scalar(db, {"order_id": order_id})
    return status


def _reservation(order_id: str, status: ReservationStatus) -> dict[str, object]:
    return {"order_id": order_id, "status": status, "updated_at": utcnow()}


async def _set_status(db: AsyncConnection, order_id: str, status: ReservationStatus) -> None:
    await SET_STATUS.execute(db, {"of_order": order_id, "new_status": status, "now": utcnow()})


async def _lines(db: AsyncConnection, order_id: str) -> list[ReservedLine]:
    rows = await LINES_OF.rows(db, {"order_id": order_id})
    return [ReservedLine(sku=sku, quantity=quantity) for sku, quantity in rows]


async def _lock_stock(db: AsyncConnection, skus: Iterable[str]) -> dict[str, Level]:
    """The stock levels of `skus`, their rows locked in sku order (a fixed order: no deadlocks)."""
    rows = await db.execute(LOCKED_STOCK, {"skus": sorted(set(skus))})
    return {sku: Level(on_hand, reserved) for sku, on_hand, reserved in rows}


async def _move(db: AsyncConnection, lines: Iterable[ReservedLine], *, reserved: int, on_hand: int = 0) -> None:
    """Add each sku's quantity times `reserved` and `on_hand` to its stock row, in sku order
    (the rows are locked in that order, as `_lock_stock` does: no deadlocks)."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    rows = [
        {"line_sku": sku, "reserved_by": n * reserved, "on_hand_by": n * on_hand} for sku, n in sorted(totals.items())
    ]
    await MOVE_STOCK.executemany(db, rows)


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
