"""RabbitMQ transport configuration: the URL and its options, and legacy-queue mappings.

`amqp://user:pass@host:port/vhost?queue_type=classic&ordering=key` (or `amqps://`). A cluster's
nodes are listed in one URL, `amqp://user:pass@h1:5672,h2:5672,h3:5672/vhost`: the transport
connects to the first that answers and, when that connection is lost, to the next one in the list
(see `Link`); `management_url` may list one API per node the same way, comma-separated. Options
Tidings reads are removed from the URL; the connection options aio-pika reads (`heartbeat`,
`name`, `timeout`, and for TLS `cafile`, `capath`, `cadata`, `certfile`, `keyfile`,
`no_verify_ssl`) are passed through; anything else is a `ConfigurationError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from tidings.errors import ConfigurationError
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


@dataclass(frozen=True, slots=True)
class LegacyMapping:
    """How plain-JSON messages on a queue that non-Tidings publishers fill become events.

    A subscription of `group` (of every group, when `group` is None) also consumes `queue`,
    declared as the ADR-001 sample declares it (durable, classic, no arguments). For each
    message: a CloudEvents message is forwarded to the events exchange unchanged; a JSON object
    whose `type_field` holds a key of `types` is wrapped in an envelope of type `types[value]`
    (its data: the object without `type_field`, which the type now says) and forwarded;
    anything else is handed to the consumer as a delivery whose `envelope()`
    raises `MalformedMessage` ("not a CloudEvents message: ..."), so the runtime dead-letters it
    to the group's dead-letter queue with that reason. Nothing is dropped.

    The envelope id is the message's AMQP `message_id`, else the body's `id_field`, else a
    UUIDv5 of the queue name, the `timestamp` property and the body: the same message
    redelivered gets the same id (the inbox absorbs the duplicate), and two messages with
    identical bytes and no id are taken to be the same event.
    """

    queue: str
    _: KW_ONLY
    types: Mapping[str, str]
    """Legacy type value -> Tidings event type, e.g. `{"OrderCreated": "shop.order.created"}`."""
    type_field: str = "event_type"
    source: str | None = None
    """CloudEvents `source` of the wrapped events; defaults to `urn:tidings:legacy:<queue>`."""
    group: str | None = None
    id_field: str | None = None
    subject_field: str | None = None
    """Body field whose value becomes `subject` and `partitionkey` (e.g. `order_id`)."""

    def __post_init__(self) -> None:
        if not self.queue or not self.type_field:
            raise ConfigurationError("a legacy mapping needs a queue and a type field")
        if any(not (name and value) for name, value in self.types.items()):
            raise ConfigurationError(f"legacy mapping for {self.queue!r} has an empty type name")

    @property
    def event_source(self) -> str:
        return self.source or f"urn:tidings:legacy:{self.queue}"

    def consumed_by(self, group: str) -> bool:
        return self.group is None or self.group == group


@dataclass(frozen=True, slots=True, repr=False)
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
    """Management HTTP API for `backlog()`, or several comma-separated (one per node, tried in
    order); defaults to port 15672 (15671 for amqps) of each host."""
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
        if parts.netloc.rpartition("@")[2]:
            urls.hosts(url, parts.netloc, _WHAT, 5672)  # refuse a malformed host list now, not at connect
        return cls(url=connection_url, legacy=mappings, **options)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """One connection URL per host the URL names, in its order (one for a single host)."""
        parts = urlsplit(self.url)
        userinfo, at, listed = parts.netloc.rpartition("@")
        if "," not in listed:
            return (self.url,)
        default = 5671 if parts.scheme == "amqps" else 5672
        return tuple(
            urlunsplit((parts.scheme, f"{userinfo}{at}{_netloc(host, port)}", parts.path, parts.query, ""))
            for host, port in urls.hosts(self.url, parts.netloc, _WHAT, default)
        )

    @property
    def vhost(self) -> str:
        path = urlsplit(self.url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    def management(self) -> tuple[str, str, str]:
        """Base URL, user and password of the (first) management HTTP API."""
        bases, user, password = self.managements()
        return bases[0], user, password

    def managements(self) -> tuple[tuple[str, ...], str, str]:
        """Base URLs of the management HTTP API of every node (to try in order), user and password."""
        parts = urlsplit(self.url)
        user, password, listed = urls.credentials(parts.netloc)
        user, password = user or "guest", password or "guest"
        if self.management_url is not None:
            return tuple(base.strip().rstrip("/") for base in self.management_url.split(",")), user, password
        tls = parts.scheme == "amqps"
        found = urls.hosts(self.url, parts.netloc, _WHAT, 5672) if listed else [("localhost", 5672)]
        port = 15671 if tls else 15672
        return tuple(f"{'https' if tls else 'http'}://{_netloc(host, port)}" for host, _ in found), user, password

    def redacted(self) -> str:
        """The connection URL without its password, for messages and logs."""
        return urls.redact(self.url)

    def __repr__(self) -> str:  # the URL holds the password: only ever shown redacted
        return f"RabbitConfig({self.redacted()!r}, namespace={self.namespace!r}, queue_type={self.queue_type!r})"


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
        LegacyMapping(
            options["queue"],
            types=types,
            type_field=options.get("type_field", "event_type"),
            source=options.get("source"),
            group=options.get("group"),
            id_field=options.get("id_field"),
            subject_field=options.get("subject_field"),
        ),
    )


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_group(group: str) -> str:
    """Group names become queue names: letters, digits, `_`, `.`, `-` only."""
    if not _NAME.match(group) or len(group) > 200:
        raise ConfigurationError(f"group name {group!r} may only hold letters, digits, '_', '.', '-' (200 at most)")
    return group


def quote_vhost(vhost: str) -> str:
    return quote(vhost, safe="")
