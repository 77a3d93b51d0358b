"""`shop check`: read every service's database and verify the shop's invariants.

This is an operator's tool, so it alone may read all five databases (no service does). The shop
is eventually consistent: right after a load run, shipping may not yet have seen the last
confirmation. So `check` re-reads until the invariants hold or `wait` seconds have passed, and
reports the violations of the last reading.

Beyond the business invariants it reads what delivery left behind (`read_delivery`): the order
ids the load generator recorded as accepted (`<data>/accepted-orders.txt`), each group's dead
letters and backlog on the broker, and each service database's unpublished outbox rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services import invariants
from services.invariants import ChargeFacts, OrderFacts, ReservationFacts, Snapshot
from services.inventory.models import Reservation, ReservationLine, Stock
from services.load import ACCEPTED_FILE, read_accepted
from services.notifications.models import Notification
from services.orders.models import Order, OrderLine
from services.payments.models import Account, Charge
from services.settings import SERVICES, Settings
from services.shipping.models import Shipment
from tidings.store.tables import outbox
from tidings.transport import Transport, connect


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
                order.status, order.customer_id, order.total, lines[order.order_id], order.reason
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


async def read_delivery(settings: Settings, snapshot: Snapshot, transport: Transport | None) -> None:
    """Add to `snapshot` what delivery left behind: accepted orders, outbox rows, dead letters and
    backlog (`transport` None: the broker could not be reached, said in `unreadable`)."""
    snapshot.accepted = read_accepted(settings.data_dir / ACCEPTED_FILE)
    for service in SERVICES:
        async with _session(settings, service) as session:
            snapshot.outbox[service] = await session.scalar(select(func.count()).select_from(outbox)) or 0
    if transport is None:
        return
    try:
        snapshot.backlog = await transport.backlog()
    except Exception as error:
        snapshot.unreadable.append(f"the groups' backlog on the broker: {error}")
    for group in sorted({*SERVICES, *snapshot.backlog}):
        try:
            snapshot.dead_letters[group] = len(await transport.dead_letters(group, limit=1000))
        except Exception as error:
            snapshot.unreadable.append(f"the dead letters of group {group}: {error}")


class _broker:
    """The shop's broker for reading (None, said in `errors`, if it cannot be opened); an
    embedded broker's file must exist, so checking never creates one."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.broker_url()
        self.transport: Transport | None = None
        self.error = ""
        url = make_url(self.url) if self.url.startswith("sqlite") else None
        if url is not None and not Path(url.database or "").exists():
            raise MissingDatabase(f"no broker at {url.database}")

    async def __aenter__(self) -> _broker:
        try:
            self.transport = await connect(self.url)
        except Exception as error:
            self.error = f"the broker (cannot connect: {error})"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.transport is not None:
            await self.transport.close()


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
    settings: Settings, *, wait: float = 30.0, say: Callable[[str], None] = print, delivery: bool = True
) -> tuple[list[str], Snapshot]:
    """The violations once they are gone or after `wait` seconds, and the last snapshot read;
    `delivery=False` checks the business invariants only."""
    deadline = time.monotonic() + wait
    async with contextlib.AsyncExitStack() as stack:
        broker: _broker | None = None
        while True:
            snapshot = await read_snapshot(settings)  # first: a missing database is named before the broker
            if delivery:
                if broker is None:
                    broker = await stack.enter_async_context(_broker(settings))
                await read_delivery(settings, snapshot, broker.transport)
                snapshot.unreadable += [broker.error] if broker.error else []
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
