"""`Routes`: which handler takes which event type, and decoding a delivery for it.

A delivery is decoded only into a type this service routes. Bytes that are not an envelope and
data that does not validate raise `MalformedMessage`, which the pipeline dead-letters at once
with its reason. A type this member does not route, or a version newer than it knows, raises
`HandledElsewhere` where another member of the group may handle it (a rolling deploy: the new
replicas know it, the old ones do not); otherwise an unknown type is malformed too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, Malformation, MalformedMessage, TidingsError
from tidings.events import Event, Registry
from tidings.transport.base import Delivery

Handler = Callable[[Any, Context], Awaitable[None]]
"""`async def handler(event, ctx) -> None`."""


class HandledElsewhere(TidingsError):
    """This member cannot handle the delivery, but another member of its group may."""


class Routes:
    """Event type -> handler for the service named `owner`; event classes go into `registry`."""

    def __init__(self, owner: str, registry: Registry) -> None:
        self.owner = owner
        self.registry = registry
        self._handlers: dict[str, Handler] = {}

    def add(self, event_class: type[Event], handler: Handler) -> None:
        """Route `event_class` to `handler`; one handler per type (`ConfigurationError` otherwise)."""
        if event_class.event_type in self._handlers:
            raise ConfigurationError(f"{self.owner} already handles {event_class.event_type!r}")
        self.registry.register(event_class)
        self._handlers[event_class.event_type] = handler

    @property
    def types(self) -> list[str]:
        """The routed event types, sorted."""
        return sorted(self._handlers)

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def handler(self, event_type: str) -> Handler:
        return self._handlers[event_type]

    def decode(self, delivery: Delivery, *, members_share_types: bool) -> tuple[Envelope, Event]:
        """The delivery's envelope and typed event; `MalformedMessage` when it cannot be read,
        `HandledElsewhere` when another member may handle what this one does not.

        `members_share_types`: the transport hands every member all of the group's types
        (`not capabilities.member_types`), so an unknown type may be a newer member's."""
        envelope = delivery.envelope()
        if envelope.type not in self._handlers:
            unknown = f"service {self.owner!r} has no handler for {envelope.type!r}"
            if members_share_types:
                raise HandledElsewhere(unknown)
            raise MalformedMessage(Malformation.UNKNOWN_TYPE, unknown)
        known = self.registry.event_class(envelope.type).event_version
        version = envelope.version  # parsed from `dataschema` on each read
        if version > known:
            raise HandledElsewhere(f"{envelope.type!r} version {version} is newer than the known version {known}")
        return envelope, self.registry.decode(envelope.type, version, envelope.data)
