"""The services' handlers against their real databases (SQLite files), called in-process: the
rules that make events about one order idempotent and order-independent. The order saga is
driven through the memory broker, as the runtime runs it, and timed out by the library's sweeper."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.contracts import (
    CancelReason,
    LineItem,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    PaymentCompleted,
    ReservedLine,
    StockReserved,
)
from services.inventory import service as inventory
from services.inventory.models import Reservation, Stock
from services.kit.db import utcnow
from services.orders import service as orders
from services.orders.models import Order, OrderStatus, add_order, new_order, settle
from services.orders.saga import OrderProcess, begin_order
from services.payments import service as payments
from services.payments.models import Account, Charge
from services.seed import STOCK
from services.settings import Settings
from tidings import saga
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.service import Service
from tidings.transport import connect

_names = itertools.count()
Build = Callable[[Settings], Service]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[Build], Awaitable[Service]]]:
    started: list[Service] = []

    async def starter(build: Build) -> Service:
        settings = Settings(data_dir=tmp_path, broker=f"memory://handlers-{next(_names)}")
        service = build(settings)
        await service.start()
        started.append(service)
        return service

    yield starter
    for service in started:
        await service.stop()


async def handle(service: Service, handler: Callable[[Any, Any], Awaitable[None]], event: Event) -> list[str]:
    """Run `handler` in one unit of work as the runtime would; the types of the events it published."""
    async with service.transaction() as ctx:
        await handler(event, ctx)
    return [envelope.type for envelope in ctx.outgoing]


async def row(service: Service, model: type[Any], key: str) -> Any:
    async with service.store.session() as session:
        return await session.get(model, key)


def reserved(order: str, customer: str = "customer-001", amount: str = "10.00") -> StockReserved:
    lines = (ReservedLine(sku="SKU-TEA", quantity=1),)
    return StockReserved(order_id=order, customer_id=customer, amount=Decimal(amount), lines=lines)


def cancelled(order: str, customer: str = "customer-001") -> OrderCancelled:
    return OrderCancelled(order_id=order, customer_id=customer, reason=CancelReason.DEADLINE_EXCEEDED)


def created(order: str, *lines: tuple[str, int]) -> OrderCreated:
    items = tuple(LineItem(sku=sku, quantity=quantity, unit_price=Decimal("1.00")) for sku, quantity in lines)
    total = Decimal(sum(quantity for _, quantity in lines))
    return OrderCreated(order_id=order, customer_id="customer-001", lines=items, total=total)


async def test_payments_never_charges_an_order_whose_cancellation_came_first(start: Any) -> None:
    service = await start(payments.build)
    assert await handle(service, payments.on_order_cancelled, cancelled("o1")) == []
    assert await handle(service, payments.on_stock_reserved, reserved("o1")) == []
    assert (await row(service, Charge, "o1")).status == "cancelled"
    assert (await row(service, Account, "customer-001")).balance == Decimal("1000000.00")


async def test_payments_refunds_a_charged_order_once(start: Any) -> None:
    service = await start(payments.build)
    assert await handle(service, payments.on_stock_reserved, reserved("o1")) == ["shop.payment.completed"]
    assert (await row(service, Account, "customer-001")).balance == Decimal("999990.00")
    assert await handle(service, payments.on_order_cancelled, cancelled("o1")) == ["shop.payment.refunded"]
    assert await handle(service, payments.on_order_cancelled, cancelled("o1")) == []
    assert await handle(service, payments.on_stock_reserved, reserved("o1")) == []
    assert (await row(service, Charge, "o1")).status == "refunded"
    assert (await row(service, Account, "customer-001")).balance == Decimal("1000000.00")


@pytest.mark.parametrize(("customer", "reason"), [("customer-broke-1", "insufficient funds"), ("nobody", "no such")])
async def test_payments_declines_what_the_customer_cannot_pay(start: Any, customer: str, reason: str) -> None:
    service = await start(payments.build)
    published = await handle(service, payments.on_stock_reserved, reserved("o1", customer, "5.00"))
    assert published == ["shop.payment.failed"]
    charge = await row(service, Charge, "o1")
    assert (charge.status, reason in charge.reason) == ("declined", True)


async def test_inventory_reserves_all_lines_or_none(start: Any) -> None:
    service = await start(inventory.build)
    order = created("o1", ("SKU-TEA", 2), ("SKU-BACKORDER", 1))
    assert await handle(service, inventory.on_order_created, order) == ["shop.stock.reservation-failed"]
    assert (await row(service, Stock, "SKU-TEA")).reserved == 0
    assert (await row(service, Reservation, "o1")).status == "rejected"


async def test_inventory_releases_on_cancellation_and_ignores_a_late_order(start: Any) -> None:
    service = await start(inventory.build)
    assert await handle(service, inventory.on_order_created, created("o1", ("SKU-TEA", 2))) == ["shop.stock.reserved"]
    assert (await row(service, Stock, "SKU-TEA")).reserved == 2
    assert await handle(service, inventory.on_order_cancelled, cancelled("o1")) == ["shop.stock.released"]
    assert await handle(service, inventory.on_order_cancelled, cancelled("o1")) == []
    tea = await row(service, Stock, "SKU-TEA")
    assert (tea.on_hand, tea.reserved) == (STOCK["SKU-TEA"], 0)
    # the cancellation of o2 overtakes its creation: o2 is never reserved
    assert await handle(service, inventory.on_order_cancelled, cancelled("o2")) == []
    assert await handle(service, inventory.on_order_created, created("o2", ("SKU-TEA", 1))) == []
    assert (await row(service, Stock, "SKU-TEA")).reserved == 0


async def until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within:g}s: {what}"
        await asyncio.sleep(0.05)


async def test_orders_ignores_a_payment_for_an_order_the_deadline_cancelled(start: Any) -> None:
    service = await start(lambda settings: orders.build(settings, serve_http=False))
    correlation = await _pending_order(service, quantity=1, deadline_in=timedelta(seconds=-5))  # past its deadline

    async def instance() -> tuple[str, OrderProcess] | None:
        async with service.store.session() as session:
            return await saga.instance(session, OrderProcess, correlation)

    assert await instance() is not None  # begun with the order, in its transaction
    sweeper = saga.TimeoutSweeper(
        service.name, service.store, service.transaction, service.registry, {OrderProcess.saga_name: OrderProcess}
    )
    await sweeper.sweep()  # or the service's own sweeper, started with it, got there first
    assert await instance() == ("timed-out", OrderProcess(order_id="o1"))
    outboxed = service.stats["outboxed"]
    await _pay(service, correlation, Decimal("4.50"))
    assert service.stats["outboxed"] == outboxed  # the late payment published nothing
    async with service.store.session() as session:
        order = (await session.scalars(select(Order))).one()
    assert (order.status, order.reason) == ("cancelled", "deadline-exceeded")
    assert order.settled_at is not None


async def _pending_order(
    service: Service, *, quantity: int = 2, deadline_in: timedelta = timedelta(minutes=5), settled_as: str = ""
) -> str:
    """A pending order of `quantity` teas at 4.50 with its saga begun, written as the API does;
    `settled_as` then settles its row behind the saga's back (the race the payment step guards
    against). Returns its correlation id."""
    async with service.transaction() as ctx:
        now = utcnow()
        placed = ctx.publish(created("o1", ("SKU-TEA", quantity)))
        correlation = placed.correlationid or placed.id
        total = Decimal("4.50") * quantity
        order = new_order(
            "o1", "customer-001", total, correlation, now + min(deadline_in, timedelta(0)), now + deadline_in
        )
        line = {"order_id": "o1", "sku": "SKU-TEA", "quantity": quantity, "unit_price": Decimal("4.50")}
        await add_order(ctx.connection, order, [line])
        await begin_order(ctx, order)
    if settled_as:
        async with service.transaction() as ctx:
            assert await settle(ctx.connection, "o1", OrderStatus(settled_as), reason=CancelReason.OUT_OF_STOCK)
    return correlation


async def _pay(service: Service, correlation: str, amount: Decimal = Decimal("9.00")) -> None:
    """Publish the order's `PaymentCompleted` and wait until the service handled it."""
    handled = service.stats["handled"]
    probe = await connect(service.broker_url)
    completed = PaymentCompleted(order_id="o1", payment_id="p1", customer_id="customer-001", amount=amount)
    await probe.publish([Envelope.wrap(completed, source="payments", correlationid=correlation)])
    await probe.close()

    async def paid() -> bool:
        return service.stats["handled"] > handled

    await until(paid, "the payment was handled")


async def test_orders_confirms_a_paid_order_with_its_customer_total_and_lines(start: Any) -> None:
    service = await start(lambda settings: orders.build(settings, serve_http=False))
    correlation = await _pending_order(service)
    tap = await connect(service.broker_url)
    confirmations = await tap.subscribe("tap", [OrderConfirmed.event_type])
    await _pay(service, correlation)
    delivery = await anext(aiter(confirmations))
    confirmed = OrderConfirmed.model_validate_json(delivery.envelope().data)
    await delivery.ack()
    await tap.close()
    assert (confirmed.customer_id, confirmed.total) == ("customer-001", Decimal("9.00"))
    assert confirmed.lines == (LineItem(sku="SKU-TEA", quantity=2, unit_price=Decimal("4.50")),)
    async with service.store.session() as session:
        assert (await session.scalars(select(Order.status))).one() == "confirmed"
        assert await saga.instance(session, OrderProcess, correlation) == ("confirmed", OrderProcess(order_id="o1"))


async def test_orders_ends_the_saga_as_the_order_ended_when_a_payment_finds_it_settled(start: Any) -> None:
    service = await start(lambda settings: orders.build(settings, serve_http=False))
    correlation = await _pending_order(service, settled_as="cancelled")
    outboxed = service.stats["outboxed"]
    await _pay(service, correlation)
    assert service.stats["outboxed"] == outboxed  # no OrderConfirmed for a cancelled order
    async with service.store.session() as session:
        order = (await session.scalars(select(Order))).one()
        assert (order.status, order.reason) == ("cancelled", "out-of-stock")
        assert await saga.instance(session, OrderProcess, correlation) == ("cancelled", OrderProcess(order_id="o1"))
