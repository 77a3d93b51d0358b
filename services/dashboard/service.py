"""The shop's dashboard process: a shop service recording the contracts' events, with the
dashboard's web app as its component (`tidings.dashboard`, docs/dashboard.md).

It samples every running shop service's `/metrics` and `/health` (their ready files say where,
when the shop runs with `--metrics-port 0`), reads the order sagas from the orders database,
and takes its admin token and limits from `TIDINGS_DASHBOARD_*` variables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from services import contracts
from services.kit.http import HttpServer
from services.kit.service import run_main, shop_service
from services.settings import SERVICES, Settings
from tidings.dashboard import recorder
from tidings.dashboard.config import config_from_env
from tidings.dashboard.wiring import Dashboard
from tidings.service import Service

log = logging.getLogger("services.dashboard")


def metrics_targets(settings: Settings) -> dict[str, str]:
    """Service -> its `/metrics` base URL, from the ready files of the services running now."""
    found = {}
    for name in SERVICES:
        try:
            info = json.loads((settings.run_dir / f"{name}.json").read_text())
        except (OSError, ValueError):
            continue
        if info.get("metrics"):
            found[name] = str(info["metrics"])
    return found


class DashboardServer(HttpServer):
    """The dashboard page and API on `settings.api_host:dashboard_port`."""

    def __init__(self, dashboard: Dashboard, settings: Settings) -> None:
        super().__init__(dashboard.app(), settings.api_host, settings.dashboard_port, name="dashboard")

    async def start(self) -> None:
        await super().start()
        log.info("dashboard on %s", self.url)

    def describe(self) -> dict[str, Any]:
        return {"dashboard": self.url}


def build(settings: Settings) -> Service:
    config = config_from_env(
        targets=lambda: metrics_targets(settings), saga_databases={"orders": settings.database_url("orders")}
    )
    if settings.api_host not in config.trusted_hosts:  # the address it serves on is trusted too
        config = replace(config, trusted_hosts=(*config.trusted_hosts, settings.api_host))
    holder: list[Dashboard] = []

    def server(_service: Service, settings: Settings) -> DashboardServer:
        return DashboardServer(holder[0], settings)

    # named like the other shop processes: group, ready file and database are all "dashboard"
    service = shop_service("dashboard", settings, tables=recorder.metadata, components=[server])
    holder.append(Dashboard(service, events=contracts, config=config))
    if config.token is None:
        log.info("dashboard is read-only: set TIDINGS_DASHBOARD_TOKEN or TIDINGS_DASHBOARD_TOKEN_FILE to replay")
    return service


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build, argv)
