"""The context a handler receives: the incoming envelope, the transaction, and `publish`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tidings.envelope import MAX_SOURCE_LENGTH, Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event
from tidings.observe import tracing
from tidings.observe.telemetry import broker_for

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from tidings.store.transaction import Transaction

_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")


def service_source(service: str, configured: str | None = None) -> str:
    """The CloudEvents `source` of the events `service` publishes: `configured`, else
    `urn:tidings:<service>`. An absolute URI, as the spec recommends (a bare name is only a
    relative URI-reference). Only the wire carries it: the store keys a service's outbox rows,
    relay lease and parked rows by the service name, so changing it needs no migration."""
    source = f"urn:tidings:{service}" if configured is None else configured
    if not _ABSOLUTE_URI.fullmatch(source) or len(source) > MAX_SOURCE_LENGTH:
        raise ConfigurationError(
            f"the source of service {service!r} must be an absolute URI of at most {MAX_SOURCE_LENGTH} "
            f"characters (e.g. urn:tidings:{service} or https://example.com/{service}), got {source!r}"
        )
    return source


class Context:
    """What a handler (or a state-changing request) may do besides its own logic.

    `service` is the publishing service's name; `source` the URI its events carry (by default
    `urn:tidings:<service>`, see `service_source`).

    `session` (the ORM) and `connection` (SQLAlchemy Core, without the ORM's per-statement work)
    are the same database transaction; statements on either commit together.

    `publish` only records the event: the runtime sends what was recorded after the handler
    returned, through the outbox in the same transaction as `session` when the service has a
    database, so no event leaves for a change that rolled back. Follow-up events inherit the
    incoming event's `correlationid`, and take its id as `causationid`. Their `traceparent` is
    their own creation context when OpenTelemetry tracing is on, else the incoming one's.
    The create spans end in `committed()`, which the unit of work calls after its commit: a
    rolled-back attempt leaves none.
    """

    def __init__(
        self,
        service: str,
        *,
        source: str | None = None,
        incoming: Envelope | None = None,
        attempt: int = 1,
    ) -> None:
        self.service = service
        self.source = source or f"urn:tidings:{service}"
        self.incoming = incoming
        self.attempt = attempt
        self._transaction: Transaction | None = None
        self.outgoing: list[Envelope] = []
        self._created: list[object] = []

    def bind(self, transaction: Transaction) -> None:
        """Attach the transaction this unit of work runs in (done by the runtime when it opens it)."""
        self._transaction = transaction

    @property
    def session(self) -> AsyncSession:
        """An ORM session in the service database transaction the handler's writes belong to."""
        return self._bound().session

    @property
    def connection(self) -> AsyncConnection:
        """The same transaction's connection, for Core statements (`insert(table)`, `text(...)`):
        cheaper per statement than `session`, which adds the ORM's work to each."""
        return self._bound().connection

    def _bound(self) -> Transaction:
        if self._transaction is None:
            raise ConfigurationError(f"service {self.service!r} has no database: pass database=... to Service")
        return self._transaction

    def publish(self, event: Event, *, correlationid: str | None = None) -> Envelope:
        """Record `event` to be published once this unit of work commits; returns its envelope."""
        incoming = self.incoming
        inherited = incoming.traceparent if incoming else None
        traceparent, span = tracing.creation(event.event_type, self.service, broker_for(self.service), inherited)
        envelope = Envelope.wrap(
            event,
            source=self.source,
            correlationid=correlationid or (incoming.correlationid if incoming else None),
            causationid=incoming.id if incoming else None,
            traceparent=traceparent,
        )
        if span is not None:
            tracing.describe_created(span, envelope)
            self._created.append(span)
        self.outgoing.append(envelope)
        return envelope

    def committed(self) -> None:
        """The unit of work committed (or, without a database, is about to publish): end the create
        spans of what it published, so they are exported."""
        created, self._created = self._created, []
        tracing.end_created(created)

    @property
    def trace_context(self) -> str | None:
        """The `traceparent` of the business transaction this unit of work belongs to: the incoming
        event's, the current span's (an instrumented HTTP request, a saga's timeout), or that of the
        first event it published; None when tracing knows none (a saga keeps it for its timeout)."""
        if self.incoming is not None and self.incoming.traceparent is not None:
            return self.incoming.traceparent
        found = tracing.current_traceparent()
        if found is None and self.outgoing:
            found = self.outgoing[0].traceparent
        return found
