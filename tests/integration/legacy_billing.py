"""The legacy billing system both brokers' legacy-source tests translate, and the service that does: its documents
{"kind": ..., "invoice_no": 7, "total": "12.50"} and the event they become."""

from __future__ import annotations

from typing import Any

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.legacy import Ignore, LegacySource, Refuse, Translation
from tidings.service import Service
from tidings.transport import connect


class PaymentDue(Event, type="billing.payment.due", version=1):
    invoice: str
    cents: int

    def subject(self) -> str:
        return self.invoice


def to_payment(document: Any) -> Translation:
    """An invoice becomes `PaymentDue`; a heartbeat is ignored; any other kind is refused."""
    if document.get("kind") == "heartbeat":
        return Ignore("a heartbeat, not a fact")
    if document.get("kind") != "invoice":
        return Refuse(f"kind {document.get('kind')!r} is not an invoice")
    return PaymentDue(invoice=f"inv-{document['invoice_no']}", cents=round(float(document["total"]) * 100))


def billing_service(
    broker: str, source: LegacySource, *, database: str | None = None
) -> tuple[Service, list[tuple[PaymentDue, Envelope]]]:
    """A service named billing on `broker` that translates `source` and records each `PaymentDue` it
    handles with its incoming envelope."""
    service = Service("billing", broker=broker, database=database)
    service.connector = lambda url: connect(url, legacy=[source])
    handled: list[tuple[PaymentDue, Envelope]] = []

    @service.on(PaymentDue)
    async def record(event: PaymentDue, context: Context) -> None:
        assert context.incoming is not None
        handled.append((event, context.incoming))

    return service, handled
