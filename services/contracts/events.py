"""Events of the order flow, in the order they usually happen.

Amounts are `Decimal` with two places (JSON strings on the wire, never floats); ids are strings
(UUIDs minted by the service that owns the aggregate). Every event is about one order, so its
`subject` and `partition_key` are the order id: a group that promises per-key ordering sees one
order's events in publish order.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tidings import Event

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Quantity = Annotated[int, Field(gt=0, le=10_000)]


class LineItem(BaseModel):
    """One order line as priced by the orders service's catalog when the order was placed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    quantity: Quantity
    unit_price: Money


class ReservedLine(BaseModel):
    """A quantity of one sku held or released by inventory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    quantity: Quantity


class CancelReason(StrEnum):
    OUT_OF_STOCK = "out-of-stock"
    PAYMENT_FAILED = "payment-failed"
    DEADLINE_EXCEEDED = "deadline-exceeded"


class OrderEvent(Event):
    """Base of every shop event: about one order, keyed by its id."""

    order_id: str

    def subject(self) -> str:
        return self.order_id

    def partition_key(self) -> str:
        return self.order_id


class OrderCreated(OrderEvent, type="shop.order.created", version=1):
    """A customer placed an order; it is pending until confirmed or cancelled by `deadline`."""

    customer_id: str
    lines: tuple[LineItem, ...] = Field(min_length=1)
    total: Money


class LegacyOrderPlaced(OrderEvent, type="shop.order.legacy-placed", version=1):
    """An order of the legacy order system (ADR-001's publisher, queue `order_events`), as the
    orders service's legacy source translates it: `order_id` is `legacy-<its id>`."""

    legacy_order_id: str
    amount: Money


class StockReserved(OrderEvent, type="shop.stock.reserved", version=1):
    """Inventory holds every line of the order; payments may now charge `amount`."""

    customer_id: str
    amount: Money
    lines: tuple[ReservedLine, ...]


class StockReservationFailed(OrderEvent, type="shop.stock.reservation-failed", version=1):
    """At least one line could not be held, so none is (all or nothing)."""

    short: tuple[ReservedLine, ...]
    """The lines that lacked stock, with the quantity that was missing."""


class PaymentCompleted(OrderEvent, type="shop.payment.completed", version=1):
    payment_id: str
    customer_id: str
    amount: Money


class PaymentFailed(OrderEvent, type="shop.payment.failed", version=1):
    customer_id: str
    amount: Money
    reason: str


class OrderConfirmed(OrderEvent, type="shop.order.confirmed", version=1):
    """Stock held and payment captured: inventory commits the stock, shipping ships."""

    customer_id: str
    lines: tuple[LineItem, ...]
    total: Money


class OrderCancelled(OrderEvent, type="shop.order.cancelled", version=1):
    """Terminal failure: whoever did something for this order undoes it (release, refund)."""

    customer_id: str
    reason: CancelReason
    detail: str = ""


class StockReleased(OrderEvent, type="shop.stock.released", version=1):
    lines: tuple[ReservedLine, ...]


class PaymentRefunded(OrderEvent, type="shop.payment.refunded", version=1):
    payment_id: str
    customer_id: str
    amount: Money


class ShipmentCreated(OrderEvent, type="shop.shipment.created", version=1):
    shipment_id: str
    customer_id: str
    lines: tuple[ReservedLine, ...]
