"""docs/asyncapi/shop.json is what `tidings asyncapi` makes of the shop's services today."""

from __future__ import annotations

import json
from pathlib import Path

from services.inventory.service import service as inventory
from services.notifications.service import service as notifications
from services.orders.service import service as orders
from services.payments.service import service as payments
from services.shipping.service import service as shipping
from tidings.asyncapi import document

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi" / "shop.json"
COMMAND = (
    "tidings asyncapi services.orders.service:service services.inventory.service:service "
    "services.payments.service:service services.shipping.service:service "
    "services.notifications.service:service --title 'Tidings reference shop' -o docs/asyncapi/shop.json"
)


def test_the_published_document_matches_the_services() -> None:
    current = document([orders, inventory, payments, shipping, notifications], title="Tidings reference shop")
    assert json.loads(DOCUMENT.read_text()) == current, f"regenerate it: {COMMAND}"


def test_every_published_type_is_received_by_someone_and_every_received_type_published() -> None:
    shop = [orders, inventory, payments, shipping, notifications]
    published = {event_type for service in shop for event_type in service.published_types}
    received = {event_type for service in shop for event_type in service.handled_types}
    assert received <= published, f"handled but never published: {received - published}"
    assert published - received <= {"shop.shipment.created", "shop.payment.refunded", "shop.stock.released"}
