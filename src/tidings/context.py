"""The context a handler receives: the incoming envelope, the transaction, and `publish`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event
from tidings.observe import tracing
from tidings.observe.telemetry import broker_for

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class Context:
    """What a handler (or a state-changing request) may do besides its own logic.

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
        incoming: Envelope | None = None,
        attempt: int = 1,
        session: AsyncSession | None = None,
    ) -> None:
        self.service = service
        self.incoming = incoming
        self.attempt = attempt
        self._session = session
        self.outgoing: list[Envelope] = []
        self._created: list[object] = []

    def bind(self, session: AsyncSession) -> None:
        """Attach the transaction this unit of work runs in (done by the runtime when it opens it)."""
        self._session = session

    @property
    def session(self) -> AsyncSession:
        """The service database transaction the handler's writes belong to."""
        if self._session is None:
            raise ConfigurationError(f"service {self.service!r} has no database: pass database=... to Service")
        return self._session

    def publish(self, event: Event, *, correlationid: str | None = None) -> Envelope:
        """Record `event` to be published once this unit of work commits; returns its envelope."""
        incoming = self.incoming
        inherited = incoming.traceparent if incoming else None
        traceparent, span = tracing.creation(event.event_type, self.service, broker_for(self.service), inherited)
        envelope = Envelope.wrap(
            event,
            source=self.service,
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
