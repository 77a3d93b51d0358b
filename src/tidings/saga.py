"""Sagas: a process manager whose state is kept per correlation id in the service's database.

    class Fulfilment(Saga, name="fulfilment", timeout=30):
        order_id: str = ""

        @starts(OrderPlaced)
        async def placed(self, event: OrderPlaced, ctx: SagaContext) -> None:
            self.order_id = event.order_id
            ctx.publish(ReserveStock(order_id=event.order_id))

        @handles(StockReserved)
        async def reserved(self, event: StockReserved, ctx: SagaContext) -> None:
            ctx.on_compensation(ReleaseStock(order_id=self.order_id))
            ...

    service.saga(Fulfilment)

Each step runs inside the runtime's unit of work for that event: the instance row is read (and
locked on PostgreSQL), the method runs, and the new state commits together with the inbox claim
and the outbox rows, so a redelivered event has its effect once. Design and trade-offs:
docs/decisions/0010-sagas.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, TidingsError
from tidings.events import Event, Registry
from tidings.store.database import dialect_of
from tidings.store.tables import sagas

if TYPE_CHECKING:
    from tidings.service import Service

log = logging.getLogger("tidings.saga")

RUNNING = "running"
RETRY_TIMEOUT_AFTER = 5.0
"""Seconds before a `timed_out` that raised is tried again."""

S = TypeVar("S", bound="Saga")
Step = Callable[[Any, Any, "SagaContext"], Coroutine[Any, Any, None]]


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
    the model's fields are the state kept between events."""

    saga_name: ClassVar[str]
    saga_timeout: ClassVar[float | None]
    saga_steps: ClassVar[dict[str, tuple[type[Event], str, bool]]]
    """Event type -> (event class, method name, whether it starts the saga)."""

    def __init_subclass__(cls, *, name: str | None = None, timeout: float | None = None, **kwargs: Any) -> None:
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
        if not any(starting for _, _, starting in cls.saga_steps.values()):
            raise ConfigurationError(f"saga {name!r} has no @starts step, so it could never begin")

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
    def incoming(self) -> Envelope | None:
        """The event being handled; None in `timed_out`."""
        return self._context.incoming

    def publish(self, event: Event) -> Envelope:
        """Publish `event` as part of this business transaction (the saga's correlation id)."""
        return self._context.publish(event, correlationid=self.correlation)

    def on_compensation(self, event: Event) -> None:
        """Publish `event` if this saga is compensated later (compensations run newest first)."""
        self._registry.register(type(event))
        self._compensations.append(
            {"type": event.event_type, "version": event.event_version, "data": event.model_dump(mode="json")}
        )

    def compensate(self, *, status: str = "compensated") -> None:
        """Publish every recorded compensation, newest first, and end the saga with `status`."""
        for record in reversed(self._compensations):
            data = json.dumps(record["data"]).encode()
            self.publish(self._registry.decode(record["type"], record["version"], data))
        self._compensations.clear()
        self.finish(status)

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


def register(service: Service, saga_class: type[Saga]) -> None:
    """Give `service` one handler per event type of `saga_class` (what `Service.saga` does)."""
    if service.database_url is None:
        raise ConfigurationError(f"saga {saga_class.saga_name!r} keeps its state in the service's database")
    for event_class, method, starting in saga_class.saga_steps.values():
        service.on(event_class)(_step(service.registry, saga_class, method, starting))


def _step(
    registry: Registry, saga_class: type[Saga], method: str, starting: bool
) -> Callable[[Event, Context], Coroutine[Any, Any, None]]:
    name = saga_class.saga_name

    async def handle(event: Event, ctx: Context) -> None:
        envelope = ctx.incoming
        assert envelope is not None  # the runtime always passes the incoming envelope
        correlation = envelope.correlationid or envelope.id
        row = await _load(ctx.session, name, correlation)
        if row is None:
            if not starting:
                raise SagaNotStarted(f"saga {name!r} {correlation}: {envelope.type} came before the saga started")
            timeout = saga_class.saga_timeout
            saga, compensations = saga_class(), []
            deadline = time.time() + timeout if timeout is not None else None
        elif row.status != RUNNING:
            log.info("saga %s %s is %s; %s changes nothing", name, correlation, row.status, envelope.type)
            return
        else:
            saga, compensations, deadline = saga_class.model_validate_json(row.state), _list(row), row.deadline
        saga_context = SagaContext(ctx, registry, correlation, compensations, deadline)
        await getattr(saga, method)(event, saga_context)
        await _save(ctx.session, name, saga, saga_context, new=row is None)

    handle.__name__ = f"{name}.{method}"
    return handle


async def _load(session: AsyncSession, name: str, correlation: str, *, skip_locked: bool = False) -> Row[Any] | None:
    statement = select(sagas).where(sagas.c.saga == name, sagas.c.correlation == correlation)
    if dialect_of(session) == "postgresql":  # SQLite: the transaction already holds the write lock
        statement = statement.with_for_update(skip_locked=skip_locked)
    return (await session.execute(statement)).first()


async def _save(session: AsyncSession, name: str, saga: Saga, ctx: SagaContext, *, new: bool) -> None:
    now = time.time()
    values = {
        "status": ctx.status,
        "state": saga.model_dump_json(),
        "compensations": json.dumps(ctx.compensations),
        "deadline": ctx.deadline,
        "updated_at": now,
    }
    if new:
        await session.execute(insert(sagas).values(saga=name, correlation=ctx.correlation, started_at=now, **values))
    else:
        await session.execute(
            update(sagas).where(sagas.c.saga == name, sagas.c.correlation == ctx.correlation).values(**values)
        )


def _list(row: Row[Any]) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(row.compensations)
    return loaded


async def instance(session: AsyncSession, saga_class: type[S], correlation: str) -> tuple[str, S] | None:
    """(status, state) of one saga instance, or None; for admin tools and tests."""
    statement = select(sagas.c.status, sagas.c.state).where(
        sagas.c.saga == saga_class.saga_name, sagas.c.correlation == correlation
    )
    row = (await session.execute(statement)).first()
    return None if row is None else (row.status, saga_class.model_validate_json(row.state))


class TimeoutSweeper:
    """The task of a service with sagas that runs `timed_out` for instances past their deadline."""

    def __init__(self, service: Service, saga_classes: dict[str, type[Saga]], *, poll: float = 1.0) -> None:
        self._service = service
        self._classes = saga_classes
        self._poll = poll
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._service.name}-saga-timeouts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as error:  # the database is down, say: try again next round
                log.warning("%s: saga timeout sweep failed: %r", self._service.name, error)
            await asyncio.sleep(self._poll)

    async def sweep(self) -> int:
        """Time out every instance past its deadline now; returns how many timed out."""
        store = self._service.store
        async with store.session() as session, session.begin():
            due = select(sagas.c.saga, sagas.c.correlation).where(
                sagas.c.status == RUNNING, sagas.c.deadline <= time.time(), sagas.c.saga.in_(self._classes)
            )
            found = (await session.execute(due.order_by(sagas.c.deadline).limit(100))).all()
        timed_out = 0
        for name, correlation in found:
            try:
                timed_out += await self._time_out(self._classes[name], correlation)
            except Exception:
                log.exception("%s: saga %s %s: timed_out failed; retrying later", self._service.name, name, correlation)
                async with store.session() as session, session.begin():
                    later = time.time() + RETRY_TIMEOUT_AFTER
                    where = (sagas.c.saga == name) & (sagas.c.correlation == correlation)
                    await session.execute(update(sagas).where(where).values(deadline=later))
        return timed_out

    async def _time_out(self, saga_class: type[Saga], correlation: str) -> int:
        name = saga_class.saga_name
        async with self._service.transaction() as ctx:
            row = await _load(ctx.session, name, correlation, skip_locked=True)  # another replica has it
            if row is None or row.status != RUNNING or row.deadline is None or row.deadline > time.time():
                return 0
            saga = saga_class.model_validate_json(row.state)
            saga_context = SagaContext(ctx, self._service.registry, correlation, _list(row), row.deadline)
            await saga.timed_out(saga_context)
            if saga_context.status == RUNNING and saga_context.deadline == row.deadline:
                saga_context.set_timeout(None)  # neither ended nor rescheduled: do not fire again
            await _save(ctx.session, name, saga, saga_context, new=False)
        log.info("saga %s %s timed out: %s", name, correlation, saga_context.status)
        return 1
