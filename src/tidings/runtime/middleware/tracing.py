"""A `process` span around each delivery, a child of the creation context its envelope carries."""

from __future__ import annotations

from collections.abc import Callable

from tidings.observe import tracing
from tidings.runtime.pipeline import Handle, Message, Outcome


def with_tracing(group: str, system: str) -> Callable[[Handle], Handle]:
    """Open the span before anything else runs and record the outcome (and its error) on it; a
    no-op without an OpenTelemetry SDK."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            with tracing.processing(message.envelope, message.attempt, group, system) as span:
                outcome = await next_(message)
                span.outcome(outcome.kind, outcome.error)
            return outcome

        return handle

    return middleware
