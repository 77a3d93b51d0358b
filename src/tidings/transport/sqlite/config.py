"""Configuration of the SQLite broker, read from its URL: `sqlite:///relative/path.db?lease=5`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from tidings.errors import ConfigurationError
from tidings.transport import urls

_WHAT = "SQLite broker"
_USAGE = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    """Where the broker file is and how consumers behave; the URL's query sets the options.

    `sqlite:///relative/path.db?lease=5` or `sqlite:////absolute/path.db`.
    """

    path: str
    lease: float = 30.0
    """Seconds a claimed delivery stays with its consumer; a heartbeat renews it while the
    consumer's process lives, so it only runs out when that process dies or hangs its loop."""
    busy_timeout: float = 5.0
    """Seconds to wait for another process's write lock before an operation fails."""
    poll_min: float = 0.005
    poll_max: float = 0.1
    """An idle consumer polls after `poll_min`, doubling up to `poll_max` (publishes and
    settlements in the same process wake it at once)."""

    def check_folder(self) -> None:
        """The file's folder must exist (SQLite's own error never says that this is what is wrong)."""
        folder = Path(self.path).parent
        if not folder.is_dir():
            raise ConfigurationError(f"the folder {str(folder)!r} of the SQLite broker does not exist: create it first")

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigurationError("the SQLite broker URL names no file: use sqlite:///path/to/broker.db")
        for name in ("lease", "busy_timeout", "poll_min", "poll_max"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"sqlite broker option {name} must be > 0, got {getattr(self, name)!r}")
        if self.poll_min > self.poll_max:
            raise ConfigurationError("sqlite broker option poll_min must not exceed poll_max")

    @classmethod
    def from_url(cls, url: str) -> SqliteConfig:
        parts = urls.split(url, ("sqlite",), _WHAT, _USAGE)
        if parts.netloc:
            raise ConfigurationError(f"not a {_WHAT} URL: {urls.redact(url)!r} names a host; use {_USAGE}")
        known = {field.name for field in fields(cls)} - {"path"}
        options: dict[str, float] = {}
        for name, value in urls.query(parts):
            if name not in known:
                raise urls.unknown(url, name, known, _WHAT)
            options[name] = urls.number(url, name, value, _WHAT)
        return cls(parts.path[1:], **options)
