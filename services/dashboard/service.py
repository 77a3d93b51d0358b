"""The shop's dashboard process: a shop service recording the contracts' events, with the
dashboard's web app as its component (`tidings.dashboard`, docs/dashboard.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from services import contracts
from services.kit.http import HttpServer
from services.kit.service import run_main, shop_service
from services.settings import Settings
from tidings.dashboard import recorder
from tidings.dashboard.app import create_app
from tidings.service import Service

log = logging.getLogger("services.dashboard")


class DashboardServer(HttpServer):
    """The dashboard page and API on `settings.api_host:dashboard_port`."""

    def __init__(self, service: Service, settings: Settings) -> None:
        app = create_app(service.store, service.transport)
        super().__init__(app, settings.api_host, settings.dashboard_port, name="dashboard")

    async def start(self) -> None:
        await super().start()
        log.info("dashboard on %s", self.url)

    def describe(self) -> dict[str, Any]:
        return {"dashboard": self.url}


def build(settings: Settings) -> Service:
    # named like the other shop processes: group, ready file and database are all "dashboard"
    service = shop_service("dashboard", settings, tables=recorder.metadata, components=[DashboardServer])
    recorder.record_events(service, contracts)
    return service


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
