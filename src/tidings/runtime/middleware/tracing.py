"""A `process` span around each delivery, linked to (and a child of) the creation context its
envelope carries."""

from __future__ import annotations

from collections.abc import Callable

from tidings.observe import tracing
from tidings.observe.conventions import Broker
from tidings.runtime.pipeline import Handle, Message, Outcome


def with_tracing(group: str, broker: Broker) -> Callable[[Handle], Handle]:
    """Open the span before anything else runs and record the outcome (and its error) on it; a
    no-op without an OpenTelemetry SDK. A delivery that knows its place in a partitioned log (a
    Kafka record's `position`: partition, offset, key) says so on the span."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            if not tracing.recording():
                return await next_(message)  # no span to open: skip the context manager per delivery
            position = getattr(message.delivery, "position", None)
            with tracing.processing(message.envelope, message.attempt, group, broker, position) as span:
                outcome = await next_(message)
                span.outcome(outcome.kind, outcome.error)
            return outcome

        return handle

    return middleware
