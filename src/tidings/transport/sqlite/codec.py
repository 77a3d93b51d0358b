"""How the SQLite broker stores envelopes.

Messages are stored in CloudEvents binary mode, exactly as the Kafka binding sends them: the
`ce_`-prefixed attributes (and `content-type`) as a JSON object in `messages.headers`, the event
data alone in `messages.body`. Decoding happens in `Delivery.envelope()`, not in the
subscription loop, so a malformed row (written by anything but `publish`) reaches the consumer,
which dead-letters it with the `MalformedMessage` reason, instead of stalling the group.
"""

from __future__ import annotations

import json
from typing import Any

from tidings.envelope import MAX_MESSAGE_BYTES, Envelope, decode, to_binary
from tidings.errors import Malformation, MalformedMessage

PREFIX = "ce_"


def encode(envelope: Envelope) -> tuple[str, str, str | None, str, bytes]:
    """The `messages` row for an envelope: event id, type, partition key, headers JSON, body."""
    if len(envelope.data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(
            Malformation.TOO_LARGE, f"event data is {len(envelope.data)} bytes, the limit is {MAX_MESSAGE_BYTES}"
        )
    headers, body = to_binary(envelope, PREFIX)
    return envelope.id, envelope.type, envelope.partitionkey, json.dumps(headers, separators=(",", ":")), body


def decode_row(headers: Any, body: Any) -> Envelope:
    """The envelope a stored row holds; anything wrong with it raises `MalformedMessage`."""
    try:
        text = headers.decode() if isinstance(headers, bytes) else headers
        mapping = json.loads(text) if isinstance(text, str) else None
    except ValueError:  # includes UnicodeDecodeError and json.JSONDecodeError
        raise MalformedMessage(Malformation.NOT_JSON, "stored headers are not valid JSON") from None
    if not isinstance(mapping, dict):
        raise MalformedMessage(Malformation.MISSING_ATTRIBUTE, "stored headers are not a JSON object of attributes")
    attributes = {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in mapping.items()}
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = b"" if body is None else str(body).encode()
    return decode(attributes, body, PREFIX)


def stored_headers(headers: Any) -> dict[str, str]:
    """Headers of a stored row as a string mapping, for dead-letter listings; never raises."""
    try:
        mapping = json.loads(headers.decode() if isinstance(headers, bytes) else str(headers))
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict):
        return {"x-tidings-raw-headers": repr(headers)}
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in mapping.items()}
