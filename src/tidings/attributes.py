"""CloudEvents attribute values as text: the canonical strings of typed values (the spec's
type system), RFC 3339 timestamps, and a message's identity read best effort.

Binary-mode protocols carry attributes as typed values (AMQP booleans, integers, timestamps)
or as text (Kafka headers); Tidings holds every attribute as its canonical string, so that the
same event reads the same whichever form its publisher chose.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_SHOWN = 200
"""Characters of an id or type kept when read from a message that does not decode."""


def canonical(value: Any) -> str:
    """A header value as the canonical string of its CloudEvents type (bytes: UTF-8 text)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return rfc3339(value)
    return str(value)


def rfc3339(moment: datetime) -> str:
    """`moment` as an RFC 3339 timestamp; a naive one is taken to be UTC (AMQP timestamps are)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def identity(attributes: Mapping[str, Any], body: bytes, *, limit: int = 1024 * 1024) -> tuple[str | None, str | None]:
    """Best effort, for a message that did not decode: its event id and type from binary-mode
    `attributes` (names without prefix), else from a structured JSON body; None when unreadable."""
    event_id, event_type = attributes.get("id"), attributes.get("type")
    if (event_id is None or event_type is None) and body[:1] == b"{" and len(body) <= limit:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            event_id = event_id if event_id is not None else document.get("id")
            event_type = event_type if event_type is not None else document.get("type")
    return (
        str(event_id)[:_SHOWN] if event_id is not None else None,
        str(event_type)[:_SHOWN] if event_type is not None else None,
    )
