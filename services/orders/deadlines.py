"""The deadline sweep: cancels pending orders that were not settled in time.

A saga step can stall (a service down, an event stuck in a dead-letter queue); the customer
must still get an answer. The sweep runs in the orders process every `sweep_interval` seconds
and cancels overdue orders in batches, each batch one transaction with its `OrderCancelled`
events, so inventory releases and payments refunds what they did for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select

from services.contracts import CancelReason
from services.kit.db import utcnow
from services.kit.service import ShopService
from services.orders.models import Order, OrderStatus
from services.orders.saga import cancel

log = logging.getLogger("services.orders.deadlines")

BATCH = 200


class DeadlineSweep:
    """A `Component` of the orders service; see the module docstring."""

    def __init__(self, service: ShopService) -> None:
        self.service = service
        self.interval = service.settings.sweep_interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orders-deadline-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def describe(self) -> dict[str, Any]:
        return {"deadline": self.service.settings.deadline}

    async def sweep(self) -> int:
        """Cancel overdue pending orders, a batch per transaction; returns how many."""
        cancelled = 0
        while True:
            async with self.service.transaction() as ctx:
                query = (
                    select(Order)
                    .where(Order.status == OrderStatus.PENDING, Order.deadline <= utcnow())
                    .order_by(Order.deadline)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
                overdue = list(await ctx.session.scalars(query))
                for order in overdue:
                    detail = f"not settled within {self.service.settings.deadline:g}s"
                    cancelled += await cancel(ctx, order, CancelReason.DEADLINE_EXCEEDED, detail)
            if len(overdue) < BATCH:
                if cancelled:
                    log.warning("cancelled %d order(s) past their deadline", cancelled)
                return cancelled

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("deadline sweep failed; trying again")
            await asyncio.sleep(self.interval)
