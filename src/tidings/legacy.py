"""Legacy sources: plain-JSON messages from publishers that do not speak CloudEvents, and how
each becomes one of the service's events, is ignored, or is refused with a reason.

A `LegacySource` names where such messages arrive (a RabbitMQ queue, optionally bound to
exchanges, or a Kafka topic) and how to translate them. The transport applies it the same way
to every message of that source, whether it was waiting before the service started or arrives
while it runs: a translated event is forwarded to the events of the system (every group
subscribed to its type gets it), an ignored message is acked (committed on Kafka) and logged, a
refused one is dead-lettered with the reason and its origin, so that replay returns it to the
source and the translation runs again. `parse` and `envelope_of` are the broker-independent
half of that; each transport supplies the stable event id of a message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any, cast

from pydantic import ValidationError

from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, Malformation, MalformedMessage
from tidings.events import Event

log = logging.getLogger("tidings.legacy")


@dataclass(frozen=True, slots=True)
class Ignore:
    """Translation result: drop the message on purpose (it is acked; `reason` is logged)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Translation result: dead-letter the message with `reason` (replay brings it back)."""

    reason: str


Translation = Event | Ignore | Refuse
Translate = Callable[[Any], Translation]
"""A pure function from the parsed JSON document to a `Translation`; no I/O, it runs per message."""


@dataclass(frozen=True, slots=True)
class Binding:
    """An exchange the legacy queue is bound to, for publishers that publish to an exchange."""

    exchange: str
    routing_key: str = ""
    exchange_type: str = "topic"


@dataclass(frozen=True, slots=True)
class LegacySource:
    """Where plain-JSON messages arrive (`name`: a RabbitMQ queue or a Kafka topic) and how each
    becomes an event.

    `translate` is a function (document -> `Event` | `Ignore` | `Refuse`) or an `Event` class
    whose validation is the translation. Without it, `types` renames: a JSON object whose
    `type_field` holds a key of `types` becomes an envelope of type `types[value]` whose data is
    the object without `type_field`. The subscriptions of `group` (of every group, when None)
    consume the queue, declared as the ADR-001 sample declares it (durable, classic, no
    arguments) and bound to `bindings`; on Kafka they read the topic (`bindings` do not apply).

    The envelope id is stable per message, so a redelivery gets the same id and the inbox absorbs
    the duplicate. On RabbitMQ it is the AMQP `message_id`, else the body's `id_field`, else a
    UUIDv5 of the queue name, the `timestamp` property and the body (two messages with identical
    bytes and no id are taken to be the same event); on Kafka the body's `id_field`, else a UUIDv5
    of the record's topic, partition, offset and timestamp.
    """

    name: str
    _: KW_ONLY
    translate: Translate | type[Event] | None = None
    types: Mapping[str, str] = field(default_factory=dict)
    """Legacy type value -> Tidings event type, e.g. `{"OrderCreated": "shop.order.created"}`."""
    type_field: str = "event_type"
    source: str | None = None
    """CloudEvents `source` of the translated events; defaults to `urn:tidings:legacy:<name>`."""
    group: str | None = None
    id_field: str | None = None
    subject_field: str | None = None
    """Body field whose value becomes `subject` and `partitionkey` (e.g. `order_id`); without
    it a translated event's own `subject()` and `partition_key()` are used."""
    bindings: tuple[Binding, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.type_field:
            raise ConfigurationError("a legacy source needs a name and a type field")
        if any(not (name and value) for name, value in self.types.items()):
            raise ConfigurationError(f"legacy source {self.name!r} has an empty type name")
        if self.translate is not None and self.types:
            raise ConfigurationError(f"legacy source {self.name!r}: give translate or types, not both")

    @property
    def queue(self) -> str:
        return self.name

    @property
    def event_source(self) -> str:
        return self.source or f"urn:tidings:legacy:{self.name}"

    def consumed_by(self, group: str) -> bool:
        return self.group is None or self.group == group

    def rule(self) -> str:
        """What this source does, for dead-letter reasons."""
        if self.translate is not None:
            name = getattr(self.translate, "__qualname__", repr(self.translate))
            return f"the legacy source {self.name!r} translates with {name}"
        return f"the legacy rule for queue {self.name!r} maps {self.type_field!r} values {sorted(self.types)}"


def apply(source: LegacySource, document: Any) -> Translation:
    """Run `source`'s translation on a parsed JSON document; never raises.

    An `Event` class validates the document; a function's `ValidationError`, any other
    exception, or a result that is not a `Translation` become a `Refuse` saying so."""
    translate = source.translate
    assert translate is not None, "apply() needs a translating source"
    try:
        if isinstance(translate, type) and issubclass(translate, Event):
            result: object = translate.model_validate(document)
        else:
            result = cast(Translate, translate)(document)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in error.errors())
        return Refuse(f"does not match {error.title}: {problems}")
    except Exception as error:
        log.warning("legacy source %s: translation raised %r", source.name, error)
        return Refuse(f"translation raised {type(error).__name__}: {error}")
    if not isinstance(result, Event | Ignore | Refuse):
        return Refuse(f"translation returned {type(result).__name__}, not an Event, Ignore or Refuse")
    return result


def parse(source: LegacySource, body: bytes) -> Any:
    """The JSON document of a legacy message, or `MalformedMessage` saying why it is none."""
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedMessage(
            Malformation.NOT_JSON, f"not a CloudEvents message: body is not JSON; {source.rule()}"
        ) from None
    except RecursionError:
        raise MalformedMessage(Malformation.TOO_LARGE, f"body is JSON nested too deeply; {source.rule()}") from None


def envelope_of(
    source: LegacySource, document: Any, *, event_id: str, time: datetime | None, correlationid: str | None
) -> Envelope | Ignore:
    """The envelope `document` (parsed by `parse`) becomes through `source`, or `Ignore`;
    `MalformedMessage` when it is refused. Broker-independent: the transport supplies the
    stable `event_id` (see `LegacySource`), the message's `time` and `correlationid` if any."""
    rule = source.rule()
    subject = field_value(document, source.subject_field)
    if source.translate is None:
        return _renamed(source, document, event_id=event_id, time=time, subject=subject, correlationid=correlationid)
    result = apply(source, document)
    if isinstance(result, Ignore):
        return result
    if isinstance(result, Refuse):
        raise MalformedMessage(Malformation.SCHEMA_MISMATCH, f"legacy message refused: {result.reason}; {rule}")
    envelope = Envelope.wrap(result, source=source.event_source)
    return envelope.with_changes(
        id=event_id,
        correlationid=correlationid or event_id,
        time=time or envelope.time,
        subject=subject or envelope.subject,
        partitionkey=subject or envelope.partitionkey,
    )


def _renamed(
    source: LegacySource,
    document: Any,
    *,
    event_id: str,
    time: datetime | None,
    subject: str | None,
    correlationid: str | None,
) -> Envelope:
    """The URL options' rule: rename the type field's value, keep the rest as the data."""
    rule = source.rule()
    if not isinstance(document, dict):
        raise MalformedMessage(Malformation.NOT_JSON, f"not a CloudEvents message: not a JSON object; {rule}")
    legacy_type = document.get(source.type_field)
    if not isinstance(legacy_type, str) or legacy_type not in source.types:
        raise MalformedMessage(
            Malformation.UNKNOWN_TYPE,
            f"not a CloudEvents message: {source.type_field}={legacy_type!r} has no mapping; {rule}",
        )
    data = {name: value for name, value in document.items() if name != source.type_field}
    return Envelope(
        id=event_id,
        source=source.event_source,
        type=source.types[legacy_type],
        data=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        time=time,
        subject=subject,
        partitionkey=subject,
        correlationid=correlationid or event_id,
    )


def field_value(document: Any, name: str | None) -> str | None:
    """The string form of the JSON object's member `name`; None if absent, null or no object."""
    if name is None or not isinstance(document, dict) or document.get(name) is None:
        return None
    return str(document[name])
