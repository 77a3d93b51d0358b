"""Events: pydantic models with a stable type name and version, and the registry that decodes them.

An event class declares its wire identity once, in the class statement::

    class OrderCreated(Event, type="shop.order.created", version=1):
        order_id: str

The type name is what travels in the CloudEvents `type` attribute, so renaming the Python
class never breaks consumers. When the schema changes incompatibly, bump `version` and
register an upcaster that turns the previous version's data into the new shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tidings.errors import ConfigurationError, Malformation, MalformedMessage

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]
E = TypeVar("E", bound="Event")
_TOO_DEEP = "event data is JSON nested too deeply to decode"


class Event(BaseModel):
    """Base class of every business event: immutable, strictly validated, JSON on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    event_version: ClassVar[int]

    def __init_subclass__(cls, *, type: str | None = None, version: int = 1, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is None:
            return  # an intermediate base class; concrete events name their type
        if version < 1:
            raise ConfigurationError(f"{cls.__name__}: version must be >= 1, got {version}")
        cls.event_type = type
        cls.event_version = version

    def subject(self) -> str | None:
        """The aggregate this event is about (CloudEvents `subject`); override to set it."""
        return None

    def partition_key(self) -> str | None:
        """Events with the same key are delivered in order; defaults to the subject."""
        return self.subject()


class Registry:
    """Maps (type, version) on the wire to an event class, upcasting older versions.

    Decoding an unknown type, or a version with no path of upcasters to the current
    class, raises `MalformedMessage`, which the runtime dead-letters with that reason.
    """

    def __init__(self) -> None:
        self._current: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_class: type[E]) -> type[E]:
        """Register the current version of an event type; usable as a class decorator."""
        name = getattr(event_class, "event_type", None)
        if name is None:
            raise ConfigurationError(f"{event_class.__name__} has no type: declare type=... on the class")
        known = self._current.get(name)
        if known is not None and known is not event_class:
            raise ConfigurationError(f"event type {name!r} is already registered to {known.__qualname__}")
        self._current[name] = event_class
        return event_class

    def upcaster(self, type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator registering a function that turns `from_version` data into `from_version + 1`."""

        def decorate(function: Upcaster) -> Upcaster:
            self._upcasters[(type, from_version)] = function
            return function

        return decorate

    def types(self) -> list[str]:
        return sorted(self._current)

    def event_class(self, type: str) -> type[Event]:
        try:
            return self._current[type]
        except KeyError:
            raise MalformedMessage(Malformation.UNKNOWN_TYPE, f"no event registered for type {type!r}") from None

    def decode(self, type: str, version: int, data: bytes) -> Event:
        """Build the current event class from `data` of any version that can be upcast to it."""
        event_class = self.event_class(type)
        if version == event_class.event_version:
            return self._validate(event_class, data)
        if version > event_class.event_version:
            raise MalformedMessage(
                Malformation.UNKNOWN_TYPE,
                f"{type!r} version {version} is newer than the known version {event_class.event_version}",
            )
        payload = _json_object(data)
        for step in range(version, event_class.event_version):
            upcast = self._upcasters.get((type, step))
            if upcast is None:
                raise MalformedMessage(
                    Malformation.UNKNOWN_TYPE, f"no upcaster for {type!r} from version {step} to {step + 1}"
                )
            payload = upcast(payload)
        try:
            return event_class.model_validate(payload)
        except ValidationError as error:
            raise _schema_error(type, error) from None

    @staticmethod
    def _validate(event_class: type[Event], data: bytes) -> Event:
        try:
            return event_class.model_validate_json(data)
        except ValidationError as error:
            invalid = [item for item in error.errors() if item["type"] == "json_invalid"]
            if any("recursion limit" in item["msg"] for item in invalid):
                raise MalformedMessage(Malformation.TOO_LARGE, _TOO_DEEP) from None
            if invalid:
                raise MalformedMessage(Malformation.NOT_JSON, "event data is not valid JSON") from None
            raise _schema_error(event_class.event_type, error) from None


def _json_object(data: bytes) -> Data:
    import json

    try:
        payload = json.loads(data)
    except ValueError:
        raise MalformedMessage(Malformation.NOT_JSON, "event data is not valid JSON") from None
    except RecursionError:
        raise MalformedMessage(Malformation.TOO_LARGE, _TOO_DEEP) from None
    if not isinstance(payload, dict):
        raise MalformedMessage(Malformation.SCHEMA_MISMATCH, "event data must be a JSON object")
    return payload


def _schema_error(type: str, error: ValidationError) -> MalformedMessage:
    """Names each wrong field and what is wrong (pydantic's message states what was expected, not
    the input's value); a field name taken from the input (an unexpected one) is cut short."""
    problems = "; ".join(f"{_location(item['loc'])}: {item['msg']}" for item in error.errors()[:5])
    return MalformedMessage(Malformation.SCHEMA_MISMATCH, f"data does not match {type!r}: {problems}")


def _location(loc: tuple[int | str, ...]) -> str:
    path = ".".join(str(part) for part in loc) or "<root>"
    return path if len(path) <= 80 else f"{path[:80]}..."


default_registry = Registry()
"""The registry `Service` uses unless given another; `@default_registry.register` fills it."""


def register(event_class: type[E]) -> type[E]:
    """Register an event class in the default registry (class decorator)."""
    return default_registry.register(event_class)
