"""Tidings: reliable event-driven communication for Python microservices."""

from tidings.envelope import Envelope
from tidings.errors import MalformedMessage, PermanentError, TidingsError
from tidings.events import Event, Registry, register

__all__ = ["Envelope", "Event", "MalformedMessage", "PermanentError", "Registry", "TidingsError", "register"]
