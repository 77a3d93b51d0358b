"""A legacy queue's message as an envelope: CloudEvents as they are, plain JSON through the
source's translation (`tidings.legacy`), or a `MalformedMessage` saying why not.

Used twice: by the bridge, which forwards what translates and acks what is ignored, and by a
refused message's delivery, whose `envelope()` raises the reason so the runtime dead-letters it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiormq.abc import DeliveredMessage

from tidings.envelope import Envelope
from tidings.legacy import Ignore, LegacySource, envelope_of, field_value, parse
from tidings.transport.rabbitmq.codec import header_values, is_cloudevent, to_envelope

_LEGACY_NAMESPACE = uuid.UUID("6f1b7e33-3c55-4d8a-9a86-2f5cbd0a8e41")


def from_legacy(source: LegacySource, message: DeliveredMessage) -> Envelope | Ignore:
    """The envelope `message` from `source.name` becomes, `Ignore`, or `MalformedMessage`."""
    headers = header_values(message.header.properties)
    if is_cloudevent(headers):
        return to_envelope(message)
    document = parse(source, message.body)
    properties = message.header.properties
    time = properties.timestamp
    return envelope_of(
        source,
        document,
        event_id=_event_id(source, message, document),
        time=time if isinstance(time, datetime) else None,
        correlationid=properties.correlation_id,
    )


def _event_id(source: LegacySource, message: DeliveredMessage, document: Any) -> str:
    """`message_id`, else the body's `id_field`, else a UUIDv5 of queue, timestamp and body:
    the same for every delivery of one message, so the inbox recognises a redelivery."""
    properties = message.header.properties
    if properties.message_id:
        return str(properties.message_id)
    from_body = field_value(document, source.id_field)
    if from_body:
        return from_body
    timestamp = properties.timestamp
    seed = f"{source.name}\n{timestamp.isoformat() if timestamp else ''}\n".encode() + message.body
    return str(uuid.uuid5(_LEGACY_NAMESPACE, seed.hex()))
