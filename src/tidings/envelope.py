"""The CloudEvents 1.0 envelope every event travels in, and its two codecs.

*Binary mode* puts the attributes in protocol headers under a prefix chosen by the protocol
binding (`ce_` for Kafka, `cloudEvents_` for AMQP) and the event data alone in the body; it is
what Tidings sends. *Structured mode* is one JSON document holding attributes and data
(`application/cloudevents+json`); it is accepted on input from any publisher.

Every decoding problem raises `MalformedMessage` whose kind names it, so that the runtime can
dead-letter the message with a reason a person can act on. Event data is JSON: a
`datacontenttype` that is not (`application/json`, `text/json`, `+json`) is refused on receipt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from tidings.attributes import canonical
from tidings.errors import Malformation, MalformedMessage
from tidings.events import Event
from tidings.ids import uuid7

SPEC_VERSION = "1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
MAX_MESSAGE_BYTES = 1024 * 1024
"""Bodies above this size are refused on publish and dead-lettered on receipt."""
MAX_ID_LENGTH = 200
MAX_SOURCE_LENGTH = 200
"""Characters of `id` and `source`: what a service's inbox (keyed on group, source and id) holds on
every database. CloudEvents sets no limit; a received envelope beyond it is malformed."""
MAX_ATTRIBUTE_CHARS = 16 * 1024
"""Received attributes longer than this in all (names and values) are dead-lettered: headers are
for routing and tracing, and a broker limits them (RabbitMQ: one 128 KiB frame)."""

_REQUIRED = ("id", "source", "type", "specversion")
_OPTIONAL = (
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "correlationid",
    "causationid",
    "traceparent",
    "partitionkey",
)
_KNOWN = frozenset((*_REQUIRED, *_OPTIONAL))
_SCHEMA_PREFIX = "urn:tidings:"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event on the wire: CloudEvents attributes plus the event's JSON data as bytes.

    `data` stays serialized so transports pass it through untouched; `Registry.decode`
    turns it into the typed event. The event's version travels in `dataschema`
    (`urn:tidings:<type>:<version>`); a missing `dataschema` means version 1.
    """

    id: str
    source: str
    type: str
    data: bytes
    time: datetime | None = None
    subject: str | None = None
    datacontenttype: str = JSON
    dataschema: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    partitionkey: str | None = None
    specversion: str = SPEC_VERSION
    extensions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        source: str,
        correlationid: str | None = None,
        causationid: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """Put `event` in a new envelope; a new business transaction starts when no correlation is given."""
        data = event.__pydantic_serializer__.to_json(event)
        if len(data) > MAX_MESSAGE_BYTES:
            raise MalformedMessage(
                Malformation.TOO_LARGE, f"event data is {len(data)} bytes, the limit is {MAX_MESSAGE_BYTES}"
            )
        event_id = uuid7()
        return cls(
            id=event_id,
            source=source,
            type=event.event_type,
            data=data,
            time=datetime.now(UTC),
            subject=event.subject(),
            dataschema=f"{_SCHEMA_PREFIX}{event.event_type}:{event.event_version}",
            correlationid=correlationid or event_id,
            causationid=causationid,
            traceparent=traceparent,
            partitionkey=event.partition_key(),
        )

    @property
    def version(self) -> int:
        """The event schema version, read from `dataschema`."""
        if self.dataschema is None or not self.dataschema.startswith(_SCHEMA_PREFIX):
            return 1
        try:
            return int(self.dataschema.rsplit(":", 1)[1])
        except ValueError:
            raise MalformedMessage(
                Malformation.INVALID_ATTRIBUTE, f"dataschema {_shown(self.dataschema)} does not end in a version number"
            ) from None

    def with_changes(self, **changes: Any) -> Envelope:
        return replace(self, **changes)

    def attributes(self) -> dict[str, str]:
        """All context attributes as strings (no data), the form binary mode puts in headers."""
        attributes = {"id": self.id, "source": self.source, "type": self.type, "specversion": self.specversion}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                attributes[name] = value.isoformat() if isinstance(value, datetime) else value
        attributes.update(self.extensions)
        return attributes


# -- binary mode ---------------------------------------------------------------------------------


def to_binary(envelope: Envelope, prefix: str) -> tuple[dict[str, str], bytes]:
    """Headers (`prefix` + attribute name, and `content-type`) and body for binary mode."""
    headers = {prefix + name: value for name, value in envelope.attributes().items() if name != "datacontenttype"}
    headers["content-type"] = envelope.datacontenttype
    return headers, envelope.data


def from_binary(headers: Mapping[str, Any], body: bytes, prefix: str) -> Envelope:
    _check_size(body)
    return _envelope(_prefixed(headers.items(), prefix), body)


@cache
def _header_names(prefix: str) -> dict[str, str]:
    """Header name -> attribute name for the attributes the spec defines, under `prefix`."""
    names = {prefix + name: name for name in _KNOWN if name != "datacontenttype"}
    names["content-type"] = "datacontenttype"
    return names


def _prefixed(headers: Iterable[tuple[str, Any]], prefix: str) -> dict[str, str]:
    """The CloudEvents attributes among binary-mode headers: `prefix` + name, and content-type."""
    names = _header_names(prefix)
    attributes: dict[str, str] = {}
    for key, value in headers:
        name = names.get(key)
        if name is None:
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :]  # an extension attribute
        attributes[name] = canonical(value)
    return attributes


# -- structured mode -----------------------------------------------------------------------------


def to_structured(envelope: Envelope) -> bytes:
    """One JSON document; JSON data is embedded as-is (spliced, not re-parsed)."""
    head = json.dumps(envelope.attributes(), separators=(",", ":")).encode()
    return head[:-1] + b',"data":' + envelope.data + b"}"


def from_structured(body: bytes) -> Envelope:
    _check_size(body)
    try:
        document = json.loads(body)
        if not isinstance(document, dict):
            raise MalformedMessage(Malformation.MISSING_ATTRIBUTE, "body is JSON but not a CloudEvents object")
        data = json.dumps(document.pop("data"), separators=(",", ":")).encode() if "data" in document else b"null"
    except ValueError:
        raise MalformedMessage(Malformation.NOT_JSON, "body is not valid JSON") from None
    except RecursionError:
        raise MalformedMessage(Malformation.TOO_LARGE, "body is JSON nested too deeply to decode") from None
    attributes = {key: value if isinstance(value, str) else json.dumps(value) for key, value in document.items()}
    return _envelope(attributes, data)


def decode(headers: Mapping[str, Any] | Iterable[tuple[str, Any]], body: bytes, prefix: str) -> Envelope:
    """Decode either mode: structured if the content type says so or no prefixed attributes exist.

    `headers` is a mapping or the (name, value) pairs a protocol hands over (Kafka's list of
    headers): one pass reads them, since this runs for every message received.
    """
    attributes = _prefixed(headers.items() if isinstance(headers, Mapping) else headers, prefix)
    if attributes.get("datacontenttype", "").startswith(STRUCTURED) or "specversion" not in attributes:
        return from_structured(body)
    _check_size(body)
    return _envelope(attributes, body)


def check_identity(event_id: str, source: str) -> None:
    """`MalformedMessage(INVALID_ATTRIBUTE)` if `event_id` or `source` is longer than a store can hold."""
    if len(event_id) > MAX_ID_LENGTH:
        raise MalformedMessage(
            Malformation.INVALID_ATTRIBUTE, f"id is {len(event_id)} characters, the limit is {MAX_ID_LENGTH}"
        )
    if len(source) > MAX_SOURCE_LENGTH:
        raise MalformedMessage(
            Malformation.INVALID_ATTRIBUTE, f"source is {len(source)} characters, the limit is {MAX_SOURCE_LENGTH}"
        )


def _check_size(body: bytes) -> None:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(Malformation.TOO_LARGE, f"body is {len(body)} bytes, the limit is {MAX_MESSAGE_BYTES}")


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media in (JSON, "text/json") or media.endswith("+json")


def _shown(value: str) -> str:
    """An attribute's value for a reason: quoted, and cut short (a hostile one may be long)."""
    return repr(value) if len(value) <= 64 else f"{value[:64]!r}..."


def _envelope(attributes: dict[str, str], data: bytes) -> Envelope:
    get = attributes.get
    size = sum(len(name) + len(value) for name, value in attributes.items())
    if size > MAX_ATTRIBUTE_CHARS:
        raise MalformedMessage(
            Malformation.TOO_LARGE, f"CloudEvents attributes are {size} characters, the limit is {MAX_ATTRIBUTE_CHARS}"
        )
    if not (get("id") and get("source") and get("type") and get("specversion")):
        missing = [name for name in _REQUIRED if not get(name)]
        raise MalformedMessage(
            Malformation.MISSING_ATTRIBUTE, f"missing CloudEvents attribute(s): {', '.join(missing)}"
        )
    check_identity(attributes["id"], attributes["source"])
    if attributes["specversion"] != SPEC_VERSION:
        raise MalformedMessage(
            Malformation.INVALID_ATTRIBUTE, f"specversion {_shown(attributes['specversion'])} is not {SPEC_VERSION}"
        )
    content_type = get("datacontenttype")
    if content_type is not None and not _is_json(content_type):
        raise MalformedMessage(
            Malformation.INVALID_ATTRIBUTE,
            f"datacontenttype {_shown(content_type)} is not JSON, and event data is read as JSON",
        )
    time = None
    if "time" in attributes:
        try:
            time = datetime.fromisoformat(attributes["time"])
        except ValueError:
            raise MalformedMessage(
                Malformation.INVALID_ATTRIBUTE, f"time {_shown(attributes['time'])} is not an RFC 3339 timestamp"
            ) from None
    extensions = {} if _KNOWN.issuperset(attributes) else {k: v for k, v in attributes.items() if k not in _KNOWN}
    return Envelope(  # positional: this runs for every message received
        attributes["id"],
        attributes["source"],
        attributes["type"],
        data,
        time,
        get("subject"),
        get("datacontenttype", JSON),
        get("dataschema"),
        get("correlationid"),
        get("causationid"),
        get("traceparent"),
        get("partitionkey"),
        SPEC_VERSION,
        extensions,
    )
