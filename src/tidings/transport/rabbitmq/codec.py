"""Envelopes on AMQP 0-9-1, following the CloudEvents AMQP protocol binding (1.0.2+).

Binary mode, what Tidings sends: every attribute but `datacontenttype` is an application
property (a header) named `cloudEvents_<attribute>`; `datacontenttype` is the `content-type`
property; the body is the event data. The binding also allows the older `cloudEvents:` prefix:
both are accepted on input (one message uses one of them). Structured mode
(`application/cloudevents+json`) is accepted on input. `message_id` carries the event id too,
for tools that look there.

Headers Tidings adds to copies it makes (retries, dead letters) start with `x-tidings-`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from tidings.attributes import rfc3339
from tidings.envelope import STRUCTURED, Envelope, decode, from_structured, to_binary
from tidings.errors import MalformedMessage

PREFIX = "cloudEvents_"
OLD_PREFIX = "cloudEvents:"
ATTEMPTS = "x-tidings-attempts"
"""Attempts already made when a copy was published (retry, dead letter)."""
DELAY_LEFT = "x-tidings-delay-ms"
REASON = "x-tidings-reason"
GROUP = "x-tidings-group"
DEAD_LETTER_ID = "x-tidings-dead-letter-id"
DEAD_AT = "x-tidings-dead-lettered-at"
ORIGIN = "x-tidings-origin-queue"
"""Set on dead letters of a legacy queue: replay puts them back there, through the mapping."""

PERSISTENT = 2
_TIME_HEADERS = frozenset({PREFIX + "time", OLD_PREFIX + "time"})


def encode(envelope: Envelope) -> tuple[Basic.Properties, bytes]:
    """AMQP properties and body of `envelope` in binary mode, persistent."""
    headers, body = to_binary(envelope, PREFIX)
    content_type = headers.pop("content-type")
    properties = Basic.Properties(
        content_type=content_type,
        delivery_mode=PERSISTENT,
        message_id=envelope.id,
        headers=dict(headers),
    )
    return properties, body


def header_values(properties: Basic.Properties) -> dict[str, Any]:
    """The message's headers, strings decoded, plus `content-type` from the property.

    Typed values become the canonical strings of the CloudEvents type system: a boolean
    `true`/`false`, a timestamp RFC 3339 in UTC, and the `time` attribute sent as an integer
    (milliseconds since the epoch, the AMQP timestamp as the CloudEvents SDK writes it) too."""
    view: dict[str, Any] = {}
    for key, value in (properties.headers or {}).items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, datetime):
            value = rfc3339(value)
        elif isinstance(value, int) and key in _TIME_HEADERS:
            value = rfc3339(datetime.fromtimestamp(value / 1000, UTC))
        view[key] = value
    if properties.content_type:
        view["content-type"] = properties.content_type
    return view


def copy_properties(properties: Basic.Properties, extra: Mapping[str, Any]) -> Basic.Properties:
    """The message's properties for a copy Tidings publishes: broker-added `x-` headers dropped
    (`x-death`, `x-delivery-count`...), earlier `x-tidings-` ones replaced by `extra`."""
    headers = {key: value for key, value in (properties.headers or {}).items() if not key.startswith("x-")}
    headers.update(extra)
    return Basic.Properties(
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        delivery_mode=PERSISTENT,
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        timestamp=properties.timestamp,
        message_type=properties.message_type,
        app_id=properties.app_id,
        headers=headers,
    )


def is_cloudevent(headers: Mapping[str, Any]) -> bool:
    content_type = str(headers.get("content-type") or "")
    return (
        content_type.startswith("application/cloudevents")
        or PREFIX + "specversion" in headers
        or OLD_PREFIX + "specversion" in headers
    )


def attributes_of(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvents attributes among `header_values`, by name (either prefix)."""
    found: dict[str, Any] = {}
    for key, value in headers.items():
        for prefix in (OLD_PREFIX, PREFIX):
            if key.startswith(prefix):
                found[key[len(prefix) :]] = value
    return found


def to_envelope(message: DeliveredMessage) -> Envelope:
    """Decode a CloudEvents message (either prefix, binary or structured)."""
    headers = header_values(message.header.properties)
    if not is_cloudevent(headers):
        try:
            return from_structured(message.body)  # structured without its content type
        except MalformedMessage as error:
            content_type = headers.get("content-type") or "none"
            raise MalformedMessage(
                error.kind,
                f"not a CloudEvents message: {error.detail} (content-type {content_type}, "
                f"no {PREFIX}specversion application property)",
            ) from None
    prefix = OLD_PREFIX if OLD_PREFIX + "specversion" in headers and PREFIX + "specversion" not in headers else PREFIX
    return decode(headers, message.body, prefix)


def attempt_of(headers: Mapping[str, Any], redelivered: bool) -> int:
    """1 on the first delivery: earlier attempts from the `x-tidings-attempts` header plus the
    broker's returns of this copy (quorum queues count them in `x-delivery-count`, RabbitMQ 4.x
    also in `x-acquired-count`; a classic queue only says `redelivered`, counted as one)."""
    earlier = _int(headers.get(ATTEMPTS))
    returns = max(_int(headers.get("x-delivery-count")), _int(headers.get("x-acquired-count")))
    if returns == 0 and redelivered:
        returns = 1
    return earlier + returns + 1


def _int(value: Any) -> int:
    if isinstance(value, int):
        return max(0, value)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def structured_content(headers: Mapping[str, Any]) -> bool:
    return str(headers.get("content-type") or "").startswith(STRUCTURED)
