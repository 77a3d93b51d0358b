"""How a dashboard is configured: who may change things, which hosts may reach it, what it keeps,
and where it looks for metrics and sagas (docs/dashboard.md, "Configuration")."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tidings.errors import ConfigurationError

TOKEN_ENV = "TIDINGS_DASHBOARD_TOKEN"
TOKEN_FILE_ENV = "TIDINGS_DASHBOARD_TOKEN_FILE"
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class Retention:
    """What the recorder keeps: events younger than `max_age` seconds, and no more than about
    `max_bytes` of database (its file and its WAL); checked every `interval` seconds. Once the
    data passes `high_water` of the limit, the oldest events are deleted until it is under
    `low_water`: the room above is for the WAL and for what arrives between two passes."""

    max_age: float = 7 * 24 * 3600.0
    max_bytes: int = 256 * 1024 * 1024
    interval: float = 30.0
    low_water: float = 0.6

    @property
    def high_water(self) -> float:
        return min(0.95, self.low_water + 0.15)

    def __post_init__(self) -> None:
        if self.max_age <= 0 or self.max_bytes <= 0 or self.interval <= 0 or not 0 < self.low_water < 1:
            raise ConfigurationError("retention: max_age, max_bytes and interval must be > 0, low_water in (0, 1)")


Targets = Callable[[], Mapping[str, str]]
"""Service name -> base URL of its `/metrics` and `/health` endpoint, asked again at each sample
(services restart on new ports)."""


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Everything the dashboard needs besides its store and transport.

    `token` None means read-only: replay and purge are refused. Read it with `load_token()`
    (environment or file), never from a command-line option, which `ps` would show.
    """

    token: str | None = None
    trusted_hosts: tuple[str, ...] = DEFAULT_HOSTS
    """Host names (no port) the `Host` and `Origin` headers may name; `*` allows any (not advised)."""
    retention: Retention = field(default_factory=Retention)
    targets: Targets = field(default=lambda: {})
    saga_databases: Mapping[str, str] = field(default_factory=dict)
    """Service name -> database URL holding its `tidings_sagas` table, read-only."""
    sample_interval: float = 2.0
    """Seconds between samples of lag, `/metrics` and `/health`."""
    sample_window: int = 300
    """Samples kept in memory per series (10 minutes at the default interval)."""

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < 16:
            raise ConfigurationError("the dashboard's admin token must be at least 16 characters")
        if self.sample_interval <= 0 or self.sample_window < 2:
            raise ConfigurationError("sample_interval must be > 0 and sample_window >= 2")
        if not self.trusted_hosts:
            raise ConfigurationError("the dashboard needs at least one trusted host")


def load_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The admin token from `TIDINGS_DASHBOARD_TOKEN`, else from the file `TIDINGS_DASHBOARD_TOKEN_FILE`
    names (surrounding whitespace removed); None when neither is set (read-only)."""
    environ = os.environ if environ is None else environ
    if environ.get(TOKEN_ENV):
        return environ[TOKEN_ENV].strip()
    path = environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigurationError(f"cannot read the dashboard token file {path!r}: {error.strerror}") from None
    if not token:
        raise ConfigurationError(f"the dashboard token file {path!r} is empty")
    return token


def trusted_hosts_from(value: str | None) -> tuple[str, ...]:
    """`"a.example,b.example"` -> the defaults plus those names."""
    extra = tuple(host.strip().lower() for host in (value or "").split(",") if host.strip())
    return DEFAULT_HOSTS + tuple(host for host in extra if host not in DEFAULT_HOSTS)


def config_from_env(environ: Mapping[str, str] | None = None, **given: object) -> DashboardConfig:
    """A `DashboardConfig` from `TIDINGS_DASHBOARD_*` variables (TOKEN or TOKEN_FILE, HOSTS,
    MAX_AGE, MAX_BYTES, PRUNE_INTERVAL, SAMPLE_INTERVAL); `given` fields (targets, saga
    databases) are passed through."""
    environ = os.environ if environ is None else environ
    defaults = Retention()

    def number(name: str, default: float) -> float:
        value = environ.get(f"TIDINGS_DASHBOARD_{name}")
        try:
            return float(value) if value else default
        except ValueError:
            raise ConfigurationError(f"TIDINGS_DASHBOARD_{name} must be a number, got {value!r}") from None

    retention = Retention(
        max_age=number("MAX_AGE", defaults.max_age),
        max_bytes=int(number("MAX_BYTES", defaults.max_bytes)),
        interval=number("PRUNE_INTERVAL", defaults.interval),
    )
    return DashboardConfig(
        token=load_token(environ),
        trusted_hosts=trusted_hosts_from(environ.get("TIDINGS_DASHBOARD_HOSTS")),
        retention=retention,
        sample_interval=number("SAMPLE_INTERVAL", 2.0),
        **given,  # type: ignore[arg-type]
    )
