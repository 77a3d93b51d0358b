"""One service's observability: its metrics and the attributes its spans share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from tidings.envelope import Envelope
from tidings.observe import tracing
from tidings.observe.metrics import ServiceMetrics


class Telemetry:
    """Handed to the parts of a service that send or process messages (runtime, relay)."""

    def __init__(self, service: str, broker_url: str) -> None:
        self.service = service
        self.system = tracing.messaging_system(broker_url)
        self.metrics = ServiceMetrics(service)

    @contextlib.contextmanager
    def sending(self, envelopes: Sequence[Envelope]) -> Iterator[None]:
        """Around one `transport.publish`: a send span, and the published count once it returned."""
        with tracing.sending(envelopes, self.system):
            yield
        self.metrics.record_published(envelope.type for envelope in envelopes)
