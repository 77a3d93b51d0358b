"""Hostile messages, one generator per kind, and the good events they are mixed with.

Everything here is broker-neutral: a `Raw` message is CloudEvents attributes (binary mode,
without the protocol's prefix), a content type and a body, as a foreign or buggy publisher
could put them on any broker; `brokers.py` writes them with each broker's raw client. The same
seed gives the same messages.

The event is shop-like, with an amount: `PaymentCaptured.amount_cents` is
`Annotated[int, Field(strict=True, ge=0)]`, so an amount sent as a float (`12.5`, even `100.0`),
as a string (`"12"`) or negative is invalid data, and the dead letter must say which field.
The order id of every hostile message contains `PII`, standing for personal data: no reason
may quote it.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Literal

from pydantic import Field

from tidings.envelope import MAX_MESSAGE_BYTES, STRUCTURED
from tidings.events import Event

SOURCE = "urn:bad-input:checkout"
PII = "alice.doe@example.com"
"""Stands for personal data in the payload: a dead-letter reason must never contain it."""
TIME = "2024-06-10T12:00:00+00:00"
UNKNOWN_TYPES = ("shop.payment.refunded", "shop.payment.disputed", "shop.unheard-of")
"""Types no member of the group handles (on Kafka, a member that has gone registered them)."""


class PaymentCaptured(Event, type="shop.payment.captured", version=1):
    """Money taken for an order; strict, so that no amount is coerced into cents."""

    order_id: Annotated[str, Field(strict=True, min_length=1, max_length=200)]
    amount_cents: Annotated[int, Field(strict=True, ge=0)]
    currency: Literal["EUR", "USD", "GBP"]

    def subject(self) -> str | None:
        return self.order_id


PAYMENT = PaymentCaptured.event_type
Attempts = Literal["once", "handover", "handover-if-shared"]
"""How many deliveries a hostile message gets before its dead letter: one; the group's
handover policy (a version newer than this member knows: a newer member may handle it); or
the handover policy only where members of a group share one stream of types."""


@dataclass(frozen=True)
class Raw:
    """One message as it goes on the wire, and what must become of it."""

    kind: str
    """A hostile kind (a key of `KINDS`), or "good"."""
    tag: str
    """Unique; travels in the `TAG` header, which the dead letter keeps."""
    attributes: dict[str, str]
    content_type: str | None
    body: bytes
    expect: str = ""
    """The dead letter's reason starts with this; "" for good events, "duplicate" for a reused id."""
    attempts: Attempts = "once"
    names: str = ""
    """A field the reason must name, when the problem is one field."""
    key: str | None = None
    """The partition key (Kafka record key, SQLite partition key)."""
    data: dict[str, object] = field(default_factory=dict)
    """Good events: the event data, to compare with what the handler received."""


TAG = "bad-input-tag"
Maker = Callable[[random.Random, str], Raw]


def good(rng: random.Random, tag: str, *, order: str | None = None, amount: int | None = None) -> Raw:
    """A valid event in binary mode, as Tidings itself would send it."""
    order_id = order or f"o-{rng.randrange(10**9)}"
    data: dict[str, object] = {
        "order_id": order_id,
        "amount_cents": rng.randrange(0, 10**6) if amount is None else amount,
        "currency": rng.choice(("EUR", "USD", "GBP")),
    }
    event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    attributes = {
        "id": event_id,
        "source": SOURCE,
        "type": PAYMENT,
        "specversion": "1.0",
        "time": TIME,
        "subject": order_id,
        "dataschema": f"urn:tidings:{PAYMENT}:1",
        "correlationid": event_id,
        "partitionkey": order_id,
    }
    body = json.dumps(data, separators=(",", ":")).encode()
    return Raw("good", tag, attributes, "application/json", body, key=order_id, data=data)


def _base(rng: random.Random, tag: str, kind: str, expect: str, **data: object) -> Raw:
    """A good event of order `PII…`, its data changed by `data`, labelled as hostile."""
    message = good(rng, tag, order=f"{PII}-{rng.randrange(10**6)}")
    payload = {**message.data, **data}
    body = json.dumps(payload, separators=(",", ":")).encode()
    return replace(message, kind=kind, expect=expect, body=body, data={})


def structured(message: Raw, data: bytes | None = None) -> Raw:
    """`message` as one `application/cloudevents+json` document (no attributes in headers)."""
    head = json.dumps(message.attributes, separators=(",", ":")).encode()
    body = head[:-1] + b',"data":' + (message.body if data is None else data) + b"}"
    return replace(message, attributes={}, content_type=STRUCTURED, body=body)


def not_json(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "not_json", "not-json")
    bodies = (
        b"<payment><order>" + PII.encode() + b"</order><amount>12</amount></payment>",
        b"order_id=" + PII.encode() + b"&amount_cents=5",
        b"\x00" + rng.randbytes(40),
        b"",
        b"{order_id: '" + PII.encode() + b"'}",
        b"\xff\xfe{\x00}",
    )
    body = rng.choice(bodies)
    return replace(message if rng.random() < 0.7 else structured(message), body=body)


def truncated_json(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "truncated_json", "not-json")
    if rng.random() < 0.5:
        message = structured(message)
    return replace(message, body=message.body[: rng.randrange(1, len(message.body))])


def wrong_content_type(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "wrong_content_type", "invalid-attribute")
    content_type = rng.choice(("application/xml", "text/plain", "application/octet-stream", "text/csv", "image/png"))
    body = message.body if rng.random() < 0.6 else b"<payment><amount>12</amount></payment>"
    return replace(message, content_type=content_type, body=body)


def missing_attribute(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "missing_attribute", "missing-attribute")
    required = ["id", "source", "type", "specversion"]
    gone = rng.sample(required, rng.randrange(1, len(required) + 1))
    attributes = dict(message.attributes)
    for name in gone:
        if rng.random() < 0.8:
            del attributes[name]
        else:
            attributes[name] = ""
    message = replace(message, attributes=attributes)
    if "specversion" in gone or rng.random() < 0.7:
        return message
    return structured(message)


def unknown_type(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "unknown_type", "unknown-type")
    name = rng.choice(UNKNOWN_TYPES)
    attributes = {**message.attributes, "type": name, "dataschema": f"urn:tidings:{name}:1"}
    return replace(message, attributes=attributes, attempts="handover-if-shared")


def unknown_version(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "unknown_version", "unknown-type")
    version = rng.choice((0, 2, 3, 17, 99))
    attributes = {**message.attributes, "dataschema": f"urn:tidings:{PAYMENT}:{version}"}
    return replace(message, attributes=attributes, attempts="once" if version == 0 else "handover")


def invalid_attribute(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "invalid_attribute", "invalid-attribute")
    name, value = rng.choice(
        (
            ("specversion", "0.3"),
            ("specversion", "2.0"),
            ("specversion", "v1"),
            ("time", "yesterday"),
            ("time", "2024-13-45T99:00:00Z"),
            ("dataschema", f"urn:tidings:{PAYMENT}:two"),
        )
    )
    return replace(message, attributes={**message.attributes, name: value})


def schema_mismatch(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "schema_mismatch", "schema-mismatch")
    payload = json.loads(message.body)
    variant = rng.randrange(8)
    if variant == 0:
        del payload["order_id"]
    elif variant == 1:
        del payload["currency"]
    elif variant == 2:
        payload["coupon"] = PII
    elif variant == 3:
        payload["order_id"] = 4711
    elif variant == 4:
        payload["currency"] = "DOGE"
    elif variant == 5:
        payload = rng.choice(([1, 2], PII, None, {}))
    elif variant == 6:
        payload["amount_cents"] = None
    else:  # a field name longer than a RabbitMQ frame: the reason must not echo it whole
        payload["x" * 200_000] = 1
    return replace(message, body=json.dumps(payload).encode())


def amount_float(rng: random.Random, tag: str) -> Raw:
    amount = rng.choice((12.5, 0.1, 100.0, 1e3, 99.99))
    return replace(_base(rng, tag, "amount_float", "schema-mismatch", amount_cents=amount), names="amount_cents")


def amount_string(rng: random.Random, tag: str) -> Raw:
    amount = rng.choice(("12", "12.50", "1,000", "", "ten euros"))
    return replace(_base(rng, tag, "amount_string", "schema-mismatch", amount_cents=amount), names="amount_cents")


def amount_negative(rng: random.Random, tag: str) -> Raw:
    amount = rng.choice((-1, -250, -(2**63), -(10**30)))
    return replace(_base(rng, tag, "amount_negative", "schema-mismatch", amount_cents=amount), names="amount_cents")


def too_large(rng: random.Random, tag: str) -> Raw:
    message = _base(rng, tag, "too_large", "too-large")
    body = b'{"order_id":"' + PII.encode() + b'","note":"' + b"x" * (MAX_MESSAGE_BYTES + rng.randrange(1000)) + b'"}'
    return replace(message, body=body) if rng.random() < 0.5 else structured(message, body)


def deeply_nested(rng: random.Random, tag: str) -> Raw:
    """Valid JSON nested hundreds to tens of thousands of levels deep (no parser should recurse)."""
    message = _base(rng, tag, "deeply_nested", "too-large")
    depth = rng.choice((300, 1_500, 20_000, 100_000))
    nested = b"[" * depth + b"]" * depth
    data = message.body[:-1] + b',"note":' + nested + b"}"
    return replace(message, body=data) if rng.random() < 0.5 else structured(message, data)


def huge_headers(rng: random.Random, tag: str) -> Raw:
    """Valid in every other way; attributes of 20 to 100 kB (a RabbitMQ frame holds 128 kB) in one
    extension attribute, in hundreds of them, or in the subject."""
    message = _base(rng, tag, "huge_headers", "too-large")
    size = rng.randrange(20_000, 100_000)
    variant = rng.randrange(3)
    if variant == 0:
        extra = {"comment": "".join(rng.choices("abcdefghij", k=size))}
    elif variant == 1:
        extra = {f"ext{n:05d}": "v" * 200 for n in range(size // 208)}
    else:
        extra = {"subject": PII * (size // len(PII))}
    return replace(message, attributes={**message.attributes, **extra})


KINDS: dict[str, tuple[Maker, int]] = {
    # kind: (maker, how many per broker)
    "not_json": (not_json, 40),
    "truncated_json": (truncated_json, 40),
    "wrong_content_type": (wrong_content_type, 30),
    "missing_attribute": (missing_attribute, 40),
    "unknown_type": (unknown_type, 20),
    "unknown_version": (unknown_version, 20),
    "invalid_attribute": (invalid_attribute, 30),
    "schema_mismatch": (schema_mismatch, 40),
    "amount_float": (amount_float, 25),
    "amount_string": (amount_string, 25),
    "amount_negative": (amount_negative, 25),
    "too_large": (too_large, 3),
    "deeply_nested": (deeply_nested, 20),
    "huge_headers": (huge_headers, 12),
}
REUSED_ID = "reused_id"
"""Phase two's kind: the id and source of a handled good event, with other (valid) data."""
