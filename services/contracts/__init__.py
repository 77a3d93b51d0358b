"""The shop's published language: the events every service may publish or consume.

A service imports these classes and nothing else from another service. Each class names its
wire type and version once; an incompatible change gets a new version and an upcaster here.
"""

from services.contracts.events import (
    CancelReason,
    LegacyOrderPlaced,
    LineItem,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderEvent,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    ReservedLine,
    ShipmentCreated,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)

__all__ = [
    "CancelReason",
    "LegacyOrderPlaced",
    "LineItem",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderCreated",
    "OrderEvent",
    "PaymentCompleted",
    "PaymentFailed",
    "PaymentRefunded",
    "ReservedLine",
    "ShipmentCreated",
    "StockReleased",
    "StockReservationFailed",
    "StockReserved",
]
