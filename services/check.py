"""`shop check`: read every service's database and verify the shop's invariants.

This is an operator's tool, so it alone may read all five databases (no service does). The shop
is eventually consistent: right after a load run, shipping may not yet have seen the last
confirmation. So `check` re-reads until the invariants hold or `wait` seconds have passed, and
reports the violations of the last reading.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services import invariants
from services.invariants import ChargeFacts, OrderFacts, ReservationFacts, Snapshot
from services.inventory.models import Reservation, ReservationLine, Stock
from services.notifications.models import Notification
from services.orders.models import Order, OrderLine
from services.payments.models import Account, Charge
from services.settings import SERVICES, Settings
from services.shipping.models import Shipment


async def read_snapshot(settings: Settings, services: Collection[str] = SERVICES) -> Snapshot:
    """What the databases of `services` hold now (the others' parts stay empty)."""
    snapshot = Snapshot()
    if "orders" in services:
        await _read_orders(settings, snapshot)
    if "inventory" in services:
        await _read_inventory(settings, snapshot)
    if "payments" in services:
        await _read_payments(settings, snapshot)
    if "shipping" in services:
        async with _session(settings, "shipping") as session:
            for shipment in await session.scalars(select(Shipment)):
                snapshot.shipments[shipment.order_id] = snapshot.shipments.get(shipment.order_id, 0) + 1
    if "notifications" in services:
        async with _session(settings, "notifications") as session:
            for note in await session.scalars(select(Notification)):
                snapshot.notifications.setdefault(note.order_id, []).append(note.kind)
    return snapshot


async def _read_orders(settings: Settings, snapshot: Snapshot) -> None:
    async with _session(settings, "orders") as session:
        lines: dict[str, dict[str, int]] = defaultdict(dict)
        for line in await session.scalars(select(OrderLine)):
            lines[line.order_id][line.sku] = line.quantity
        for order in await session.scalars(select(Order)):
            snapshot.orders[order.order_id] = OrderFacts(
                order.status, order.customer_id, order.total, lines[order.order_id]
            )


async def _read_inventory(settings: Settings, snapshot: Snapshot) -> None:
    async with _session(settings, "inventory") as session:
        held: dict[str, dict[str, int]] = defaultdict(dict)
        for item in await session.scalars(select(ReservationLine)):
            held[item.order_id][item.sku] = item.quantity
        for reservation in await session.scalars(select(Reservation)):
            snapshot.reservations[reservation.order_id] = ReservationFacts(
                reservation.status, held[reservation.order_id]
            )
        for stock in await session.scalars(select(Stock)):
            snapshot.stock[stock.sku] = (stock.initial, stock.on_hand, stock.reserved)


async def _read_payments(settings: Settings, snapshot: Snapshot) -> None:
    async with _session(settings, "payments") as session:
        for charge in await session.scalars(select(Charge)):
            snapshot.charges[charge.order_id] = ChargeFacts(charge.status, charge.customer_id, charge.amount)
        for account in await session.scalars(select(Account)):
            snapshot.accounts[account.customer_id] = (account.opening_balance, account.balance)


class MissingDatabase(Exception):
    """A service's database does not exist: wrong data directory, or the service never ran."""


class _session:
    """A read-only session on one service's database, with its own short-lived engine.

    SQLite files are opened read-only (`mode=ro`), so checking never creates or changes one.
    """

    def __init__(self, settings: Settings, service: str) -> None:
        url = make_url(settings.database_url(service))
        if url.get_backend_name() == "sqlite":
            path = Path(url.database or "")
            if not path.exists():
                raise MissingDatabase(f"no {service} database at {path}")
            url = url.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        self.engine = create_async_engine(url)
        self.session = AsyncSession(self.engine)

    async def __aenter__(self) -> AsyncSession:
        return self.session

    async def __aexit__(self, *exc_info: object) -> None:
        await self.session.close()
        await self.engine.dispose()


async def check(
    settings: Settings, *, wait: float = 30.0, say: Callable[[str], None] = print
) -> tuple[list[str], Snapshot]:
    """The violations once they are gone or after `wait` seconds, and the last snapshot read."""
    deadline = time.monotonic() + wait
    while True:
        snapshot = await read_snapshot(settings)
        found = invariants.violations(snapshot)
        if not found or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    for name, value in invariants.totals(snapshot).items():
        say(f"{name}: {value}")
    for line in found[:200]:
        say(f"VIOLATION {line}")
    if len(found) > 200:
        say(f"... and {len(found) - 200} more violations")
    say(f"{len(found)} violation(s)" if found else "all invariants hold")
    return found, snapshot
