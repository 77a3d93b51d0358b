"""One service's observability: its metrics and what its spans say about its broker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from tidings.envelope import Envelope
from tidings.observe import tracing
from tidings.observe.conventions import Broker, broker_of
from tidings.observe.metrics import ServiceMetrics

_brokers: dict[str, Broker] = {}
"""Service name -> its broker, for the create spans of `Context.publish` (which knows only the
service's name). Several services of one name in one process share a broker in practice."""


def broker_for(service: str) -> Broker:
    """The broker a service named `service` talks to, as its spans describe it."""
    return _brokers.get(service) or Broker("tidings.unknown", "events")


class Telemetry:
    """Handed to the parts of a service that send or process messages (runtime, relay)."""

    def __init__(self, service: str, broker_url: str) -> None:
        self.service = service
        self.broker = broker_of(broker_url) if broker_url else Broker("tidings.unknown", "events")
        if broker_url:
            _brokers[service] = self.broker
        self.metrics = ServiceMetrics(service)

    @property
    def system(self) -> str:
        """`messaging.system` of the service's broker."""
        return self.broker.system

    @contextlib.contextmanager
    def sending(self, envelopes: Sequence[Envelope]) -> Iterator[None]:
        """Around one `transport.publish`: a send span, and the published count once it returned."""
        with tracing.sending(envelopes, self.broker):
            yield
        self.metrics.record_published(envelope.type for envelope in envelopes)
