"""The orders service: the HTTP API, the catalog and the order saga, in one process and loop.

The API server and the deadline sweep are components of the `ShopService`, so they start after
the database is ready and the consumer runs, and they stop (API first) before it drains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.contracts import (
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    PaymentCompleted,
    PaymentFailed,
    StockReservationFailed,
)
from services.kit.service import Component, ShopService, run_main
from services.orders.deadlines import DeadlineSweep
from services.orders.models import Base, seed_catalog
from services.orders.saga import on_payment_completed, on_payment_failed, on_stock_reservation_failed
from services.orders.server import ApiServer
from services.settings import Settings


def build(settings: Settings, *, serve_http: bool = True) -> ShopService:
    """The orders service; `serve_http=False` leaves the API to the caller (tests mount the app)."""
    components: list[Callable[[ShopService], Component]] = [DeadlineSweep]
    if serve_http:
        components.insert(0, ApiServer)
    service = ShopService("orders", settings, metadata=Base.metadata, seeders=[seed_catalog], components=components)
    service.on(StockReservationFailed)(on_stock_reservation_failed)
    service.on(PaymentFailed)(on_payment_failed)
    service.on(PaymentCompleted)(on_payment_completed)
    service.publishes(OrderCreated, OrderConfirmed, OrderCancelled)
    return service


service = build(Settings.from_env())
"""For `tidings run services.orders.service:service`; configured by `SHOP_*` variables."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
