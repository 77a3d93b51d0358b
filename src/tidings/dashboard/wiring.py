"""`Dashboard`: what turns a `Service` into the dashboard — it records the given event types,
prunes by the retention, samples lag, `/metrics` and `/health`, and serves the app.

    service = Service("tidings-dashboard", broker=..., database=..., tables=recorder.metadata)
    dashboard = Dashboard(service, events=my_events, config=DashboardConfig(token=load_token()))
    # once the service runs: dashboard.app() is the ASGI app to serve
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from tidings.dashboard.app import create_app
from tidings.dashboard.config import DashboardConfig
from tidings.dashboard.recorder import record_events
from tidings.dashboard.retention import bound_the_wal, keep_pruning
from tidings.dashboard.sagas import SagaReader
from tidings.dashboard.sampler import Sampler
from tidings.events import Event, Registry
from tidings.service import Service


class Dashboard:
    """The dashboard's parts on `service` (whose database must have `recorder.metadata`'s tables);
    `events` None when the service already records them (a `Recorder`)."""

    def __init__(
        self,
        service: Service,
        *,
        events: Registry | ModuleType | str | Iterable[type[Event]] | None = None,
        config: DashboardConfig | None = None,
    ) -> None:
        self.service = service
        self.config = config or DashboardConfig()
        if events is not None:  # else the service records already (a `Recorder`)
            self.recorded_types = record_events(service, events)
        else:
            self.recorded_types = list(getattr(service, "recorded_types", []))
        self.sampler = Sampler(
            self._backlog, self.config.targets, interval=self.config.sample_interval, window=self.config.sample_window
        )
        self.sagas = SagaReader(self.config.saga_databases)
        service.background("dashboard-retention", lambda: keep_pruning(service.store, self.config.retention))
        service.background("dashboard-sampler", self.sampler.run)
        service.on_startup(self._prepare)
        service.on_shutdown(self._close)

    async def _backlog(self) -> dict[str, int]:
        return await self.service.transport.backlog()

    async def _prepare(self, service: Service) -> None:
        """Before the service consumes: bound SQLite's WAL by the retention's size (ADR 0022)."""
        bound_the_wal(service.store, self.config.retention)
        await service.store.engine.dispose()  # the migrations' idle connections reopen with the limits

    async def _close(self, _service: Service) -> None:
        await self.sagas.close()

    def app(self) -> Any:
        """The ASGI app (the service must be started: it uses its store and transport)."""
        return create_app(
            self.service.store, self.service.transport, self.config, sampler=self.sampler, sagas=self.sagas
        )
