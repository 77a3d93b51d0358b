"""The middleware chain of a service, outermost first: the one place that says what wraps what.

    tracing ─► settlement ─► metrics ─► [verification] ─► retry ─► unit of work ─► inbox ─► handler

Tracing is outermost so that the span covers the settlement (the ack is part of processing);
metrics time the handling with its commit but not the ack; retry sees every error of the unit of
work (a failed commit retries like a failed handler); the inbox claim runs inside the transaction.
A delivery that did not decode goes through the same edge (tracing, settlement, metrics) to
`reject`, which dead-letters a malformed message at once and retries a decoder's bug; one that
another member of the group may handle (a rolling deploy) goes to `hand_over`.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from tidings.observe import Telemetry
from tidings.retry import RetryPolicy
from tidings.runtime.middleware.inbox import with_inbox
from tidings.runtime.middleware.metrics import with_metrics
from tidings.runtime.middleware.retry import with_retry
from tidings.runtime.middleware.settlement import with_settlement
from tidings.runtime.middleware.tracing import with_tracing
from tidings.runtime.middleware.unit_of_work import with_unit_of_work
from tidings.runtime.middleware.verification import with_verification
from tidings.runtime.pipeline import Middleware, Pipeline, compose, hand_over, reject, route
from tidings.runtime.routing import Routes
from tidings.runtime.unit_of_work import UnitOfWork
from tidings.security.signing import Signing


class Declared(Protocol):
    """What the chain needs of a service's declaration (`tidings.service.Service` has it)."""

    group: str
    routes: Routes
    retry: RetryPolicy
    handover: RetryPolicy
    telemetry: Telemetry
    stats: Counter[str]
    signing: Signing | None


def pipeline(service: Declared, unit: UnitOfWork, *, members_share_types: bool) -> Pipeline:
    """The pipeline of `service` consuming as its group: the inbox only with a database;
    `service.handover` paces giving back what another member of the group may handle."""
    owner, group, routes, retry = service.telemetry.service, service.group, service.routes, service.retry
    service.telemetry.metrics.declare(routes.types)  # every type's series exist from the start, at 0
    edge: list[Middleware] = [
        with_tracing(group, service.telemetry.broker),
        with_settlement(owner, service.stats),
        with_metrics(service.telemetry.metrics, group),
    ]
    verifier = service.signing.verifier if service.signing is not None else None
    trust = [with_verification(owner, verifier)] if verifier is not None else []  # signed events only
    work: list[Middleware] = [*trust, with_retry(owner, retry), with_unit_of_work(unit)]
    if unit.store is not None:
        work.append(with_inbox(group))
    return Pipeline(
        owner,
        routes,
        compose(*edge, *work)(route(routes)),
        compose(*edge)(reject(retry)),
        compose(*edge)(hand_over(group, service.handover)),
        shared=members_share_types,
    )
