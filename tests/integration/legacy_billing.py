"""The legacy billing system both brokers' legacy-source tests translate: its documents
{"kind": ..., "invoice_no": 7, "total": "12.50"} and the event they become."""

from __future__ import annotations

from typing import Any

from tidings.events import Event
from tidings.legacy import Ignore, Refuse, Translation


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
