"""The middleware chain of a service, outermost first: the one place that says what wraps what.

    tracing ─► settlement ─► metrics ─► retry ─► unit of work ─► inbox ─► handler

Tracing is outermost so that the span covers the settlement (the ack is part of processing);
metrics time the handling with its commit but not the ack; retry sees every error of the unit of
work (a failed commit retries like a failed handler); the inbox claim runs inside the transaction.
A delivery that did not decode goes through the same edge (tracing, settlement, metrics) to
`reject`, which dead-letters a malformed message at once and retries a decoder's bug.
"""

from __future__ import annotations

from collections import Counter

from tidings.observe import Telemetry
from tidings.retry import RetryPolicy
from tidings.runtime.middleware.inbox import with_inbox
from tidings.runtime.middleware.metrics import with_metrics
from tidings.runtime.middleware.retry import with_retry
from tidings.runtime.middleware.settlement import with_settlement
from tidings.runtime.middleware.tracing import with_tracing
from tidings.runtime.middleware.unit_of_work import with_unit_of_work
from tidings.runtime.pipeline import Middleware, Pipeline, compose, reject, route
from tidings.runtime.routing import Routes
from tidings.runtime.unit_of_work import UnitOfWork


def pipeline(
    group: str, routes: Routes, unit: UnitOfWork, retry: RetryPolicy, telemetry: Telemetry, stats: Counter[str]
) -> Pipeline:
    """The pipeline of the service `telemetry.service` consuming as `group`; the inbox only with a database."""
    owner = telemetry.service
    edge: list[Middleware] = [
        with_tracing(group, telemetry.system),
        with_settlement(owner, stats),
        with_metrics(telemetry.metrics),
    ]
    work: list[Middleware] = [with_retry(owner, retry), with_unit_of_work(unit)]
    if unit.store is not None:
        work.append(with_inbox(group))
    return Pipeline(owner, routes, compose(*edge, *work)(route(routes)), compose(*edge)(reject(retry)))
