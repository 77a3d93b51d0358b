"""Count each delivery by type and outcome, time its handling (unit of work included), and log
it as one structured line (`tidings.observe.logs.delivery`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tidings.observe import logs
from tidings.observe.metrics import ServiceMetrics
from tidings.runtime.pipeline import MALFORMED, Handle, Message, Outcome


def with_metrics(metrics: ServiceMetrics, group: str) -> Callable[[Handle], Handle]:
    """Record `handled_total{type, outcome}` and the handler-duration histogram; a delivery that did
    not decode counts under the type `(malformed)` and is not timed. Each delivery is one line on
    the `tidings.events` logger (off unless JSON logs or DEBUG are on)."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            started = time.perf_counter()
            outcome = await next_(message)
            seconds = time.perf_counter() - started
            envelope = message.envelope
            if envelope is None:
                metrics.record_delivery(MALFORMED, outcome.kind)
            else:
                metrics.record_delivery(envelope.type, outcome.kind, seconds)
            if logs.EVENTS.isEnabledFor(logs.INFO):
                fields = {
                    "service": metrics.service,
                    "group": group,
                    "event_id": envelope.id if envelope else None,
                    "event_type": envelope.type if envelope else MALFORMED,
                    "correlation_id": envelope.correlationid if envelope else None,
                    "outcome": outcome.kind,
                    "attempt": message.attempt,
                    "duration_ms": round(seconds * 1000, 3),
                }
                if outcome.error is not None:
                    fields["error"] = f"{type(outcome.error).__name__}: {outcome.error}"[:500]
                logs.delivery(fields)
            return outcome

        return handle

    return middleware
