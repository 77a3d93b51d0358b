"""Configuration of the Kafka transport, read from its URL, and the names it gives things.

    kafka://host:port[,host:port][?option=value&...]
    kafka://user:password@host:port?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512

Topic layout under the `prefix` option (tests use `?prefix=<random>.` for isolation):

- `<prefix>events`: every event, partitioned by its partition key (Kafka record key); a group's
  consumers skip types the group does not subscribe to.
- `<prefix>dlq.<group>`: one partition, the group's dead letters, retained until purged.
- `<prefix>tidings.groups`: compacted, one record per (group, type) that was ever subscribed.

The Kafka consumer group of a Tidings group is `<prefix><group>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from tidings.errors import ConfigurationError
from tidings.transport import urls

CE_PREFIX = "ce_"
"""Header prefix of CloudEvents attributes in the Kafka protocol binding (binary mode)."""

HEADER_GROUP = "tidings-group"
"""On a replayed record: the only group that handles it; the others skip it."""
HEADER_REASON = "tidings-reason"
HEADER_ATTEMPTS = "tidings-attempts"
HEADER_DEAD_AT = "tidings-dead-lettered-at"
HEADER_ORIGIN = "tidings-origin"
"""On a dead letter: `<topic>/<partition>/<offset>` of the record it was made from."""
HEADER_LEGACY = "tidings-legacy-topic"
"""On a dead letter of a legacy source: the topic replay returns it to."""
HEADER_PURGE = "tidings-purge"
"""A purge marker in a dead-letter topic: JSON list of the purged dead letters' offsets."""

_LEGAL = re.compile(r"[A-Za-z0-9._-]*")
_SECURITY = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
_INTS = (
    "partitions",
    "read_ahead",
    "replication_factor",
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "request_timeout_ms",
    "linger_ms",
    "max_batch_size",
)
_FLOATS = ("revoke_grace", "declare_timeout")
_BOOLS = ("ssl_check_hostname",)
_WHAT = "Kafka"


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """Everything the URL says; validated on construction, defaults suit production."""

    bootstrap: tuple[str, ...]
    prefix: str = ""
    """Prepended to every topic and consumer group name."""
    partitions: int = 6
    """Partitions of the events topic when Tidings creates it; never change it afterwards,
    or keys move to other partitions and lose their order."""
    replication_factor: int = 0
    """Replicas of the topics Tidings creates; 0 means min(3, number of brokers)."""
    session_timeout_ms: int = 10_000
    """A consumer that sends no heartbeat for this long is presumed dead; its partitions move."""
    heartbeat_interval_ms: int = 1_000
    """How often consumers heartbeat, and so how soon they notice a rebalance."""
    read_ahead: int = 1024
    """Records a subscription reads ahead of what it hands out (at least its `prefetch`). Their
    delivery counts are committed before hand-out, while earlier deliveries are handled; after a
    crash, records read ahead come back with `attempt + 1` although no handler saw them."""
    revoke_grace: float = 5.0
    """Seconds a consumer losing partitions in a rebalance waits for deliveries in flight to
    be settled before handing the partitions over (the rest are redelivered elsewhere)."""
    request_timeout_ms: int = 30_000
    declare_timeout: float = 60.0
    """Seconds `open` and `subscribe` keep retrying retriable errors while they create topics and
    declare a group (a group coordinator not available yet, a controller moving); 0 tries once."""
    linger_ms: int = 0
    max_batch_size: int = 1_048_576
    """Bytes of records per partition in one produce request."""
    client_id: str = "tidings"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    sasl_kerberos_service_name: str = "kafka"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if not self.bootstrap or not all(self.bootstrap):
            raise ConfigurationError("a Kafka URL names its brokers: kafka://host:port[,host:port]")
        if not _LEGAL.fullmatch(self.prefix):
            raise ConfigurationError(f"Kafka prefix {self.prefix!r} may only hold letters, digits, '.', '_', '-'")
        positive = ("partitions", "read_ahead", "session_timeout_ms", "heartbeat_interval_ms", "request_timeout_ms")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigurationError(f"Kafka option {name} must be >= 1, got {getattr(self, name)}")
        if min(self.replication_factor, self.linger_ms, self.revoke_grace, self.declare_timeout) < 0:
            raise ConfigurationError(
                "Kafka options replication_factor, linger_ms, revoke_grace, declare_timeout must be >= 0"
            )
        if self.max_batch_size < 1:
            raise ConfigurationError(f"Kafka option max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ConfigurationError("Kafka option heartbeat_interval_ms must be below session_timeout_ms")
        if self.security_protocol not in _SECURITY:
            raise ConfigurationError(f"security_protocol must be one of {', '.join(_SECURITY)}")
        if self.sasl_mechanism not in _MECHANISMS:
            raise ConfigurationError(f"sasl_mechanism must be one of {', '.join(_MECHANISMS)}")

    @classmethod
    def from_url(cls, url: str) -> KafkaConfig:
        """Parse `kafka://[user:password@]host:port[,host:port][?option=value...]`."""
        parts = urls.split(url, ("kafka",), _WHAT, "kafka://[user:password@]host:port[,host:port]")
        user, password, hosts = urls.credentials(parts.netloc)
        options: dict[str, Any] = {}
        if user or password is not None:
            options["sasl_plain_username"] = user or ""
            options["sasl_plain_password"] = password or ""
        known = {option.name for option in fields(cls)} - {"bootstrap"}
        for name, value in urls.query(parts):
            if name not in known:
                raise urls.unknown(url, name, known, _WHAT)
            options[name] = _convert(url, name, value)
        return cls(tuple(host.strip() for host in hosts.split(",")), **options)

    # -- names ------------------------------------------------------------------------------------

    @property
    def events_topic(self) -> str:
        return f"{self.prefix}events"

    @property
    def registry_topic(self) -> str:
        return f"{self.prefix}tidings.groups"

    def dlq_topic(self, group: str) -> str:
        return f"{self.prefix}dlq.{check_group(group)}"

    def group_id(self, group: str) -> str:
        return f"{self.prefix}{check_group(group)}"

    # -- client options ---------------------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments every aiokafka client (producer, consumer, admin) shares."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_plain_username,
                sasl_plain_password=self.sasl_plain_password,
                sasl_kerberos_service_name=self.sasl_kerberos_service_name,
            )
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            context = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile, password=self.ssl_password
            )
            context.check_hostname = self.ssl_check_hostname
            options["ssl_context"] = context
        return options


def check_group(group: str) -> str:
    """A group name is part of topic and consumer group names: Kafka's legal characters only."""
    if not group or not _LEGAL.fullmatch(group) or len(group) > 200:
        raise ConfigurationError(
            f"group {group!r} cannot name Kafka topics: use 1-200 letters, digits, '.', '_' or '-'"
        )
    return group


def _convert(url: str, name: str, value: str) -> Any:
    if name in _INTS:
        return urls.number(url, name, value, _WHAT, int)
    if name in _FLOATS:
        return urls.number(url, name, value, _WHAT)
    if name in _BOOLS:
        return urls.flag(url, name, value, _WHAT)
    return value
