"""RabbitMQ transport configuration: the URL and its options, and legacy-queue mappings.

`amqp://user:pass@host:port/vhost?queue_type=classic&ordering=key` (or `amqps://`). Options
Tidings reads are removed from the URL; the connection options aio-pika reads (`heartbeat`,
`name`, `timeout`, and for TLS `cafile`, `capath`, `cadata`, `certfile`, `keyfile`,
`no_verify_ssl`) are passed through; anything else is a `ConfigurationError`.
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from tidings.errors import ConfigurationError
from tidings.legacy import LegacySource
from tidings.transport import urls

QueueType = Literal["quorum", "classic"]
Ordering = Literal["none", "key"]

_PASSTHROUGH = frozenset(
    {
        "heartbeat",
        "name",
        "timeout",
        "auth",
        "cafile",
        "capath",
        "cadata",
        "certfile",
        "keyfile",
        "no_verify_ssl",
        "interleave",
        "happy_eyeballs_delay",
    }
)
_OWN = frozenset(
    {"namespace", "queue_type", "ordering", "management_url", "publish_timeout", "reconnect_max", "connect_timeout"}
)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_WHAT = "RabbitMQ"


LegacyMapping = LegacySource
"""A legacy source on RabbitMQ (`tidings.legacy.LegacySource`): `name` is the queue."""


@dataclass(frozen=True, slots=True)
class RabbitConfig:
    """Connection and topology options of a `RabbitTransport`; `from_url` reads them from a URL."""

    url: str
    """The AMQP URL aio-pika connects to (Tidings' own options removed)."""
    _: KW_ONLY
    namespace: str = "tidings"
    """Prefix of every exchange and queue name, so several applications can share a vhost."""
    queue_type: QueueType = "quorum"
    """Type of the group and delay queues; the dead-letter queues are always classic."""
    ordering: Ordering = "none"
    """`key`: single-active-consumer group queues and per-key hold-back in the subscription
    (one consumer of a group works at a time, the others stand by)."""
    publish_timeout: float = 30.0
    """Seconds `publish` waits for a connection and for the broker's confirms."""
    reconnect_max: float = 1.0
    """Upper bound of the (re)connection backoff, in seconds: once the broker is back, the
    connection is back within about this long."""
    connect_timeout: float = 60.0
    """Seconds `open` keeps trying to reach an unreachable broker before it raises; 0 tries once.
    (A broker that refuses the credentials or the vhost fails at once.)"""
    delivery_limit: int | None = None
    """Quorum queues only: dead-letter a message the broker delivered this many times."""
    management_url: str | None = None
    """Management HTTP API for `backlog()`; defaults to port 15672 (15671 for amqps) of the host."""
    legacy: tuple[LegacyMapping, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not _NAME.match(self.namespace) or ":" in self.namespace:
            raise ConfigurationError(f"namespace {self.namespace!r} may only hold letters, digits, '_', '.', '-'")
        if self.queue_type not in ("quorum", "classic"):
            raise ConfigurationError(f"queue_type must be quorum or classic, got {self.queue_type!r}")
        if self.ordering not in ("none", "key"):
            raise ConfigurationError(f"ordering must be none or key, got {self.ordering!r}")
        if not (self.publish_timeout > 0 and self.reconnect_max > 0):
            raise ConfigurationError("publish_timeout and reconnect_max must be > 0")
        if not self.connect_timeout >= 0:
            raise ConfigurationError("connect_timeout must be >= 0")
        if self.delivery_limit is not None and (self.delivery_limit < 1 or self.queue_type != "quorum"):
            raise ConfigurationError("delivery_limit must be >= 1 and needs queue_type=quorum")
        queues = [mapping.queue for mapping in self.legacy]
        if len(queues) != len(set(queues)):
            raise ConfigurationError(f"two legacy mappings for one queue: {queues}")

    @classmethod
    def from_url(cls, url: str, *, legacy: tuple[LegacyMapping, ...] = ()) -> RabbitConfig:
        """Split `url` into the connection URL and Tidings' options (see the module docstring)."""
        parts = urls.split(url, ("amqp", "amqps"), _WHAT, "amqp://user:pass@host:port/vhost")
        passthrough: list[tuple[str, str]] = []
        options: dict[str, Any] = {}
        legacy_options: dict[str, str] = {}
        for name, value in urls.query(parts):
            if name in _PASSTHROUGH:
                passthrough.append((name, value))
            elif name.startswith("legacy_"):
                legacy_options[name.removeprefix("legacy_")] = value
            elif name in ("namespace", "queue_type", "ordering", "management_url"):
                options[name] = value
            elif name in ("publish_timeout", "reconnect_max", "connect_timeout"):
                options[name] = urls.number(url, name, value, _WHAT)
            elif name == "delivery_limit":
                options[name] = urls.number(url, name, value, _WHAT, int)
            else:
                raise urls.unknown(url, name, {*_PASSTHROUGH, *_OWN, "delivery_limit", "legacy_*"}, _WHAT)
        mappings = (*legacy, *_legacy_from_query(legacy_options))
        connection_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(passthrough), ""))
        return cls(url=connection_url, legacy=mappings, **options)

    @property
    def vhost(self) -> str:
        path = urlsplit(self.url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    def management(self) -> tuple[str, str, str]:
        """Base URL, user and password of the management HTTP API."""
        parts = urlsplit(self.url)
        user, password, _ = urls.credentials(parts.netloc)
        user, password = user or "guest", password or "guest"
        if self.management_url is not None:
            return self.management_url.rstrip("/"), user, password
        tls = parts.scheme == "amqps"
        host = parts.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if tls else 'http'}://{host}:{15671 if tls else 15672}", user, password

    def redacted(self) -> str:
        """The connection URL without its password, for messages and logs."""
        return urls.redact(self.url)


def _legacy_from_query(options: dict[str, str]) -> tuple[LegacyMapping, ...]:
    if not options:
        return ()
    if "queue" not in options:
        raise ConfigurationError(f"legacy options {sorted(options)} need legacy_queue=<queue name>")
    known = {"queue", "types", "type_field", "source", "group", "id_field", "subject_field"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigurationError(f"unknown legacy option(s) {unknown}; known: {sorted(known)}")
    types: dict[str, str] = {}
    for pair in filter(None, options.get("types", "").split(",")):
        name, sep, event_type = pair.partition(":")
        if not sep:
            raise ConfigurationError(f"legacy_types wants Name:event.type pairs separated by commas, got {pair!r}")
        types[name.strip()] = event_type.strip()
    return (
        LegacySource(
            options["queue"],
            types=types,
            type_field=options.get("type_field", "event_type"),
            source=options.get("source"),
            group=options.get("group"),
            id_field=options.get("id_field"),
            subject_field=options.get("subject_field"),
        ),
    )


def check_group(group: str) -> str:
    """Group names become queue names: letters, digits, `_`, `.`, `-` only."""
    if not _NAME.match(group) or len(group) > 200:
        raise ConfigurationError(f"group name {group!r} may only hold letters, digits, '_', '.', '-' (200 at most)")
    return group


def quote_vhost(vhost: str) -> str:
    return quote(vhost, safe="")
