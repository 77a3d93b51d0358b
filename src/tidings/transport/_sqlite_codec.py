"""How the SQLite broker stores envelopes, and its configuration.

Messages are stored in CloudEvents binary mode, exactly as the Kafka binding sends them: the
`ce_`-prefixed attributes (and `content-type`) as a JSON object in `messages.headers`, the event
data alone in `messages.body`. Decoding happens in `Delivery.envelope()`, not in the
subscription loop, so a malformed row (written by anything but `publish`) reaches the consumer,
which dead-letters it with the `MalformedMessage` reason, instead of stalling the group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tidings.envelope import MAX_MESSAGE_BYTES, Envelope, decode, to_binary
from tidings.errors import ConfigurationError, Malformation, MalformedMessage

PREFIX = "ce_"


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    """Where the broker file is and how consumers behave; the URL's query sets the options.

    `sqlite:///relative/path.db?lease=5` or `sqlite:////absolute/path.db`.
    """

    path: str
    lease: float = 30.0
    """Seconds a claimed delivery stays with its consumer; a heartbeat renews it while the
    consumer's process lives, so it only runs out when that process dies or hangs its loop."""
    busy_timeout: float = 5.0
    """Seconds to wait for another process's write lock before an operation fails."""
    poll_min: float = 0.005
    poll_max: float = 0.1
    """An idle consumer polls after `poll_min`, doubling up to `poll_max` (publishes and
    settlements in the same process wake it at once)."""

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigurationError("the SQLite broker URL names no file: use sqlite:///path/to/broker.db")
        for name in ("lease", "busy_timeout", "poll_min", "poll_max"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"sqlite broker option {name} must be > 0, got {getattr(self, name)!r}")
        if self.poll_min > self.poll_max:
            raise ConfigurationError("sqlite broker option poll_min must not exceed poll_max")

    @classmethod
    def from_url(cls, url: str) -> SqliteConfig:
        parts = urlsplit(url)
        if parts.scheme != "sqlite" or parts.netloc:
            raise ConfigurationError(
                f"{url!r} is not a SQLite broker URL: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        known = {field.name for field in fields(cls)} - {"path"}
        options: dict[str, float] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in known:
                raise ConfigurationError(f"unknown sqlite broker option {name!r} in {url!r}; known: {sorted(known)}")
            try:
                options[name] = float(value)
            except ValueError:
                raise ConfigurationError(f"sqlite broker option {name}={value!r} is not a number") from None
        return cls(parts.path[1:], **options)


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
