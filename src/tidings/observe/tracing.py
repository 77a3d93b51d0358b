"""OpenTelemetry spans for the three moments of a message: create, send, process.

Only the OpenTelemetry *API* is used here, and only when it is installed (`tidings[otel]`);
`tidings.observe.setup` configures the SDK from the environment for `tidings run` and the shop.
Without the API, or without an SDK, every function here is a cheap no-op and `traceparent` is
passed through from the incoming event.

A message's creation context travels in the envelope's `traceparent` (W3C trace context). The
process span links to that context, as the messaging conventions ask, and is also its child, so
one business transaction is one trace across services (ADR 0008, ADR 0020). A create span is
started by `ctx.publish` and ended only when its unit of work commits (`end_created`): a span
that is never ended is never exported, so a rolled-back attempt leaves no create span behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tidings.envelope import Envelope
from tidings.observe import conventions as names
from tidings.observe.conventions import Broker

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # tracing is optional
    trace = None  # type: ignore[assignment]

_propagator: Any = TraceContextTextMapPropagator() if trace is not None else None
_provider: Any = None
"""Set by `use_tracer_provider`; None means OpenTelemetry's global provider."""
_last: tuple[Any, Any] = (None, None)
"""(provider, its tracer) last used: an SDK builds a new tracer object on every `get_tracer`."""
_GLOBAL_UNSET_IS_CHEAP = (
    trace is not None and hasattr(trace, "_TRACER_PROVIDER") and "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
)
"""Whether "no global provider yet" can be read from the API module's own variable. While none is
set, `trace.get_tracer_provider()` looks the provider's environment variable up on every call
(about a microsecond, which every delivery paid); without that variable at import the module's
`_TRACER_PROVIDER` says the same for nothing. Otherwise the public call is used."""


def use_tracer_provider(provider: Any) -> None:
    """Send Tidings' spans to `provider` instead of the global one (None: the global one again)."""
    global _provider
    _provider = provider


def _tracer() -> Any:
    """The tracer to use, or None while no SDK is configured (the hooks then cost next to nothing)."""
    if trace is None:
        return None
    if _provider is not None:
        provider = _provider
    elif _GLOBAL_UNSET_IS_CHEAP and trace._TRACER_PROVIDER is None:
        return None
    else:
        provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    global _last
    if _last[0] is not provider:
        _last = (provider, provider.get_tracer("tidings"))
    return _last[1]


def recording() -> bool:
    """Whether an SDK is configured, so that spans are recorded (the hooks are no-ops otherwise)."""
    return _tracer() is not None


def _context_of(traceparent: str | None) -> Any:
    """The OpenTelemetry context carried by a `traceparent`, or None."""
    if traceparent is None or _propagator is None:
        return None
    return _propagator.extract({"traceparent": traceparent})


def _span_context(traceparent: str | None) -> Any:
    """The valid span context a `traceparent` names, or None."""
    context = _context_of(traceparent)
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def _traceparent_of(span: Any) -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def current_traceparent() -> str | None:
    """The `traceparent` of the current span (an HTTP request's, a handler's), or None."""
    if trace is None:
        return None
    span = trace.get_current_span()
    return _traceparent_of(span) if span.get_span_context().is_valid else None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log lines; None outside any span."""
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def creation(event_type: str, service: str, broker: Broker, inherited: str | None) -> tuple[str | None, Any]:
    """Start the create span of a new message, a child of the current span; returns the message's
    `traceparent` and the span, which the caller ends once the message is committed (`end_created`).

    Without an SDK: (`inherited`, None), so contexts still flow to a traced service further on.
    """
    tracer = _tracer()
    if tracer is None:
        return inherited, None
    attributes = broker.attributes("create")
    attributes[names.CE_TYPE] = event_type
    attributes[names.SERVICE] = service
    if broker.routes_by_type:
        attributes[names.ROUTING_KEY] = event_type
    span = tracer.start_span(f"create {event_type}", kind=trace.SpanKind.PRODUCER, attributes=attributes)
    if not span.get_span_context().is_valid:  # no SDK: a non-recording span
        return inherited, None
    return _traceparent_of(span), span


def describe_created(span: Any, envelope: Envelope) -> None:
    """Name the message a create span is about, once its envelope exists."""
    if span is not None:
        span.set_attribute(names.MESSAGE_ID, envelope.id)
        span.set_attribute(names.CE_ID, envelope.id)
        span.set_attribute(names.CE_SOURCE, envelope.source)
        if envelope.correlationid is not None:
            span.set_attribute(names.CONVERSATION_ID, envelope.correlationid)


def end_created(spans: Iterable[Any]) -> None:
    """End the create spans of messages whose unit of work committed (they are then exported)."""
    for span in spans:
        if span is not None:
            span.end()


@contextlib.contextmanager
def sending(envelopes: Sequence[Envelope], broker: Broker) -> Iterator[None]:
    """A send span around one `transport.publish` batch, linked to each message's creation context."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    links = [trace.Link(context) for e in envelopes if (context := _span_context(e.traceparent)) is not None]
    attributes = broker.attributes("send")
    attributes[names.BATCH_COUNT] = len(envelopes)
    types = {envelope.type for envelope in envelopes}
    if len(envelopes) == 1:
        attributes[names.MESSAGE_ID] = envelopes[0].id
    if broker.routes_by_type and len(types) == 1:
        attributes[names.ROUTING_KEY] = next(iter(types))
    name = f"send {next(iter(types))}" if len(types) == 1 else "send"
    with tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, links=links, attributes=attributes):
        yield


class Processing:
    """The process span of one delivery; every method is a no-op when tracing is off."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def outcome(self, outcome: str, error: BaseException | None = None) -> None:
        """How the delivery ended (`handled`, `duplicate`, `retried`, `dead_lettered`) and why."""
        if self._span is None:
            return
        self._span.set_attribute(names.OUTCOME, outcome)
        if error is not None:
            self._span.record_exception(error)
            self._span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))


@contextlib.contextmanager
def processing(
    envelope: Envelope | None, attempt: int, group: str, broker: Broker, position: Any = None
) -> Iterator[Processing]:
    """The current span while one delivery is handled: linked to the message's creation context and
    its child. `envelope` is None for a message that could not be decoded; `position` is a Kafka
    record's (partition, offset, key), if known."""
    tracer = _tracer()
    if tracer is None:
        yield Processing(None)
        return
    attributes = broker.attributes("process")
    attributes[names.GROUP] = group
    attributes[names.ATTEMPT] = attempt
    links = []
    if envelope is not None:
        attributes[names.MESSAGE_ID] = envelope.id
        attributes[names.CE_ID] = envelope.id
        attributes[names.CE_TYPE] = envelope.type
        attributes[names.CE_SOURCE] = envelope.source
        if envelope.correlationid is not None:
            attributes[names.CONVERSATION_ID] = envelope.correlationid
        if broker.routes_by_type:
            attributes[names.ROUTING_KEY] = envelope.type
        creation_context = _span_context(envelope.traceparent)
        if creation_context is not None:
            links.append(trace.Link(creation_context))
    if position is not None:
        partition, offset, key = position
        attributes[names.PARTITION] = str(partition)
        attributes[names.KAFKA_OFFSET] = offset
        if key is not None:
            attributes[names.KAFKA_KEY] = key
    with tracer.start_as_current_span(
        f"process {envelope.type}" if envelope is not None else "process",
        context=_context_of(envelope.traceparent if envelope is not None else None),
        kind=trace.SpanKind.CONSUMER,
        links=links,
        record_exception=False,  # outcomes are recorded explicitly: a retried error is not a crash
        set_status_on_exception=False,
        attributes=attributes,
    ) as span:
        yield Processing(span if span.is_recording() else None)


@contextlib.contextmanager
def continuing(traceparent: str | None, name: str, attributes: dict[str, Any]) -> Iterator[None]:
    """An INTERNAL span, current while the block runs, that continues the trace `traceparent`
    names (a saga's timeout continues its transaction's trace); a no-op without an SDK."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    with tracer.start_as_current_span(
        name, context=_context_of(traceparent), kind=trace.SpanKind.INTERNAL, attributes=attributes
    ):
        yield
