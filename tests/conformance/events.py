"""The events the conformance suite publishes: small, typed, with an optional partition key."""

from __future__ import annotations

from tidings.envelope import Envelope
from tidings.events import Event, Registry
from tidings.transport.base import Delivery

SOURCE = "tidings.conformance"


class Ping(Event, type="conformance.ping", version=1):
    n: int
    key: str | None = None
    pad: str = ""

    def subject(self) -> str | None:
        return self.key


class Pong(Event, type="conformance.pong", version=1):
    n: int


PING = Ping.event_type
PONG = Pong.event_type

registry = Registry()
registry.register(Ping)
registry.register(Pong)


def ping(n: int, key: str | None = None) -> Envelope:
    return Envelope.wrap(Ping(n=n, key=key), source=SOURCE)


def pong(n: int) -> Envelope:
    return Envelope.wrap(Pong(n=n), source=SOURCE)


def event_of(delivery: Delivery) -> Event:
    envelope = delivery.envelope()
    return registry.decode(envelope.type, envelope.version, envelope.data)


def event_id(delivery: Delivery) -> str:
    return delivery.envelope().id
