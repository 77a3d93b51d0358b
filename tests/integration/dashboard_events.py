"""Events for the dashboard tests; also the `--events` module of the `tidings dashboard` process."""

from __future__ import annotations

from tidings.events import Event


class OrderPlaced(Event, type="test.dash.order.placed", version=1):
    order_id: str
    doomed: bool = False

    def subject(self) -> str:
        return self.order_id


class StockReserved(Event, type="test.dash.stock.reserved", version=1):
    order_id: str

    def subject(self) -> str:
        return self.order_id


class NoteTaken(Event, type="test.dash.note.taken", version=1):
    """A bulky event for the retention soak: a short subject, a large body."""

    key: str
    text: str

    def subject(self) -> str:
        return self.key
