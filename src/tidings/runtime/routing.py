"""`Routes`: which handler takes which event type, and decoding a delivery for it.

A delivery is decoded only into a type this service routes: anything else (an unknown type,
bytes that are not an envelope, data that does not validate) raises `MalformedMessage`, which
the pipeline dead-letters at once with its reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, Malformation, MalformedMessage
from tidings.events import Event, Registry
from tidings.transport.base import Delivery

Handler = Callable[[Any, Context], Awaitable[None]]
"""`async def handler(event, ctx) -> None`."""


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

    def decode(self, delivery: Delivery) -> tuple[Envelope, Event]:
        """The delivery's envelope and typed event; `MalformedMessage` when no route takes it."""
        envelope = delivery.envelope()
        if envelope.type not in self._handlers:
            raise MalformedMessage(
                Malformation.UNKNOWN_TYPE, f"service {self.owner!r} has no handler for {envelope.type!r}"
            )
        return envelope, self.registry.decode(envelope.type, envelope.version, envelope.data)
