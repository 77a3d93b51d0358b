"""The orders service: the HTTP API, the catalog and the order saga, in one process and loop.

The API server is a component of the service, so it starts after the database is ready and
the consumer runs, and it stops before the consumer drains. The order process is a saga
(`services.orders.saga.OrderProcess`): the library keeps its state and times it out.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.contracts import LegacyOrderPlaced, OrderCancelled, OrderConfirmed, OrderCreated
from services.kit.service import ComponentFactory, run_main, shop_service
from services.orders.idempotency import purge_forever
from services.orders.legacy import ORDER_EVENTS, take_legacy_orders
from services.orders.models import Base, seed_catalog
from services.orders.saga import OrderProcess
from services.orders.server import ApiServer
from services.settings import Settings
from tidings.service import Service


def build(settings: Settings, *, serve_http: bool = True) -> Service:
    """The orders service; `serve_http=False` leaves the API to the caller (tests mount the app)."""
    components: list[ComponentFactory] = [ApiServer] if serve_http else []
    service = shop_service(
        "orders", settings, tables=Base.metadata, seeders=[seed_catalog], components=components, legacy=[ORDER_EVENTS]
    )
    service.saga(OrderProcess)
    take_legacy_orders(service, settings)
    service.background("idempotency-retention", lambda: purge_forever(service))
    service.publishes(OrderCreated, OrderConfirmed, OrderCancelled, LegacyOrderPlaced)  # the last: its legacy source
    return service


service = build(Settings.from_env())
"""For `tidings run services.orders.service:service`; configured by `SHOP_*` variables."""


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
