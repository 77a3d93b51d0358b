"""Inventory's own tables: stock levels and one reservation (with its lines) per order.

`on_hand` counts units in the warehouse, `reserved` the part of them held for pending orders;
what can be promised is `on_hand - reserved`. `initial` is the seeded level, kept so that
`shop check` can verify conservation: initial == on_hand + units of committed reservations.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from services.seed import STOCK


class Base(DeclarativeBase):
    pass


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    """Stock is held; it becomes `committed` on confirmation or `released` on cancellation."""
    COMMITTED = "committed"
    RELEASED = "released"
    REJECTED = "rejected"
    """Some line lacked stock, so nothing was held."""
    CANCELLED = "cancelled"
    """The cancellation arrived before the order: a tombstone that stops a late reservation."""


class Stock(Base):
    __tablename__ = "stock"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    initial: Mapped[int] = mapped_column(Integer)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)


class Reservation(Base):
    __tablename__ = "reservations"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReservationLine(Base):
    __tablename__ = "reservation_lines"

    order_id: Mapped[str] = mapped_column(ForeignKey("reservations.order_id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


async def seed_stock(connection: AsyncConnection) -> None:
    """Insert the seeded stock levels of skus not yet known; existing rows are left alone."""
    statement = insert_ignoring_duplicates(connection.dialect.name, Stock.__table__)  # type: ignore[arg-type]
    rows = [{"sku": sku, "initial": units, "on_hand": units, "reserved": 0} for sku, units in STOCK.items()]
    await connection.execute(statement, rows)
