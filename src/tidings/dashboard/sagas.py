"""Saga instances as the dashboard shows them, read (never written) from the `tidings_sagas` table
of each service database it is told about (`DashboardConfig.saga_databases`).

Each instance gets a phase the list filters on: `running` (not ended, deadline not passed),
`timed-out` (ended as `timed-out`, or running past its deadline), `compensating` (ended by
compensation — `compensated`, `cancelled` — or running with compensations recorded) and `ended`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row

from tidings.store import Store
from tidings.store.tables import sagas

log = logging.getLogger("tidings.dashboard")

PHASES = ("running", "compensating", "timed-out", "ended")
COMPENSATED = frozenset({"compensating", "compensated", "cancelled"})


def phase(status: str, deadline: float | None, compensations: list[Any], now: float) -> str:
    if status == "running":
        if deadline is not None and deadline <= now:
            return "timed-out"
        return "compensating" if compensations else "running"
    if status == "timed-out":
        return "timed-out"
    return "compensating" if status in COMPENSATED else "ended"


class SagaReader:
    """Reads saga rows from `databases` (service name -> URL); opens each store on first use."""

    def __init__(self, databases: Mapping[str, str]) -> None:
        self.databases = dict(databases)
        self._stores: dict[str, Store] = {}

    async def _store(self, service: str) -> Store:
        if service not in self._stores:
            self._stores[service] = await Store.open(self.databases[service], migrate=False, read_only=True)
        return self._stores[service]

    async def rows(self, *, correlation: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Newest first; a database that cannot be read is logged and left out."""
        now = time.time()
        found: list[dict[str, Any]] = []
        for service in self.databases:
            statement = select(sagas).order_by(sagas.c.updated_at.desc()).limit(limit)
            if correlation is not None:
                statement = statement.where(sagas.c.correlation == correlation)
            try:
                store = await self._store(service)
                async with store.session() as session, session.begin():
                    found += [_as_dict(service, row, now) for row in await session.execute(statement)]
            except Exception as error:  # a service database down must not take the dashboard down
                log.warning("dashboard: sagas of %s unavailable: %r", service, error)
        found.sort(key=lambda saga: saga["updated_at"], reverse=True)
        return found[:limit]

    async def close(self) -> None:
        for store in self._stores.values():
            with contextlib.suppress(Exception):
                await store.close()
        self._stores.clear()


def _as_dict(service: str, row: Row[Any], now: float) -> dict[str, Any]:
    compensations = json.loads(row.compensations or "[]")
    return {
        "service": service,
        "saga": row.saga,
        "correlation": row.correlation,
        "status": row.status,
        "phase": phase(row.status, row.deadline, compensations, now),
        "state": json.loads(row.state),
        "compensations": compensations,
        "deadline": row.deadline,
        "started_at": row.started_at,
        "updated_at": row.updated_at,
    }
