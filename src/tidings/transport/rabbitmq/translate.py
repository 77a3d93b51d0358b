"""A legacy queue's message as an envelope: CloudEvents as they are, plain JSON through the
source's translation (`tidings.legacy`), or a `MalformedMessage` saying why not.

Used twice: by the bridge, which forwards what translates and acks what is ignored, and by a
refused message's delivery, whose `envelope()` raises the reason so the runtime dead-letters it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from aiormq.abc import DeliveredMessage

from tidings.envelope import Envelope
from tidings.errors import Malformation, MalformedMessage
from tidings.legacy import Ignore, LegacySource, Refuse, apply
from tidings.transport.rabbitmq.codec import header_values, is_cloudevent, to_envelope

_LEGACY_NAMESPACE = uuid.UUID("6f1b7e33-3c55-4d8a-9a86-2f5cbd0a8e41")


def from_legacy(source: LegacySource, message: DeliveredMessage) -> Envelope | Ignore:
    """The envelope `message` from `source.name` becomes, `Ignore`, or `MalformedMessage`."""
    headers = header_values(message.header.properties)
    if is_cloudevent(headers):
        return to_envelope(message)
    rule = source.rule()
    try:
        document = json.loads(message.body)
    except ValueError:
        raise MalformedMessage(Malformation.NOT_JSON, f"not a CloudEvents message: body is not JSON; {rule}") from None
    except RecursionError:
        raise MalformedMessage(Malformation.TOO_LARGE, f"body is JSON nested too deeply; {rule}") from None
    if source.translate is None:
        return _renamed(source, message, document, rule)
    result = apply(source, document)
    if isinstance(result, Ignore):
        return result
    if isinstance(result, Refuse):
        raise MalformedMessage(Malformation.SCHEMA_MISMATCH, f"legacy message refused: {result.reason}; {rule}")
    event_id = _event_id(source, message, document)
    properties = message.header.properties
    envelope = Envelope.wrap(result, source=source.event_source)
    subject = _field(document, source.subject_field)
    return envelope.with_changes(
        id=event_id,
        correlationid=properties.correlation_id or event_id,
        time=properties.timestamp if isinstance(properties.timestamp, datetime) else envelope.time,
        subject=subject or envelope.subject,
        partitionkey=subject or envelope.partitionkey,
    )


def _renamed(source: LegacySource, message: DeliveredMessage, document: Any, rule: str) -> Envelope:
    """The URL options' rule: rename the type field's value, keep the rest as the data."""
    if not isinstance(document, dict):
        raise MalformedMessage(Malformation.NOT_JSON, f"not a CloudEvents message: not a JSON object; {rule}")
    legacy_type = document.get(source.type_field)
    if not isinstance(legacy_type, str) or legacy_type not in source.types:
        raise MalformedMessage(
            Malformation.UNKNOWN_TYPE,
            f"not a CloudEvents message: {source.type_field}={legacy_type!r} has no mapping; {rule}",
        )
    properties = message.header.properties
    event_id = _event_id(source, message, document)
    subject = _field(document, source.subject_field)
    time = properties.timestamp
    data = {name: value for name, value in document.items() if name != source.type_field}
    return Envelope(
        id=event_id,
        source=source.event_source,
        type=source.types[legacy_type],
        data=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        time=time if isinstance(time, datetime) else None,
        subject=subject,
        partitionkey=subject,
        correlationid=properties.correlation_id or event_id,
    )


def _event_id(source: LegacySource, message: DeliveredMessage, document: Any) -> str:
    """`message_id`, else the body's `id_field`, else a UUIDv5 of queue, timestamp and body:
    the same for every delivery of one message, so the inbox recognises a redelivery."""
    properties = message.header.properties
    if properties.message_id:
        return str(properties.message_id)
    from_body = _field(document, source.id_field)
    if from_body:
        return from_body
    timestamp = properties.timestamp
    seed = f"{source.name}\n{timestamp.isoformat() if timestamp else ''}\n".encode() + message.body
    return str(uuid.uuid5(_LEGACY_NAMESPACE, seed.hex()))


def _field(document: Any, name: str | None) -> str | None:
    if name is None or not isinstance(document, dict) or document.get(name) is None:
        return None
    return str(document[name])
