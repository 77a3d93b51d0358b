"""Where the shop runs: broker, databases, data directory, API address and timings.

One frozen `Settings` is read from `SHOP_*` environment variables or from command-line options
(options win). The supervisor passes its settings to each child as environment variables, so a
service module can also be started on its own: `tidings run services.inventory.service:service`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tidings.errors import ConfigurationError
from tidings.security import Signing, identities
from tidings.security.identities import Identity
from tidings.transport.urls import redact

SERVICES = ("orders", "inventory", "payments", "shipping", "notifications")
"""Every service of the shop, in start order (orders last would also do: the broker keeps events)."""
EMBEDDED_POLL_MAX = 0.02
"""Longest wait of an idle consumer of the embedded broker between two looks at the file (the
broker's default is 0.1 s): a service learns of another process's events only by polling, so
each step of an order waited up to that long. Measured A/B (docs/shop.md): the idle shop's five
services use 0.15 instead of 0.09 of a core, and create-to-settled at 10 orders/s halved."""
OPTIONAL = ("dashboard",)
"""Processes `shop up --services` may add: the dashboard records every shop event (docs/dashboard.md)."""

_ENV = {
    "data_dir": "SHOP_DATA_DIR",
    "broker": "SHOP_BROKER",
    "database": "SHOP_DATABASE",
    "db_prefix": "SHOP_DB_PREFIX",
    "api_host": "SHOP_API_HOST",
    "api_port": "SHOP_API_PORT",
    "deadline": "SHOP_DEADLINE",
    "concurrency": "SHOP_CONCURRENCY",
    "dashboard_port": "SHOP_DASHBOARD_PORT",
    "idempotency_retention": "SHOP_IDEMPOTENCY_RETENTION",
    "metrics_port": "SHOP_METRICS_PORT",
    "identities": "SHOP_IDENTITIES",
    "keys": "SHOP_KEYS",
    "event_loop": "SHOP_EVENT_LOOP",
}
EVENT_LOOPS = ("asyncio", "uvloop")
"""The loops a shop process can run on (ADR 0034)."""
DEFAULT_EVENT_LOOP = "asyncio" if sys.platform == "win32" else "uvloop"
"""uvloop wherever the shop extra installs it (everywhere but Windows): 10 to 15 % less CPU per order."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The shop's configuration; `database=None` means one SQLite file per service in `data_dir`."""

    data_dir: Path = Path("data")
    broker: str | None = field(default=None, repr=False)
    """Broker URL; default: the embedded broker, `sqlite:///<data_dir>/broker.db`."""
    database: str | None = field(default=None, repr=False)
    """A PostgreSQL server URL (`postgresql://user:pw@host:port`): one database per service on it."""
    db_prefix: str = "shop_"
    """PostgreSQL database names are `<db_prefix><service>`, so several shops can share a server."""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    """0 picks a free port; the orders service reports the real one in its ready file."""
    deadline: float = 30.0
    """Seconds a pending order may take to settle before its saga times out and cancels it."""
    concurrency: int = 32
    dashboard_port: int = 8080
    """Where the dashboard serves, when it runs; 0 picks a free port (reported in its ready file)."""
    idempotency_retention: float = 24 * 3600.0
    """Seconds a `POST /orders` Idempotency-Key and its response are kept for replay."""
    metrics_port: int | None = None
    """Each service serves `/metrics` and `/health` here when set; 0 gives each a free port
    (reported in its ready file as `metrics`), the only choice for more than one service."""
    identities: Path | None = None
    """A credentials file of `shop provision`: each service connects to the broker and its
    database as its own user (docs/security.md); the dashboard and `shop check` keep `broker`'s."""
    keys: Path | None = None
    """A folder of `shop provision --keys`: `<service>.json` (its signing key) and `ring.json` (the
    keys it believes); each service signs what it publishes and dead-letters what is not signed."""
    event_loop: str = DEFAULT_EVENT_LOOP
    """`uvloop` (libuv: 10 to 15 % less CPU per order), or the standard library's `asyncio` (ADR 0034)."""

    def __post_init__(self) -> None:
        if self.deadline <= 0 or self.idempotency_retention <= 0:
            raise ConfigurationError("the deadline and the idempotency retention must be positive")
        if self.metrics_port is not None and not 0 <= self.metrics_port < 65536:
            raise ConfigurationError("the metrics port must be in 0..65535")
        if self.concurrency < 1 or not 0 <= self.api_port < 65536 or not 0 <= self.dashboard_port < 65536:
            raise ConfigurationError("concurrency must be >= 1 and the API and dashboard ports in 0..65535")
        if self.database is not None and not self.database.startswith("postgresql"):
            raise ConfigurationError(f"--database takes a postgresql:// server URL, got {redact(self.database)!r}")
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigurationError(f"the event loop is one of {', '.join(EVENT_LOOPS)}, got {self.event_loop!r}")

    # -- derived ---------------------------------------------------------------------------------

    def broker_url(self) -> str:
        return self.broker or f"sqlite:///{self.data_dir.resolve() / 'broker.db'}?poll_max={EMBEDDED_POLL_MAX:g}"

    def service_broker_url(self, service: str) -> str:
        """The broker URL `service` connects with: its own identity's, when there are identities."""
        identity = self._identity(service)
        return identity.url(self.broker_url()) if identity is not None else self.broker_url()

    def database_url(self, service: str) -> str:
        """The async SQLAlchemy URL of `service`'s own database (as its own role, with identities)."""
        if self.database is None:
            return f"sqlite+aiosqlite:///{self.data_dir.resolve() / f'{service}.db'}"
        identity = self._identity(service)
        server = identity.url(self.database) if identity is not None else self.database
        url = make_url(server).set(drivername="postgresql+asyncpg", database=f"{self.db_prefix}{service}")
        return url.render_as_string(hide_password=False)

    def signing(self, service: str) -> Signing | None:
        """`service`'s signing set-up from the `keys` folder, if there is one."""
        if self.keys is None:
            return None
        return Signing.from_files(str(self.keys / f"{service}.json"), str(self.keys / "ring.json"))

    def _identity(self, service: str) -> Identity | None:
        return identities.load(self.identities).get(service) if self.identities is not None else None

    @property
    def run_dir(self) -> Path:
        """Ready files and the supervisor's state."""
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    # -- sources ---------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {name: environ[var] for name, var in _ENV.items() if environ.get(var)}
        return cls(**_typed(values))

    def to_env(self) -> dict[str, str]:
        """The `SHOP_*` variables that make `from_env` return these settings."""
        env = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                env[_ENV[item.name]] = str(value.resolve() if isinstance(value, Path) else value)
        return env

    def with_args(self, args: argparse.Namespace) -> Settings:
        """These settings overridden by the options `add_arguments` defined and the user gave."""
        given = {name: getattr(args, name) for name in _ENV if getattr(args, name, None) is not None}
        return replace(self, **_typed(given))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for every `Settings` field; all default to None so environment values stand."""
    parser.add_argument("--data-dir", help="data directory (SQLite files, logs) [./data]")
    parser.add_argument("--broker", help="broker URL: sqlite:///..., amqp://..., kafka://... [embedded SQLite]")
    parser.add_argument("--database", help="PostgreSQL server URL; one database per service [SQLite files]")
    parser.add_argument("--db-prefix", help="PostgreSQL database name prefix [shop_]")
    parser.add_argument("--api-host", help="orders API host [127.0.0.1]")
    parser.add_argument("--api-port", type=int, help="orders API port [8000]")
    parser.add_argument("--deadline", type=float, help="seconds before a pending order is cancelled [30]")
    parser.add_argument("--concurrency", type=int, help="deliveries each service handles at once [32]")
    parser.add_argument("--dashboard-port", type=int, help="dashboard port, when it runs [8080]")
    parser.add_argument(
        "--idempotency-retention", type=float, help="seconds an Idempotency-Key is kept for replay [86400]"
    )
    parser.add_argument("--metrics-port", type=int, help="serve /metrics and /health per service; 0 = free ports [off]")
    parser.add_argument("--identities", help="credentials file of `shop provision`: a user per service [off]")
    parser.add_argument("--keys", help="signing keys folder of `shop provision --keys`: signed events [off]")
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, help=f"each service's event loop [{DEFAULT_EVENT_LOOP}]")


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    types = {
        "data_dir": Path,
        "identities": Path,
        "keys": Path,
        "api_port": int,
        "deadline": float,
        "concurrency": int,
        "dashboard_port": int,
        "idempotency_retention": float,
        "metrics_port": int,
    }
    try:
        return {name: types.get(name, str)(value) for name, value in values.items()}
    except ValueError as error:
        raise ConfigurationError(f"invalid shop setting: {error}") from None
