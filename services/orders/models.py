"""The orders service's own tables: the catalog it prices from, orders and their lines.

`created_at` and `settled_at` are the timestamps the load generator's latency figures come
from: both are written by this service, in the transactions that create and settle the order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ForeignKey, Index, Integer, String, Table, Text, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import Money, UTCDateTime, insert_ignoring_duplicates, utcnow
from services.seed import CATALOG
from tidings.store import Prepared


class Base(DeclarativeBase):
    pass


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED})


class CatalogItem(Base):
    __tablename__ = "catalog"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_price: Mapped[Decimal] = mapped_column(Money)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_status_deadline", "status", "deadline"),)

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    detail: Mapped[str] = mapped_column(String(500), default="")
    correlation_id: Mapped[str] = mapped_column(String(64))
    """The business transaction the order started: the order saga's correlation id."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    """When the order saga times out and cancels the order if it is still pending."""
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None, index=True)


class OrderLine(Base):
    __tablename__ = "order_lines"

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money)


class IdempotencyKey(Base):
    """A `POST /orders` `Idempotency-Key` and the response it got, written in the order's own
    transaction; a retry with the key replays `response` until `expires_at`."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the request body as parsed (field order and spacing do not matter)."""
    order_id: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    """The response body as JSON."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


async def seed_catalog(connection: AsyncConnection) -> None:
    """Insert the seeded catalog entries that are missing; existing prices are left alone."""
    statement = insert_ignoring_duplicates(connection.dialect.name, CatalogItem.__table__)  # type: ignore[arg-type]
    await connection.execute(statement, [{"sku": sku, "unit_price": price} for sku, price in CATALOG.items()])


ORDERS = cast(Table, Order.__table__)
LINES = cast(Table, OrderLine.__table__)

# Built once, with bound parameters (named unlike any column: UPDATE reserves those), and
# `Prepared`: compiled once and, on SQLite, run on the driver (ADR 0036).
ADD_ORDER = Prepared(insert(ORDERS))
ADD_LINES = Prepared(insert(LINES))
_SETTLE = (
    update(ORDERS)
    .where(ORDERS.c.order_id == bindparam("of_order"), ORDERS.c.status == OrderStatus.PENDING)
    .values(
        status=bindparam("new_status"),
        reason=bindparam("why"),
        detail=bindparam("detail_text"),
        settled_at=bindparam("now"),
    )
)
SETTLE = Prepared(_SETTLE)
SETTLE_RETURNING = Prepared(_SETTLE.returning(ORDERS.c.customer_id, ORDERS.c.total))


def new_order(
    order_id: str, customer_id: str, total: Decimal, correlation_id: str, created_at: datetime, deadline: datetime
) -> dict[str, Any]:
    """The columns of a pending order, as `add_order` writes them: every column, since a
    `Prepared` insert runs no Python-side defaults."""
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "status": OrderStatus.PENDING,
        "total": total,
        "correlation_id": correlation_id,
        "created_at": created_at,
        "deadline": deadline,
        "reason": None,
        "detail": "",
        "settled_at": None,
    }


async def add_order(db: AsyncConnection, order: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """Insert a new order's row (every column, as `new_order` gives them) and its lines'. Core
    statements on `ctx.connection`: two inserts need no ORM unit of work."""
    await ADD_ORDER.execute(db, order)
    if lines:
        await ADD_LINES.executemany(db, lines)


async def settle(
    db: AsyncConnection, order_id: str, status: OrderStatus, *, reason: str | None = None, detail: str = ""
) -> bool:
    """Move a pending order to a terminal status; False (and no change) if it was already settled.

    This is the one place an order changes status: one conditional UPDATE (SQLAlchemy Core, on the
    handler's `ctx.connection`), so no event can settle an order twice.
    """
    return await SETTLE.execute(db, _settlement(order_id, status, reason, detail)) == 1


async def settle_returning(db: AsyncConnection, order_id: str, status: OrderStatus) -> tuple[str, Decimal] | None:
    """`settle`, returning the settled order's customer and total from the same one statement
    (`UPDATE ... RETURNING`: a step that needs them reads nothing more); None if it was settled."""
    row = await SETTLE_RETURNING.first(db, _settlement(order_id, status, None, ""))
    return None if row is None else (row.customer_id, row.total)


def _settlement(order_id: str, status: OrderStatus, reason: str | None, detail: str) -> dict[str, Any]:
    return {"of_order": order_id, "new_status": status, "why": reason, "detail_text": detail[:500], "now": utcnow()}
