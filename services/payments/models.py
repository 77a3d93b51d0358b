"""Payments' own tables: accounts and one charge row per order.

The charge row is the order's state in this service (captured, declined, refunded, or a
`cancelled` tombstone when the cancellation came first). `opening_balance` is kept so that
`shop check` can verify conservation: opening == balance + captured charges.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import Money, UTCDateTime, insert_ignoring_duplicates, utcnow
from services.seed import ACCOUNTS


class Base(DeclarativeBase):
    pass


class ChargeStatus(StrEnum):
    CAPTURED = "captured"
    DECLINED = "declined"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    """The order was cancelled before its stock was reserved: never charge it."""


class Account(Base):
    __tablename__ = "accounts"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    opening_balance: Mapped[Decimal] = mapped_column(Money)
    balance: Mapped[Decimal] = mapped_column(Money)


class Charge(Base):
    __tablename__ = "charges"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


async def seed_accounts(connection: AsyncConnection) -> None:
    """Open the seeded accounts that do not exist yet; existing balances are left alone."""
    statement = insert_ignoring_duplicates(connection.dialect.name, Account.__table__)  # type: ignore[arg-type]
    rows = [{"customer_id": c, "opening_balance": b, "balance": b} for c, b in ACCOUNTS.items()]
    await connection.execute(statement, rows)
