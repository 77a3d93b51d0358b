"""What a service's `/metrics`, `/health`, `/health/live` and `/health/ready` answer, from the
parts that know (readiness itself is `tidings.runtime.readiness`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from sqlalchemy import select

from tidings.observe import ServiceMetrics
from tidings.observe.http import serve
from tidings.observe.metrics import Gauges
from tidings.runtime.supervisor import Supervisor
from tidings.store import Store, outbox, parked
from tidings.store.tables import outbox as outbox_table
from tidings.transport.base import Transport

log = logging.getLogger("tidings.service")

DEAD_LETTERS_COUNTED = 10_000
"""The dead-letter gauge counts up to this many per group (a scrape must stay cheap)."""
GAUGE_TIMEOUT = 2.0
"""Seconds the database's and the broker's gauges may take: a broker that is away (a client
waiting to reconnect) must not hang the scrape; the gauges are left out instead."""


async def scrape(
    metrics: ServiceMetrics,
    owner: str,
    store: Store | None,
    transport: Transport | None,
    group: str | None,
    supervisor: Supervisor | None = None,
) -> str:
    """The Prometheus text of a service: its counters, its outbox (pending, parked, oldest age),
    its group's lag and dead letters (if it consumes), and its background tasks' states.

    A gauge whose source cannot be read (database or broker down) is left out, so the counters
    still reach the scraper; the outbox age is exactly what grows while the broker is away.
    """
    gauges = Gauges()
    if store is not None:
        try:
            async with asyncio.timeout(GAUGE_TIMEOUT), store.session() as session, session.begin():
                gauges.outbox_pending = await outbox.pending_count(session, owner)
                gauges.outbox_parked = await parked.count(session, owner)
                oldest = select(outbox_table.c.created_at).where(outbox_table.c.source == owner)
                created = (await session.execute(oldest.order_by(outbox_table.c.id).limit(1))).scalar()
                gauges.outbox_oldest_age = 0.0 if created is None else max(0.0, time.time() - created)
        except Exception as error:
            log.warning("%s: outbox gauges unavailable for /metrics: %r", owner, error)
    if transport is not None and group is not None:
        try:
            async with asyncio.timeout(GAUGE_TIMEOUT):
                lag = await transport.backlog()
                gauges.backlog = {group: lag.get(group, 0)}
                letters = await transport.dead_letters(group, limit=DEAD_LETTERS_COUNTED)
                gauges.dead_letters = {group: len(letters)}
        except Exception as error:
            log.warning("%s: consumer gauges unavailable for /metrics: %r", owner, error)
    if supervisor is not None:
        gauges.tasks, gauges.restarts = supervisor.health(), supervisor.crashes()
    return metrics.render(gauges=gauges)


class Observable(Protocol):
    name: str

    async def scrape(self) -> str: ...

    def health(self) -> dict[str, object]: ...

    async def ready(self) -> dict[str, Any]: ...


async def serve_endpoint(service: Observable, host: str, port: int) -> tuple[asyncio.Server, int]:
    """Serve `GET /metrics`, `/health`, `/health/live` and `/health/ready` of `service` on
    `host:port`; the server and its port."""
    server = await serve(service.scrape, service.health, host, port, ready=service.ready)
    bound: int = server.sockets[0].getsockname()[1]
    log.info("service %s serves /metrics and /health/ready on %s:%d", service.name, host, bound)
    return server, bound


def report(owner: str, *, phase: str, supervisor: Supervisor, stats: dict[str, int]) -> dict[str, object]:
    """`up` only while every background task runs (HTTP 200); `degraded` while one restarts,
    `failed` once one died for good, else the service's `phase` (`starting`, `stopping`,
    `stopped`; all HTTP 503); and each task's state."""
    if supervisor.failure is not None:
        status = "failed"
    elif phase != "running":
        status = phase
    else:
        status = "up" if supervisor.healthy else "degraded"
    return {"service": owner, "status": status, "tasks": supervisor.health(), "stats": stats}
