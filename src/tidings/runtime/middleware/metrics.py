"""Count each delivery by type and outcome, and time its handling (unit of work included)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tidings.observe.metrics import ServiceMetrics
from tidings.runtime.pipeline import MALFORMED, Handle, Message, Outcome


def with_metrics(metrics: ServiceMetrics) -> Callable[[Handle], Handle]:
    """Record `handled_total{type, outcome}` and the handler-duration histogram; a delivery that did
    not decode counts under the type `(malformed)` and is not timed."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            if message.envelope is None:
                outcome = await next_(message)
                metrics.record_delivery(MALFORMED, outcome.kind)
                return outcome
            started = time.perf_counter()
            outcome = await next_(message)
            metrics.record_delivery(message.envelope.type, outcome.kind, time.perf_counter() - started)
            return outcome

        return handle

    return middleware
