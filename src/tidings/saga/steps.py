"""A saga's steps as handlers of the service: load (and lock) the instance, run the step, save it,
all in the handler's unit of work."""

from __future__ import annotations

import logging
import time

from tidings.context import Context
from tidings.events import Event, Registry
from tidings.saga.model import RUNNING, Handler, Saga, SagaContext, SagaNotStarted
from tidings.saga.state import check_correlation, compensations_of, load, save

log = logging.getLogger("tidings.saga")


def steps(registry: Registry, saga_class: type[Saga]) -> list[tuple[type[Event], Handler]]:
    """One (event class, handler) per step of `saga_class`, to route in a service (`Service.saga`)."""
    return [
        (event_class, _step(registry, saga_class, method, starting))
        for event_class, method, starting in saga_class.saga_steps.values()
    ]


def _step(registry: Registry, saga_class: type[Saga], method: str, starting: bool) -> Handler:
    name = saga_class.saga_name

    async def handle(event: Event, ctx: Context) -> None:
        envelope = ctx.incoming
        assert envelope is not None  # the runtime always passes the incoming envelope
        correlation = envelope.correlationid or envelope.id
        check_correlation(name, correlation)
        row = await load(ctx.connection, name, correlation)
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
            saga, compensations, deadline = (
                saga_class.model_validate_json(row.state),
                compensations_of(row),
                row.deadline,
            )
        saga_context = SagaContext(ctx, registry, correlation, compensations, deadline)
        await getattr(saga, method)(event, saga_context)
        await save(ctx.connection, name, saga, saga_context, new=row is None)

    handle.__name__ = f"{name}.{method}"
    return handle
