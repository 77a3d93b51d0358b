"""What a service's `/metrics` and `/health` answer, from the parts that know."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from tidings.observe import ServiceMetrics
from tidings.observe.http import serve
from tidings.runtime.supervisor import Supervisor
from tidings.store import Store, outbox, parked
from tidings.transport.base import Transport

log = logging.getLogger("tidings.service")


async def scrape(
    metrics: ServiceMetrics, owner: str, store: Store | None, transport: Transport | None, group: str | None
) -> str:
    """The Prometheus text of a service, with its outbox backlog and parked rows and (if it consumes)
    its group's lag.

    A gauge whose source cannot be read (database or broker down) is left out, so the counters
    still reach the scraper.
    """
    pending: int | None = None
    parked_rows: int | None = None
    backlog: dict[str, int] | None = None
    if store is not None:
        try:
            async with store.session() as session, session.begin():
                pending = await outbox.pending_count(session, owner)
                parked_rows = await parked.count(session, owner)
        except Exception as error:
            log.warning("%s: outbox backlog unavailable for /metrics: %r", owner, error)
    if transport is not None and group is not None:
        try:
            lag = await transport.backlog()
            backlog = {group: lag.get(group, 0)}
        except Exception as error:
            log.warning("%s: consumer backlog unavailable for /metrics: %r", owner, error)
    return metrics.render(outbox_pending=pending, backlog=backlog, outbox_parked=parked_rows)


class Observable(Protocol):
    name: str

    async def scrape(self) -> str: ...

    def health(self) -> dict[str, object]: ...


async def serve_endpoint(service: Observable, host: str, port: int) -> tuple[asyncio.Server, int]:
    """Serve `GET /metrics` and `GET /health` of `service` on `host:port`; the server and its port."""
    server = await serve(service.scrape, service.health, host, port)
    bound: int = server.sockets[0].getsockname()[1]
    log.info("service %s serves /metrics on %s:%d", service.name, host, bound)
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
