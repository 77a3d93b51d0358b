"""Helpers of the shop's integration tests."""

from __future__ import annotations

from sqlalchemy import func, select

from services.orders.models import Order, OrderLine
from tidings.service import Service
from tidings.store.tables import outbox


async def written(service: Service) -> tuple[int, int, int]:
    """Rows in orders, order_lines and the outbox."""
    async with service.store.session() as session:
        counts = [await session.scalar(select(func.count()).select_from(t)) for t in (Order, OrderLine, outbox)]
    return tuple(count or 0 for count in counts)  # type: ignore[return-value]
