"""The saga model: `Saga` (state and steps), `@starts` / `@handles`, and `SagaContext`, what a step may do."""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, TidingsError
from tidings.events import Event, Registry

RUNNING = "running"
RETRY_TIMEOUT_AFTER = 5.0
"""Seconds before a `timed_out` that raised is tried again."""

S = TypeVar("S", bound="Saga")
Step = Callable[[Any, Any, "SagaContext"], Coroutine[Any, Any, None]]
Handler = Callable[[Event, Context], Coroutine[Any, Any, None]]
Transaction = Callable[[], AbstractAsyncContextManager[Context]]
"""Opens a unit of work of the service outside any handler (`UnitOfWork.transaction`)."""


class SagaNotStarted(TidingsError):
    """An event for a saga instance that does not exist yet; transient, so the runtime retries it
    (its starting event may still be on its way on a broker without per-key order)."""


def starts(event_class: type[Event]) -> Callable[[Step], Step]:
    """Mark a saga method as handling `event_class` and creating the instance when there is none."""
    return _mark(event_class, starting=True)


def handles(event_class: type[Event]) -> Callable[[Step], Step]:
    """Mark a saga method as handling `event_class` for an instance that already exists."""
    return _mark(event_class, starting=False)


def _mark(event_class: type[Event], *, starting: bool) -> Callable[[Step], Step]:
    def decorate(method: Step) -> Step:
        method.__tidings_step__ = (event_class, starting)  # type: ignore[attr-defined]
        return method

    return decorate


class Saga(BaseModel):
    """Subclass with `name=` (unique per service database) and optionally `timeout=` seconds;
    the model's fields are the state kept between events. An instance starts with a `@starts`
    step, or — with `begun=True` — by `tidings.saga.begin(ctx, ...)` in the unit of work that
    does the first step itself (an HTTP request), which saves a round trip through the broker."""

    saga_name: ClassVar[str]
    saga_timeout: ClassVar[float | None]
    saga_steps: ClassVar[dict[str, tuple[type[Event], str, bool]]]
    """Event type -> (event class, method name, whether it starts the saga)."""

    def __init_subclass__(
        cls, *, name: str | None = None, timeout: float | None = None, begun: bool = False, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if name is None:
            raise ConfigurationError(f"saga {cls.__qualname__} needs a name: class {cls.__name__}(Saga, name=...)")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"saga {name!r}: timeout must be positive seconds")
        cls.saga_name, cls.saga_timeout, cls.saga_steps = name, timeout, {}
        for attribute, member in vars(cls).items():
            mark = getattr(member, "__tidings_step__", None)
            if mark is None:
                continue
            event_class, starting = mark
            if event_class.event_type in cls.saga_steps:
                raise ConfigurationError(f"saga {name!r} handles {event_class.event_type!r} twice")
            cls.saga_steps[event_class.event_type] = (event_class, attribute, starting)
        if not begun and not any(starting for _, _, starting in cls.saga_steps.values()):
            raise ConfigurationError(
                f"saga {name!r} has no @starts step, so it could never begin "
                "(or declare begun=True and start it with tidings.saga.begin in a unit of work)"
            )

    async def timed_out(self, ctx: SagaContext) -> None:
        """The deadline passed while running; by default compensate and end as `timed-out`."""
        ctx.compensate(status="timed-out")


class SagaContext:
    """What a saga step may do: the handler's `Context` plus the instance's bookkeeping."""

    def __init__(
        self,
        context: Context,
        registry: Registry,
        correlation: str,
        compensations: list[dict[str, Any]],
        deadline: float | None,
    ) -> None:
        self.correlation = correlation
        self.status = RUNNING
        self.deadline = deadline
        self._context = context
        self._registry = registry
        self._compensations = compensations

    @property
    def session(self) -> AsyncSession:
        """The service's transaction this step runs in: the saga's state commits with it."""
        return self._context.session

    @property
    def connection(self) -> AsyncConnection:
        """The same transaction for SQLAlchemy Core statements, without the ORM's work per
        statement (`Context.connection`)."""
        return self._context.connection

    @property
    def incoming(self) -> Envelope | None:
        """The event being handled; None in `timed_out`."""
        return self._context.incoming

    @property
    def trace_context(self) -> str | None:
        """The trace context of the business transaction (kept with the instance for its timeout)."""
        return self._context.trace_context

    def publish(self, event: Event) -> Envelope:
        """Publish `event` as part of this business transaction (the saga's correlation id)."""
        return self._context.publish(event, correlationid=self.correlation)

    def on_compensation(self, event: Event) -> None:
        """Publish `event` if this saga is compensated later (compensations run newest first)."""
        self._registry.register(type(event))
        self._compensations.append(
            {
                "type": event.event_type,
                "version": event.event_version,
                "class": f"{type(event).__module__}:{type(event).__qualname__}",
                "data": event.model_dump(mode="json"),
            }
        )

    def compensate(self, *, status: str = "compensated") -> None:
        """Publish every recorded compensation, newest first, and end the saga with `status`."""
        for record in reversed(self._compensations):
            self._know(record)
            data = json.dumps(record["data"]).encode()
            self.publish(self._registry.decode(record["type"], record["version"], data))
        self._compensations.clear()
        self.finish(status)

    def _know(self, record: dict[str, Any]) -> None:
        """Register the class of a recorded compensation if this process has not seen it yet (a
        restart: only the step that recorded it had registered it), from the path stored with it."""
        if record["type"] in self._registry.types() or "class" not in record:
            return
        module, _, qualname = record["class"].partition(":")
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        if not (isinstance(found, type) and issubclass(found, Event) and found.event_type == record["type"]):
            raise ConfigurationError(f"compensation class {record['class']} is not the event {record['type']!r}")
        self._registry.register(found)

    def finish(self, status: str = "completed") -> None:
        """End the saga: later events for its correlation id are acked without running a step."""
        if status == RUNNING:
            raise ConfigurationError("a saga cannot finish with status 'running'")
        self.status = status
        self.deadline = None

    def set_timeout(self, seconds: float | None) -> None:
        """Time out `seconds` from now (replacing the current deadline); None: never."""
        self.deadline = None if seconds is None else time.time() + seconds

    @property
    def compensations(self) -> list[dict[str, Any]]:
        return self._compensations
