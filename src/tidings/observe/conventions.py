"""The OpenTelemetry messaging conventions' names, and what they are for one broker URL.

Every span Tidings makes carries `messaging.system`, `messaging.operation.name`,
`messaging.operation.type`, the real destination (`messaging.destination.name`: the RabbitMQ
events exchange, the Kafka events topic, the embedded broker's `messages` table) and, where there
is a server, `server.address` and `server.port`. Well-known systems use their registered values
(`rabbitmq`, `kafka`); the embedded SQLite broker and the memory transport are not messaging
systems the conventions know, so they get clearly custom values (`tidings.sqlite`,
`tidings.memory`). Tidings' own attributes live under `tidings.*`, never inside `messaging.*`.

The observe layer sits below the transports and may not import them, so the destination names
are derived from the URL here; `tests/unit/test_conventions.py` checks that they agree with the
adapters' own (`events_exchange`, `KafkaConfig.events_topic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
GROUP = "messaging.consumer.group.name"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
BATCH_COUNT = "messaging.batch.message_count"
ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
KAFKA_OFFSET = "messaging.kafka.offset"
KAFKA_KEY = "messaging.kafka.message.key"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
CE_ID, CE_TYPE, CE_SOURCE = "cloudevents.event_id", "cloudevents.event_type", "cloudevents.event_source"
"""The CloudEvents conventions: the envelope's id, type and source."""
ATTEMPT = "tidings.delivery.attempt"
OUTCOME = "tidings.outcome"
SERVICE = "tidings.service"

REQUIRED = (SYSTEM, OPERATION_NAME, OPERATION_TYPE, DESTINATION)
"""What every messaging span of Tidings carries (plus `server.*` where the broker is a server)."""

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "kafka": 9092}


@dataclass(frozen=True, slots=True)
class Broker:
    """What the conventions say about the broker a service talks to."""

    system: str
    destination: str
    address: str | None = None
    port: int | None = None

    def attributes(self, operation: str) -> dict[str, Any]:
        """The attributes every span of `operation` (`create`, `send`, `process`) carries."""
        attributes: dict[str, Any] = {
            SYSTEM: self.system,
            OPERATION_NAME: operation,
            OPERATION_TYPE: operation,
            DESTINATION: self.destination,
        }
        if self.address is not None:
            attributes[SERVER_ADDRESS] = self.address
        if self.port is not None:
            attributes[SERVER_PORT] = self.port
        return attributes

    @property
    def routes_by_type(self) -> bool:
        """RabbitMQ routes each message by its event type (the routing key)."""
        return self.system == "rabbitmq"


def broker_of(url: str) -> Broker:
    """The `Broker` of a broker URL (`amqp://…`, `kafka://…`, `sqlite:///…`, `memory://…`)."""
    parts = urlsplit(url)
    scheme = parts.scheme
    options = dict(parse_qsl(parts.query))
    host, port = _first_server(parts.netloc, _DEFAULT_PORTS.get(scheme))
    if scheme in ("amqp", "amqps"):
        return Broker("rabbitmq", f"{options.get('namespace', 'tidings')}.events", host, port)
    if scheme == "kafka":
        return Broker("kafka", f"{options.get('prefix', '')}events", host, port)
    if scheme == "sqlite":
        return Broker("tidings.sqlite", "messages")
    return Broker(f"tidings.{scheme or 'unknown'}", parts.netloc or parts.path or "events")


def _first_server(netloc: str, default_port: int | None) -> tuple[str | None, int | None]:
    """Host and port of the first server in `[user:pass@]host[:port][,host:port...]`."""
    hosts = netloc.rpartition("@")[2].split(",")[0].strip()
    if not hosts or default_port is None:
        return None, None
    if hosts.startswith("["):  # [::1]:5672
        host, _, rest = hosts[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = hosts.partition(":")
    port = int(port_text) if port_text.isdigit() else default_port
    return host or None, port
