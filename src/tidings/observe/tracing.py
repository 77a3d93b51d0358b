"""OpenTelemetry spans for the three moments of a message: create, send, process.

Only the OpenTelemetry *API* is used, and only when it is installed (`tidings[otel]`); the
application configures the SDK and its exporter. Without the API, or without an SDK, every
function here is a cheap no-op and `traceparent` is passed through from the incoming event.

A message's creation context travels in the envelope's `traceparent` (W3C trace context). The
process span is a *child* of that context, not merely linked to it, so one business transaction
is one trace across services (ADR 0008 explains this deviation from the conventions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from tidings.envelope import Envelope

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # tracing is optional
    trace = None  # type: ignore[assignment]

_SYSTEMS = {"amqp": "rabbitmq", "amqps": "rabbitmq"}
_propagator: Any = TraceContextTextMapPropagator() if trace is not None else None
_provider: Any = None
"""Set by `use_tracer_provider`; None means OpenTelemetry's global provider."""
_last: tuple[Any, Any] = (None, None)
"""(provider, its tracer) last used: an SDK builds a new tracer object on every `get_tracer`."""


def messaging_system(broker_url: str) -> str:
    """`messaging.system` for a broker URL: its scheme, with AMQP named as RabbitMQ."""
    scheme = broker_url.split(":", 1)[0]
    return _SYSTEMS.get(scheme, scheme)


def use_tracer_provider(provider: Any) -> None:
    """Send Tidings' spans to `provider` instead of the global one (None: the global one again)."""
    global _provider
    _provider = provider


def _tracer() -> Any:
    """The tracer to use, or None while no SDK is configured (the hooks then cost next to nothing)."""
    if trace is None:
        return None
    provider = _provider if _provider is not None else trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    global _last
    if _last[0] is not provider:
        _last = (provider, provider.get_tracer("tidings"))
    return _last[1]


def _parent(traceparent: str | None) -> Any:
    """The OpenTelemetry context carried by a `traceparent`, or None."""
    if traceparent is None or _propagator is None:
        return None
    return _propagator.extract({"traceparent": traceparent})


def _traceparent_of(span: Any) -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def creation_context(event_type: str, service: str, inherited: str | None) -> str | None:
    """The `traceparent` for a new message: a just-ended create span's context when tracing is
    on, else `inherited` (the incoming event's), so contexts still flow without an SDK."""
    tracer = _tracer()
    if tracer is None:
        return inherited
    span = tracer.start_span(
        f"create {event_type}",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            "messaging.operation.type": "create",
            "messaging.destination.name": event_type,
            "tidings.service": service,
        },
    )
    span.end()
    if not span.get_span_context().is_valid:  # no SDK: a non-recording span
        return inherited
    return _traceparent_of(span)


@contextlib.contextmanager
def sending(envelopes: Sequence[Envelope], system: str) -> Iterator[None]:
    """A send span around one `transport.publish` batch, linked to each message's creation context."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    links = []
    for envelope in envelopes:
        parent = _parent(envelope.traceparent)
        context = trace.get_current_span(parent).get_span_context() if parent is not None else None
        if context is not None and context.is_valid:
            links.append(trace.Link(context))
    with tracer.start_as_current_span(
        "send",
        kind=trace.SpanKind.CLIENT,
        links=links,
        attributes={
            "messaging.system": system,
            "messaging.operation.type": "send",
            "messaging.batch.message_count": len(envelopes),
        },
    ):
        yield


class Processing:
    """The process span of one delivery; every method is a no-op when tracing is off."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def outcome(self, outcome: str, error: BaseException | None = None) -> None:
        """How the delivery ended (`handled`, `duplicate`, `retried`, `dead_lettered`) and why."""
        if self._span is None:
            return
        self._span.set_attribute("tidings.outcome", outcome)
        if error is not None:
            self._span.record_exception(error)
            self._span.set_attribute("error.type", type(error).__qualname__)
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))


@contextlib.contextmanager
def processing(envelope: Envelope | None, attempt: int, group: str, system: str) -> Iterator[Processing]:
    """The current span while one delivery is handled: a child of the message's creation
    context. `envelope` is None for a message that could not be decoded."""
    tracer = _tracer()
    if tracer is None:
        yield Processing(None)
        return
    attributes: dict[str, Any] = {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": group,
        "messaging.message.delivery_attempt": attempt,
    }
    if envelope is not None:
        attributes["messaging.destination.name"] = envelope.type
        attributes["messaging.message.id"] = envelope.id
        if envelope.correlationid is not None:
            attributes["messaging.message.conversation_id"] = envelope.correlationid
    with tracer.start_as_current_span(
        f"process {envelope.type}" if envelope is not None else "process",
        context=_parent(envelope.traceparent if envelope is not None else None),
        kind=trace.SpanKind.CONSUMER,
        record_exception=False,  # outcomes are recorded explicitly: a retried error is not a crash
        set_status_on_exception=False,
        attributes=attributes,
    ) as span:
        yield Processing(span if span.is_recording() else None)
